/**
 * Everything the fleet keeps in Redis, behind one class: the board registry, per-board ACL
 * users, command queues (through the Lua functions of cloudmanager.lua), upload blobs,
 * history, and the uplink streams with their keyspace notifications. The rest of the
 * manager never sees ioredis.
 */
import { callLoadingFunctions, isStaleReply } from './function-call.js';
import { ensureLibrary } from './function-library.js';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { boardIdFromStateChannel, boardIdFromUplinkChannel, boardKeys, managerKeys, STATE_NOTIFY_PATTERN, UPLINK_NOTIFY_PATTERN } from './keys.js';
import { isCluster, type RedisClient } from './redis-connection.js';
import { RedisNodes, type NodeAddress } from './redis-nodes.js';
import { KeyspaceSubscribers } from './keyspace-subscribers.js';
import { BoardUsers } from './board-users.js';
import { ClusterFcall } from './cluster-fcall.js';
import { BATCHABLE, FcallBatcher } from './fcall-batcher.js';
import { UplinkCalls, type UplinkBatch, type UplinkReadLimits } from './uplink-calls.js';
import { ManagerError, type ErrorKind } from '../errors.js';

export type { UplinkBatch, UplinkEntry } from './uplink-calls.js';

export class QueueFullError extends ManagerError {
  override name = 'QueueFullError';
  readonly kind: ErrorKind = 'conflict';
}

export class RedisSetupError extends Error {
  override name = 'RedisSetupError';
}

export interface StoreEvents {
  /** A board appended to its uplink. */
  uplink: [boardId: string];
  /** A hash field of a board's state was set (by the board, cm_claim or the manager). */
  state: [boardId: string];
  /** Notifications may have been missed (first subscribe, or after a reconnect). */
  resync: [];
  /** Redis refused this manager's epoch (STALE): another manager took the lease; stop acting. */
  stale: [message: string];
  /** A primary holds another version's function library, left as it is (not the active manager). */
  otherLibrary: [];
}

/** A fenced function refused the manager's epoch: another manager is active now (cloudmanager.lua). */
export class StaleEpochError extends Error {
  override name = 'StaleEpochError';
}

const BLOB_TTL_MARGIN_S = 3600;
/** Finished commands kept in a board's history (approximately: XADD MAXLEN ~). */
const HISTORY_KEPT = 200;

export class FleetStore extends EventEmitter<StoreEvents> {
  /** The data nodes behind `redis` (one server, a Cluster's, or Sentinel's primary and replicas). */
  readonly nodes: RedisNodes;
  private readonly subscribers: KeyspaceSubscribers;
  /** FCALLs batched per node (a Cluster only). */
  private readonly fcalls: ClusterFcall | undefined;
  private readonly uplinks: UplinkCalls;
  /** cm_enqueue, cm_cancel and cm_finish of one event-loop turn, as one cm_batch per node. */
  private readonly batcher: FcallBatcher;
  /** The boards' ACL users, on every node. */
  readonly users: BoardUsers;
  /**
   * This manager's lease epoch (redis/manager-lease.ts), passed to the fenced functions
   * (uplink read and trim, finish); undefined: not fenced (no lease, e.g. a tool or a test).
   */
  epoch: number | undefined;

  constructor(
    private readonly redis: RedisClient,
    /** Told about a replica that missed a per-node change (ACL, settings); the primaries' failures are thrown. */
    private readonly replicaFailed: (address: string, error: Error) => void = () => {},
  ) {
    super();
    this.fcalls = isCluster(redis) ? new ClusterFcall(redis) : undefined;
    this.batcher = new FcallBatcher(
      redis,
      (fn, keys, args) => this.singleFcall(fn, keys, args),
      () => this.loadFunctions(),
    );
    this.uplinks = new UplinkCalls({ redis, fcalls: this.fcalls, epoch: () => this.epoch, loadFunctions: () => this.loadFunctions() });
    this.nodes = new RedisNodes(redis);
    this.users = new BoardUsers(redis, this.nodes, replicaFailed);
    this.subscribers = new KeyspaceSubscribers({
      nodes: this.nodes,
      patterns: [UPLINK_NOTIFY_PATTERN, STATE_NOTIFY_PATTERN],
      connectionName: 'cm-manager-notify',
      message: (channel, message) => this.onNotification(channel, message),
      // What was published while a subscriber was away is lost: the fleet re-reads every uplink once.
      resync: () => this.emit('resync'),
      preparePrimary: (primary) => this.enableNotifications(primary),
      failed: (error) => this.replicaFailed('keyspace notifications', error),
    });
  }

  private onNotification(channel: string, message: string): void {
    if (message === 'hset') {
      const boardId = boardIdFromStateChannel(channel);
      if (boardId) this.emit('state', boardId);
      return;
    }
    if (message !== 'xadd') return;
    const boardId = boardIdFromUplinkChannel(channel);
    if (boardId) this.emit('uplink', boardId);
  }

  /**
   * Loads the function library and turns on the notifications the uplink relies on, on
   * every node (replicas too: a promoted replica must notify), then subscribes on every primary.
   */
  async prepare(): Promise<void> {
    await this.loadFunctions();
    await this.nodes.onEveryNode((node) => this.enableNotifications(node), this.replicaFailed);
    await this.subscribers.start();
    await this.users.start();
  }

  /**
   * This version's function library on every primary (replicas get it by replication): loaded
   * where there is none; another version's is replaced only by the active manager, the one
   * with an epoch (function-library.ts says why).
   */
  async loadFunctions(): Promise<void> {
    const keptOther = await Promise.all(this.nodes.primaries().map((primary) => ensureLibrary(primary, this.epoch !== undefined)));
    if (keptOther.includes(true)) this.emit('otherLibrary');
  }

  private async enableNotifications(node: Redis): Promise<void> {
    const reply = (await node.config('GET', 'notify-keyspace-events')) as string[];
    const current = reply[1] ?? '';
    // K = keyspace channel, t = stream commands, h = hash commands ('A' includes both).
    const has = (flag: string) => current.includes(flag) || (flag !== 'K' && current.includes('A'));
    if (['K', 't', 'h'].every(has)) return;
    const wanted = current + ['K', 't', 'h'].filter((flag) => !has(flag)).join('');
    try {
      await node.config('SET', 'notify-keyspace-events', wanted);
    } catch (error) {
      throw new RedisSetupError(
        `Redis must publish keyspace notifications for streams (notify-keyspace-events must contain K, t and h); ` +
          `setting it on ${node.options.host}:${node.options.port} failed: ${(error as Error).message}`,
      );
    }
  }

  /** The node a board should connect to (its slot's primary, or Sentinel's primary); undefined with one server. */
  boardAddress(id: string): NodeAddress | undefined {
    return this.nodes.addressOf(boardKeys(id).cmd);
  }

  async close(): Promise<void> {
    this.users.stop();
    this.subscribers.close();
    this.nodes.close();
  }

  // --- registry ----------------------------------------------------------------------

  async loadRegistry(): Promise<string[]> {
    return Object.values(await this.redis.hgetall(managerKeys.boards));
  }

  async saveBoardRecord(id: string, json: string): Promise<void> {
    await this.redis.hset(managerKeys.boards, id, json);
  }

  /** Points `name` at board `id`, unless another board has it. Returns false when taken. */
  async claimName(name: string, id: string): Promise<boolean> {
    if (await this.redis.hsetnx(managerKeys.names, name, id)) return true;
    return (await this.redis.hget(managerKeys.names, name)) === id;
  }

  async releaseName(name: string, id: string): Promise<void> {
    // Only release a name that still points at this board.
    if ((await this.redis.hget(managerKeys.names, name)) === id) await this.redis.hdel(managerKeys.names, name);
  }

  // --- enrollment ----------------------------------------------------------------------

  /** Creates (or re-keys) boards' ACL users (board-users.ts) and uplink streams, then persists the ACL once. */
  async createBoardUsers(boards: Array<{ id: string; password: string; rekeyed?: boolean }>): Promise<void> {
    await this.users.create(boards);
    // Create the uplinks as (empty) streams now, so a board cannot give its uplink another type.
    await Promise.all(boards.map(({ id }) => this.redis.xadd(boardKeys(id).up, 'MAXLEN', '0', '*', 'k', 'init')));
    await this.users.save();
  }

  async deleteBoard(id: string): Promise<void> {
    const keys = boardKeys(id);
    await this.users.delete(id);
    await this.redis.del(keys.cmd, keys.state, keys.up, keys.pending, keys.seen, keys.log, keys.fence);
    await this.redis.hdel(managerKeys.discoveryKeys, id);
    await this.redis.hdel(managerKeys.boards, id);
  }

  /**
   * Drops what a suspended board wrote beyond the protocol: its uplink entries, and every
   * field of its state hash but `cur`, `stop` and `ack` (UNLINK: freed off the main thread).
   */
  async clearBoardWrites(id: string): Promise<void> {
    const keys = boardKeys(id);
    const [cur, stop, ack] = (await this.redis.hmget(keys.state, 'cur', 'stop', 'ack')).map((value) => (value !== null && value.length <= 64 ? value : null));
    const kept = Object.entries({ cur, stop, ack }).filter((entry): entry is [string, string] => entry[1] !== null);
    const transaction = this.redis.multi().unlink(keys.state).xtrim(keys.up, 'MAXLEN', '0');
    if (kept.length > 0) transaction.hset(keys.state, Object.fromEntries(kept));
    await transaction.exec();
  }

  /** Boards' discovery keys (board id → dk). Boards enrolled before discovery have none. */
  async loadDiscoveryKeys(): Promise<Record<string, string>> {
    return this.redis.hgetall(managerKeys.discoveryKeys);
  }

  async saveDiscoveryKeys(keys: Array<{ id: string; dk: string }>): Promise<void> {
    if (keys.length === 0) return;
    await this.redis.hset(managerKeys.discoveryKeys, Object.fromEntries(keys.map(({ id, dk }) => [id, dk])));
  }

  // --- commands ------------------------------------------------------------------------

  async enqueue(
    boardId: string,
    cid: string,
    meta: Record<string, unknown>,
    fields: Array<string | Buffer>,
    maxPending: number,
  ): Promise<{ status: 'ok' | 'duplicate'; eid: string }> {
    const keys = boardKeys(boardId);
    let reply: [string, string];
    try {
      reply = (await this.fcall(
        'cm_enqueue',
        [keys.cmd, keys.seen, keys.pending],
        cid,
        String(Date.now()),
        String(maxPending),
        JSON.stringify(meta),
        ...fields,
      )) as [string, string];
    } catch (error) {
      const message = (error as Error).message ?? '';
      if (message.startsWith('QUEUEFULL')) throw new QueueFullError(message.slice('QUEUEFULL '.length));
      throw error;
    }
    return { status: reply[0] === 'ok' ? 'ok' : 'duplicate', eid: reply[1] };
  }

  async cancel(boardId: string, cid: string, eid: string): Promise<'cancelled' | 'claimed'> {
    const keys = boardKeys(boardId);
    return (await this.fcall('cm_cancel', [keys.cmd, keys.state, keys.pending], cid, eid)) as 'cancelled' | 'claimed';
  }

  /**
   * FCALL: cm_enqueue, cm_cancel and cm_finish through the batcher (one cm_batch per node and
   * event-loop turn); the others, and a batch of one, auto-pipelined on one server, on a
   * Cluster batched per node by ClusterFcall (auto-pipelining cannot route FCALL). A Redis that
   * lost its functions (flushed, or a fresh external server) gets them loaded and the call sent again.
   */
  private async fcall(fn: string, keys: string[], ...args: Array<string | Buffer>): Promise<unknown> {
    return BATCHABLE.has(fn) ? this.batcher.call(fn, keys, args) : this.singleFcall(fn, keys, args);
  }

  private singleFcall(fn: string, keys: string[], args: Array<string | Buffer>): Promise<unknown> {
    const send = () => (this.fcalls ? this.fcalls.call(fn, keys, args) : this.redis.call('FCALL', fn, String(keys.length), ...keys, ...args));
    return callLoadingFunctions(send, () => this.loadFunctions());
  }

  /** How far the manager has read a `get`'s data: `ack` = "CID n" (PROTOCOL.md §7.3 flow control). */
  async acknowledgeData(boardId: string, cid: string, seq: number): Promise<void> {
    await this.redis.hset(boardKeys(boardId).state, 'ack', `${cid} ${seq}`);
  }

  /** Asks the board to stop command `cid` while it runs (PROTOCOL.md §4.4). */
  async requestStop(boardId: string, cid: string): Promise<void> {
    await this.redis.hset(boardKeys(boardId).state, 'stop', cid);
  }

  /** Commands of one board that have no result yet: CID → meta (with `e`, the EID). */
  async pendingCommands(boardId: string): Promise<Map<string, Record<string, unknown>>> {
    const raw = await this.redis.hgetall(boardKeys(boardId).pending);
    const pending = new Map<string, Record<string, unknown>>();
    for (const [cid, json] of Object.entries(raw)) {
      try {
        pending.set(cid, JSON.parse(json) as Record<string, unknown>);
      } catch {
        // Not ours to interpret; drop it so it cannot block the queue forever.
        await this.redis.hdel(boardKeys(boardId).pending, cid);
      }
    }
    return pending;
  }

  /**
   * Records finished commands of one board in its history, out of `pending` in one step
   * (cm_finish; values well-formed UTF-16). `ranThrough`: the EID of the newest queue entry
   * whose result the board sent; the queue's entries up to it are deleted (the board never
   * claims them again, PROTOCOL.md §4.2).
   */
  async finish(boardId: string, commands: Array<{ cid: string; history: Record<string, string> }>, ranThrough: string | null = null): Promise<void> {
    if (commands.length === 0) return;
    const keys = boardKeys(boardId);
    const encoded = JSON.stringify(commands.map(({ cid, history }) => [cid, Object.entries(history).flat()]));
    const fence = this.epoch === undefined ? [] : [keys.fence];
    await this.fenced(() =>
      this.fcall('cm_finish', [keys.pending, keys.log, keys.cmd, ...fence], String(HISTORY_KEPT), encoded, String(this.epoch ?? ''), ranThrough ?? ''),
    );
  }

  async history(boardId: string, count: number): Promise<Array<Record<string, string>>> {
    const entries = await this.redis.xrevrange(boardKeys(boardId).log, '+', '-', 'COUNT', count);
    return entries.map(([, fields]) => {
      const record: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
      return record;
    });
  }

  // --- upload blobs ----------------------------------------------------------------------

  /** Stores file content as parts of `partSize` bytes; they expire after `ttlS` (+1 h). */
  async writeBlob(boardId: string, cid: string, data: Buffer, partSize: number, ttlS: number): Promise<string> {
    const prefix = boardKeys(boardId).blobPrefix(cid);
    const parts = Math.max(1, Math.ceil(data.length / partSize));
    const pipeline = this.redis.pipeline();
    for (let part = 0; part < parts; part++) {
      pipeline.set(`${prefix}:${part}`, data.subarray(part * partSize, (part + 1) * partSize), 'EX', ttlS + BLOB_TTL_MARGIN_S);
    }
    const results = await pipeline.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0];
    return prefix;
  }

  async deleteBlob(boardId: string, cid: string, size: number, partSize: number): Promise<void> {
    const prefix = boardKeys(boardId).blobPrefix(cid);
    const parts = Math.max(1, Math.ceil(size / partSize));
    await this.redis.del(...Array.from({ length: parts }, (_, part) => `${prefix}:${part}`));
  }

  // --- uplink ----------------------------------------------------------------------------

  /**
   * Reads new uplink entries of several boards after their cursors (uplink-calls.ts: one call
   * per node). A board whose uplink cannot be read is reported with `error` and does not hold
   * up the others; boards a full reply left come back `unread` (read them again).
   */
  async readUplinks(cursors: Array<[boardId: string, after: string]>, limits: UplinkReadLimits): Promise<UplinkBatch[]> {
    // Another manager took over: this one reads no further.
    return this.fenced(() => this.uplinks.read(cursors, limits));
  }

  /** Deletes processed uplink entries, per board up to and including its `lastEid`. */
  async trimUplinks(handled: Array<[boardId: string, lastEid: string]>): Promise<void> {
    await this.fenced(() => this.uplinks.trim(handled));
  }

  /**
   * Runs a fenced call. A STALE reply tells the manager (once per store is enough, it stops
   * acting) and becomes a StaleEpochError; other errors pass unchanged.
   */
  private async fenced<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (!isStaleReply(error)) throw error;
      const message = (error as Error).message;
      this.emit('stale', message);
      throw new StaleEpochError(`this manager is no longer the active one: ${message}`);
    }
  }

  // --- server facts ----------------------------------------------------------------------

  /** Facts of the server; with a Cluster, of its first primary, with clients and memory summed over the primaries. */
  async serverInfo(): Promise<{ version: string; pid: number; port: number; clients: number; usedMemory: number }> {
    const texts = await Promise.all(this.nodes.primaries().map((primary) => primary.info()));
    const field = (text: string, name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
    const sum = (name: string) => texts.reduce((total, text) => total + Number(field(text, name) || 0), 0);
    const first = texts[0] ?? '';
    return {
      version: field(first, 'redis_version'),
      pid: Number(field(first, 'process_id')),
      port: Number(field(first, 'tcp_port')),
      clients: sum('connected_clients'),
      usedMemory: sum('used_memory'),
    };
  }
}

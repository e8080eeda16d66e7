/**
 * The manager's reads and trims of board uplinks, the busiest path there is (every heartbeat
 * and every result of every board is read, then deleted). A round of boards costs one
 * `cm_uplink_read_many` and one `cm_uplink_trim_many` per Redis node (cloudmanager.lua), not
 * a call per board: measured at a 10,000-board broadcast, per-board calls were 50,000 of the
 * round's 80,000 FCALLs.
 *
 * On a Cluster the boards of a round are grouped by the primary serving their slot (the
 * client's slot map) and each group goes to its node. The keys travel in ARGV (a Cluster
 * refuses to route declared keys of several slots), so a slot that moved in between fails
 * only its boards ("non local key"), and a node that went away or refused its call fails its
 * group: those boards are then read one by one through ClusterFcall, which follows MOVED and
 * waits through a failover like any command.
 */
import type { Redis } from 'ioredis';
import type { ClusterFcall } from './cluster-fcall.js';
import { callLoadingFunctions, isStaleReply } from './function-call.js';
import { boardKeys } from './keys.js';
import type { RedisClient } from './redis-connection.js';
import { groupByPrimary, SLOT_ELSEWHERE } from './redis-nodes.js';

/** One entry of a board's uplink stream, fields as raw bytes (decoding is the reader's job). */
export interface UplinkEntry {
  eid: string;
  fields: Buffer[];
  /** Set (bytes) for an entry over the entry limit: Redis deleted it, `fields` is empty. */
  oversize?: number;
}

export interface UplinkBatch {
  boardId: string;
  entries: UplinkEntry[];
  /** Bytes of the entries looked at (oversized ones included) and the stream's length before. */
  bytes?: number;
  length?: number;
  /** Fields and bytes of the board's state hash (cm:{ID}:state), measured by the same read. */
  stateFields?: number;
  stateBytes?: number;
  /** Set when this board's uplink could not be read (e.g. the key has the wrong type). */
  error?: Error;
  /** Not read this time (the read's reply was full before this board): read it again. */
  unread?: true;
}

export interface UplinkReadLimits {
  /** Per board: at most this many entries and about this many bytes (at least one entry). */
  count: number;
  maxBytes: number;
  /** Entries over this come back as their size only (Redis deletes them). */
  maxEntryBytes: number;
  /** Per call (node): no further board once the reply holds this much (the call blocks Redis while it copies). */
  maxTotalBytes: number;
}

export interface UplinkCallsContext {
  redis: RedisClient;
  /** Set on a Cluster: the per-node FCALL batcher, for boards read one by one. */
  fcalls?: ClusterFcall;
  /** The manager's lease epoch for the fenced functions (undefined: not fenced). */
  epoch: () => number | undefined;
  loadFunctions: () => Promise<void>;
}

type FcallBuffer = { fcallBuffer: (fn: string, numkeys: string, ...args: string[]) => Promise<unknown> };
type Result = [Error | null, unknown];

export class UplinkCalls {
  constructor(private readonly context: UplinkCallsContext) {}

  /** New entries of several boards after their cursors; throws a STALE refusal as Redis gave it. */
  async read(cursors: Array<[boardId: string, after: string]>, limits: UplinkReadLimits): Promise<UplinkBatch[]> {
    if (cursors.length === 0) return [];
    const epoch = this.epochText();
    const perBoard = [String(limits.count), String(limits.maxEntryBytes), String(limits.maxBytes)];
    const results: Array<Result | undefined> = new Array(cursors.length);
    const alone = await this.perNode(
      cursors.map(([id]) => id),
      async (node, indexes) => {
        const boards = indexes.flatMap((index) => [...uplinkReadKeys(cursors[index]![0], epoch), cursors[index]![1]]);
        const replies = (await this.callMany(node, 'cm_uplink_read_many', [...perBoard, epoch, String(limits.maxTotalBytes), ...boards])) as unknown[];
        const again: number[] = [];
        indexes.forEach((index, n) => {
          const reply = replies[n];
          if (reply === undefined) return; // left for the next round (the reply was full)
          if (!isErrorReply(reply)) results[index] = [null, reply];
          else if (this.context.fcalls && SLOT_ELSEWHERE.test(String(reply[1]))) again.push(index);
          else results[index] = [new Error(String(reply[1])), null];
        });
        return again;
      },
    );
    if (alone.length > 0) {
      const fcalls = this.context.fcalls!;
      const read = (index: number) =>
        callLoadingFunctions(
          () => fcalls.call('cm_uplink_read', uplinkReadKeys(cursors[index]![0], epoch), [cursors[index]![1], ...perBoard, epoch], true),
          this.context.loadFunctions,
        );
      const settled = await Promise.allSettled(alone.map(read));
      settled.forEach((outcome, n) => {
        results[alone[n]!] = outcome.status === 'fulfilled' ? [null, outcome.value] : [outcome.reason as Error, null];
      });
    }
    const stale = results.find((result) => result?.[0] && isStaleReply(result[0]));
    if (stale) throw stale[0];
    return cursors.map(([boardId], index): UplinkBatch => {
      const result = results[index];
      if (!result) return { boardId, entries: [], unread: true };
      const [error, reply] = result;
      if (error) return { boardId, entries: [], error };
      const [length, bytes, stateFields, stateBytes, ...items] = reply as [number, number, number, number, ...Array<[Buffer, Buffer[] | number]>];
      const entries = items.map(([eid, body]): UplinkEntry =>
        typeof body === 'number' ? { eid: eid.toString(), fields: [], oversize: body } : { eid: eid.toString(), fields: body },
      );
      return { boardId, entries, bytes, length, stateFields, stateBytes };
    });
  }

  /** Deletes handled entries, per board up to and including its `lastEid`; throws a STALE refusal as Redis gave it. */
  async trim(handled: Array<[boardId: string, lastEid: string]>): Promise<void> {
    if (handled.length === 0) return;
    const epoch = this.epochText();
    const argsOf = (index: number) => {
      const [id, eid] = handled[index]!;
      const keys = boardKeys(id);
      return epoch === '' ? [keys.up, minIdAfter(eid)] : [keys.up, keys.fence, minIdAfter(eid)];
    };
    const alone = await this.perNode(
      handled.map(([id]) => id),
      async (node, indexes) => {
        await this.callMany(node, 'cm_uplink_trim_many', [epoch, ...indexes.flatMap(argsOf)]);
        return [];
      },
    );
    const fcalls = this.context.fcalls;
    if (!fcalls) return;
    await Promise.all(
      alone.map((index) => {
        const [id, eid] = handled[index]!;
        const keys = boardKeys(id);
        if (epoch === '') return this.context.redis.xtrim(keys.up, 'MINID', minIdAfter(eid));
        return callLoadingFunctions(() => fcalls.call('cm_uplink_trim', [keys.up, keys.fence], [minIdAfter(eid), epoch]), this.context.loadFunctions);
      }),
    );
  }

  private epochText(): string {
    const epoch = this.context.epoch();
    return epoch === undefined ? '' : String(epoch);
  }

  /**
   * Runs `many` once per node with the indexes of the boards it serves; returns the indexes
   * to handle one by one (Cluster only): boards whose node is unknown, whose node's call
   * failed (not STALE), and those `many` gave back.
   */
  private async perNode(ids: string[], many: (node: Redis, indexes: number[]) => Promise<number[]>): Promise<number[]> {
    const alone: number[] = [];
    const groups = groupByPrimary(
      this.context.redis,
      ids.map((_, index) => index),
      (index) => boardKeys(ids[index]!).up,
    );
    alone.push(...(groups.get(undefined) ?? []));
    groups.delete(undefined);
    await Promise.all(
      [...groups].map(async ([node, indexes]) => {
        try {
          alone.push(...(await many(node!, indexes)));
        } catch (error) {
          if (isStaleReply(error) || !this.context.fcalls) throw error;
          alone.push(...indexes);
        }
      }),
    );
    return alone;
  }

  private callMany(node: Redis, fn: string, args: string[]): Promise<unknown> {
    // fcallBuffer exists at run time (ioredis makes a …Buffer method of every command) but not in its types.
    const commands = node as unknown as FcallBuffer;
    return callLoadingFunctions(() => commands.fcallBuffer(fn, '0', ...args), this.context.loadFunctions);
  }
}

/** The keys cm_uplink_read takes for a board: its uplink, its state hash, and its fence when the manager holds an epoch. */
function uplinkReadKeys(id: string, epoch: string): string[] {
  const keys = boardKeys(id);
  return epoch === '' ? [keys.up, keys.state] : [keys.up, keys.state, keys.fence];
}

/** The MINID that deletes an entry and everything before it. */
function minIdAfter(eid: string): string {
  const [ms, seq] = eid.split('-');
  return `${ms}-${Number(seq) + 1}`;
}

/** `['error', reason]` in place of a board's reply (cm_uplink_read_many). */
function isErrorReply(reply: unknown): reply is [Buffer, Buffer] {
  return Array.isArray(reply) && Buffer.isBuffer(reply[0]);
}

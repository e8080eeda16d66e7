/**
 * The reference board: the board side of firmware/PROTOCOL.md, implemented exactly, in
 * TypeScript. It speaks plain RESP2 over one socket like the MicroPython client does, runs
 * exec'd code in real MicroPython (the shared WebAssembly interpreter, one globals dict per
 * board), and keeps its files in memory or in a host folder. Used as "virtual boards" for
 * trying the app without hardware, by the tests, and as the benchmark's load generator.
 *
 * Shortcuts compared with a real board (written down as the lab rules ask): exec'd code
 * sees the interpreter's own file system, not the board's (unless the interpreter is given
 * the board's folder, `filesDir`, as the lab's one-board CLI does); `mf` is a fixed figure; code
 * runs one board at a time across all virtual boards of a process (one interpreter).
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { RespConnection } from '../redis/resp-connection.js';
import { RespError } from '../redis/resp-codec.js';
import { boardKeys } from '../redis/keys.js';
import type { BoardCredentials } from '../fleet/fleet.js';
import { MicroPythonInterpreter } from './micropython-interpreter.js';
import { MemoryFs, type BoardFs } from './board-fs.js';
import { runOperation, type OperationContext } from './board-operations.js';
import { isRedirectOrFailover, movedTarget, type NodeAddress } from './cluster-redirect.js';

export const REFERENCE_CLIENT_VERSION = '1.0.0-ts';

export interface ReferenceBoardOptions {
  credentials: BoardCredentials;
  fs?: BoardFs;
  interpreter?: MicroPythonInterpreter;
  /** Where to connect; defaults to the credentials' server and port. */
  host?: string;
  port?: number;
  /** Time a reboot takes before the board reconnects (default 300 ms). */
  bootDelayMs?: number;
  /** First reconnect delay; doubles up to 60 s (PROTOCOL.md §8 says 1 s). */
  reconnectMinMs?: number;
  /** Chunk size for reading upload blobs (default 4096). */
  chunkBytes?: number;
  /** Called when the board's config changes (rename, cfg_set), e.g. to persist it. */
  saveConfig?: (config: Record<string, unknown>) => Promise<void>;
}

export interface ReferenceBoardEvents {
  connected: [];
  disconnected: [error: Error | undefined];
  executed: [cid: string];
  rebooted: [];
}

/** Uplink entries beyond this many bytes waiting for a reconnect drop their output first. */
const MAX_OUTBOX_BYTES = 8 * 1024 * 1024;
const MAX_RECONNECT_MS = 60_000;
/** How long stop() waits for Redis to take the board's `bye`: a hung server must not hold it. */
const BYE_WAIT_MS = 2_000;

interface OutboxItem {
  fields: Array<string | Buffer>;
  bytes: number;
  essential: boolean;
  inFlight: boolean;
}

export class ReferenceBoard extends EventEmitter<ReferenceBoardEvents> {
  /** The board's own execution log: every exec'd command id, in order, across reboots. */
  readonly executed: string[] = [];
  readonly config: Record<string, unknown>;
  readonly fs: BoardFs;
  private readonly keys;
  private readonly interpreter: MicroPythonInterpreter;
  private connection: RespConnection | null = null;
  /** The connection while it waits in XREAD BLOCK (stop() must not queue its bye behind that). */
  private blockedIn: RespConnection | undefined;
  /** Where `connection` goes (the node a -MOVED named, or home). */
  private connectedTo: { host: string; port: number } = { host: '', port: 0 };
  private connectionWaiters: Array<(connection: RespConnection) => void> = [];
  private readonly outbox: OutboxItem[] = [];
  private outboxBytes = 0;
  private bootId = '';
  /** The cursor of the last claim reply seen this boot ('' right after boot, §4.2). */
  private after = '';
  private running = false;
  private loop: Promise<void> | null = null;
  /** Ends the wait before the next reconnect attempt (set while the board waits). */
  private wakeUp: (() => void) | undefined;
  private busy: string | null = null;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private micropythonVersion: string | undefined;
  /** sys.implementation._mpy of the interpreter that runs exec (774: .mpy ABI 6.3), reported by info. */
  private mpyAbi = 0;
  /** The node a `-MOVED` named (Redis Cluster): connected to until anything fails, then home again. RAM only. */
  private movedTo: NodeAddress | undefined;
  /** A `-MOVED` the outbox got on the current connection (the loop sees only the connection closing). */
  private movedOnConnection: NodeAddress | undefined;

  constructor(private readonly options: ReferenceBoardOptions) {
    super();
    const { credentials } = options;
    this.keys = boardKeys(credentials.id);
    this.fs = options.fs ?? new MemoryFs();
    this.interpreter = options.interpreter ?? MicroPythonInterpreter.shared();
    this.config = { ...credentials };
    delete this.config.v;
  }

  get id(): string {
    return this.options.credentials.id;
  }

  get connected(): boolean {
    return this.connection !== null;
  }

  /** Powers the board on; it connects and keeps reconnecting until stop(). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.boot();
    this.loop = this.run();
  }

  /** Clean shutdown: says bye (if Redis takes it soon), then disconnects. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wakeUp?.();
    const connection = this.connection;
    if (connection) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.sayBye(connection).catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, BYE_WAIT_MS)))]);
      clearTimeout(timer);
    }
    connection?.destroy();
    await this.loop;
  }

  /**
   * The bye goes on the board's connection, behind whatever it sent before, unless that
   * connection waits in XREAD BLOCK: Redis runs nothing of a client's while it is blocked,
   * so a bye queued there would wait for the next heartbeat. Then it goes on a connection
   * of its own to the same node, as a real board's would once its loop has stopped.
   */
  private async sayBye(connection: RespConnection): Promise<void> {
    if (this.blockedIn !== connection) {
      await connection.call(...byeRequest(this.id));
      return;
    }
    await sayByeAlone(this.connectedTo, String(this.config.user), String(this.config.password), this.id);
  }

  /** Pulls the plug: no bye, connection dropped, memory (cursor, globals) lost. */
  async powerOff(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    this.connection?.destroy();
    await this.loop;
    this.outbox.length = 0;
    this.outboxBytes = 0;
  }

  private boot(): void {
    this.bootId = randomBytes(6).toString('hex');
    this.after = '';
    this.movedTo = undefined; // RAM only: a board starts from its configured server
    void this.interpreter.resetContext(this.contextId).catch(() => undefined);
  }

  private get contextId(): string {
    return `board-${this.id}`;
  }

  private get heartbeatMs(): number {
    return Number(this.config.hb ?? 5) * 1000;
  }

  private async run(): Promise<void> {
    let delay = this.options.reconnectMinMs ?? 1_000;
    while (this.running) {
      let connection: RespConnection | null = null;
      const home = { host: this.options.host ?? String(this.config.server), port: this.options.port ?? Number(this.config.port) };
      const node = this.movedTo;
      const address = node ?? home;
      this.movedOnConnection = undefined;
      try {
        connection = await RespConnection.connect(address);
        await connection.call('AUTH', String(this.config.user), String(this.config.password));
        if (this.micropythonVersion === undefined) {
          const interpreter = await this.interpreter.info();
          this.micropythonVersion = interpreter.version;
          this.mpyAbi = interpreter.mpyAbi;
        }
        // Right after boot the board first asks where to start (an empty AFTER never
        // claims, §4.2); its hello names that cursor so the manager can tell what the
        // previous boot took and never ran.
        if (this.after === '') this.after = String(((await connection.call('FCALL', 'cm_claim', '2', this.keys.cmd, this.keys.state, '')) as Buffer[])[0]);
        await connection.call('XADD', this.keys.up, 'MAXLEN', '~', '1000', '*', ...this.helloFields());
        this.connectedTo = address;
        this.attach(connection);
        delay = this.options.reconnectMinMs ?? 1_000;
        await this.commandLoop(connection);
        // The connection ended between two requests: a MOVED the outbox got is followed, anything else starts from home.
        this.movedTo = nodeNamed(this.movedOnConnection, address);
      } catch (error) {
        this.detach(connection, error as Error);
        if (!this.running) break;
        // -MOVED: our keys live on another node of a Redis Cluster; go there, at once when
        // home said so (a node that sends us on again gets the backoff: no ping-pong). Any
        // other failure, -READONLY and -ASK included, starts over from home (PROTOCOL.md §8).
        this.movedTo = nodeNamed(movedTarget(error) ?? this.movedOnConnection, address);
        if (this.movedTo && !node) continue;
        // A wrong password will not fix itself quickly; back off like any other failure.
        const jitter = 0.8 + Math.random() * 0.4;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay * jitter);
          // stop() and powerOff() end the wait: a board whose server is gone stops at once.
          this.wakeUp = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wakeUp = undefined;
        delay = Math.min(delay * 2, MAX_RECONNECT_MS);
      }
    }
    this.detach(this.connection, undefined);
  }

  private helloFields(): string[] {
    return [
      'k',
      'hello',
      'v',
      '1',
      'boot',
      this.bootId,
      'p',
      'virtual',
      'mv',
      this.micropythonVersion ?? '?',
      'cv',
      REFERENCE_CLIENT_VERSION,
      'mf',
      '1048576',
      'ip',
      '127.0.0.1',
      'hb',
      String(this.config.hb ?? 5),
      'nm',
      String(this.config.name ?? ''),
      'c',
      this.after,
    ];
  }

  private attach(connection: RespConnection): void {
    this.connection = connection;
    connection.on('close', () => {
      if (this.connection === connection) this.detach(connection, undefined);
    });
    for (const waiter of this.connectionWaiters.splice(0)) waiter(connection);
    for (const item of this.outbox) item.inFlight = false;
    this.pumpOutbox();
    this.emit('connected');
  }

  private detach(connection: RespConnection | null, error: Error | undefined): void {
    connection?.destroy();
    if (this.connection === connection && connection) {
      this.connection = null;
      this.emit('disconnected', error);
    }
  }

  private waitForConnection(): Promise<RespConnection> {
    if (this.connection) return Promise.resolve(this.connection);
    return new Promise((resolve) => this.connectionWaiters.push(resolve));
  }

  /**
   * Claim, run, report; wait with XREAD BLOCK until work or the next heartbeat (§4.2). After a
   * command the board waits with the command's EID as its cursor, without a claim: the wait
   * ends at once when more work is queued, and the manager empties the queue when it records
   * the result.
   */
  private async commandLoop(connection: RespConnection): Promise<void> {
    let heartbeatDue = Date.now() + this.heartbeatMs;
    while (this.running && this.connection === connection) {
      const claimed = await connection.call('FCALL', 'cm_claim', '2', this.keys.cmd, this.keys.state, this.after);
      if (!Array.isArray(claimed)) throw new Error('unexpected claim reply');
      if (claimed.length > 1) {
        const eid = String(claimed[0]);
        // Run only once Redis has the start (§4.2): straight on this connection, not the
        // outbox. If the link drops first, the loop ends and the next one claims the same
        // command again with the old cursor.
        const fields = entryFields(claimed.slice(1) as Buffer[]);
        const cid = fields.get('i')?.toString('latin1') ?? '';
        await connection.call('XADD', this.keys.up, 'MAXLEN', '~', '1000', '*', 'k', 'start', 'i', cid, 'e', eid);
        this.after = eid;
        const rebootAfter = await this.runCommand(cid, fields);
        if (rebootAfter) return this.reboot(connection);
      } else {
        this.after = String(claimed[0]);
      }
      heartbeatDue = await this.waitForWork(connection, this.after, heartbeatDue);
    }
  }

  /**
   * XREAD BLOCK until work comes (then the caller claims) or the next heartbeat is due: the
   * heartbeat is sent and the board waits again, without a claim in between (§4.2): the wait
   * would have ended had anything come after `cursor`. Returns when the next heartbeat is due.
   */
  private async waitForWork(connection: RespConnection, cursor: string, heartbeatDue: number): Promise<number> {
    while (this.running && this.connection === connection) {
      if (Date.now() >= heartbeatDue) {
        // Acknowledged before the next request, as the MicroPython client does: two commands
        // in one packet make Valkey 8 give the connection a query buffer of its own (20 KB,
        // for seconds) instead of sharing one among its clients.
        await this.heartbeatNow(connection);
        heartbeatDue = Date.now() + this.heartbeatMs;
      }
      this.blockedIn = connection;
      const woke = await connection
        .call('XREAD', 'COUNT', '1', 'BLOCK', Math.max(1, heartbeatDue - Date.now()), 'STREAMS', this.keys.cmd, cursor)
        .finally(() => (this.blockedIn = undefined));
      if (woke !== null) break;
    }
    return heartbeatDue;
  }

  private heartbeatNow(connection: RespConnection): Promise<unknown> {
    const fields = ['k', 'hb', 'mf', '1048576', ...(this.busy ? ['busy', this.busy] : [])];
    return connection.call('XADD', this.keys.up, 'MAXLEN', '~', '1000', '*', ...fields).catch(() => undefined);
  }

  /** Runs one claimed command; returns true when the board must reboot afterwards. */
  private async runCommand(cid: string, fields: Map<string, Buffer>): Promise<boolean> {
    const op = fields.get('o')?.toString('latin1') ?? '';
    this.busy = cid;
    // Unlike a small board, a virtual board keeps its heartbeat going while it works.
    this.heartbeatTimer = setInterval(() => void (this.connection && this.heartbeatNow(this.connection)), this.heartbeatMs);
    try {
      const res = op === 'reboot' ? ['ok', '1', 'n', '0'] : await runOperation(this.operationContext(), cid, fields);
      const delivered = this.send(['k', 'res', 'i', cid, ...res], true);
      if (op === 'reboot') await delivered;
      return op === 'reboot';
    } finally {
      clearInterval(this.heartbeatTimer);
      this.busy = null;
    }
  }

  private operationContext(): OperationContext {
    return {
      boardId: this.id,
      contextId: this.contextId,
      fs: this.fs,
      interpreter: this.interpreter,
      config: this.config,
      saveConfig: async () => this.options.saveConfig?.(this.config),
      info: () => ({
        p: 'virtual',
        mv: this.micropythonVersion,
        cv: REFERENCE_CLIENT_VERSION,
        mf: 1048576,
        ip: '127.0.0.1',
        boot: this.bootId,
        mpy: this.mpyAbi,
      }),
      send: (fields) => void this.send(fields, false),
      connection: () => this.waitForConnection(),
      chunkBytes: this.options.chunkBytes ?? 4096,
      onExec: (cid) => {
        this.executed.push(cid);
        this.emit('executed', cid);
      },
      stopRequested: async (cid) => {
        const connection = this.connection;
        if (!connection) return false;
        const stop = await connection.call('HGET', this.keys.state, 'stop');
        return Buffer.isBuffer(stop) && stop.toString() === cid;
      },
      acknowledged: async (cid) => {
        const connection = this.connection;
        const ack = connection ? await connection.call('HGET', this.keys.state, 'ack').catch(() => null) : null;
        const [ackCid, seq] = Buffer.isBuffer(ack) ? ack.toString().split(' ') : [];
        return ackCid === cid ? Number(seq) : -1;
      },
    };
  }

  private async reboot(connection: RespConnection): Promise<void> {
    await connection.call('XADD', this.keys.up, 'MAXLEN', '~', '1000', '*', 'k', 'bye', 'why', 'reboot').catch(() => undefined);
    this.detach(connection, undefined);
    this.boot();
    this.emit('rebooted');
    await new Promise((resolve) => setTimeout(resolve, this.options.bootDelayMs ?? 300));
  }

  // --- uplink outbox: in order, retried after reconnects, results never dropped ---------

  /** Queues an uplink entry; resolves when Redis has acknowledged it. */
  private send(fields: Array<string | Buffer>, essential: boolean): Promise<void> {
    const bytes = fields.reduce((sum, value) => sum + (typeof value === 'string' ? value.length : value.length), 0);
    if (!essential && this.outboxBytes + bytes > MAX_OUTBOX_BYTES) return Promise.resolve();
    const item: OutboxItem & { done?: () => void } = { fields, bytes, essential, inFlight: false };
    const delivered = new Promise<void>((resolve) => (item.done = resolve));
    this.outbox.push(item);
    this.outboxBytes += bytes;
    this.pumpOutbox();
    return delivered;
  }

  private pumpOutbox(): void {
    const connection = this.connection;
    if (!connection) return;
    for (const item of this.outbox) {
      if (item.inFlight) continue;
      item.inFlight = true;
      connection.call('XADD', this.keys.up, 'MAXLEN', '~', '1000', '*', ...item.fields).then(
        () => this.acknowledge(item),
        (error) => {
          if (isRedirectOrFailover(error)) {
            // Not this node, or not now (a cluster or a failover): kept, and sent again once
            // the board has reconnected where it should (the loop follows a MOVED).
            item.inFlight = false;
            if (this.connection === connection) this.movedOnConnection ??= movedTarget(error);
            connection.destroy(error);
          } else if (error instanceof RespError) this.acknowledge(item);
          // Refused by Redis (e.g. too large): retrying cannot help; drop it.
          else item.inFlight = false;
        },
      );
    }
  }

  private acknowledge(item: OutboxItem & { done?: () => void }): void {
    const index = this.outbox.indexOf(item);
    if (index >= 0) {
      this.outbox.splice(index, 1);
      this.outboxBytes -= item.bytes;
    }
    item.done?.();
  }
}

/** Where a MOVED sends the board: an empty host means the node it was talking to. */
function nodeNamed(moved: NodeAddress | undefined, current: NodeAddress): NodeAddress | undefined {
  return moved && { host: moved.host || current.host, port: moved.port };
}

/** The XADD of a board's `bye` on shutdown (§6). */
function byeRequest(boardId: string): string[] {
  return ['XADD', boardKeys(boardId).up, 'MAXLEN', '~', '1000', '*', 'k', 'bye', 'why', 'shutdown'];
}

/**
 * A board's `bye` on a connection of its own, logged in with the board's credentials: for a
 * board whose connection waits in XREAD BLOCK, or whose program has already stopped.
 */
export async function sayByeAlone(address: { host: string; port: number }, user: string, password: string, boardId: string): Promise<void> {
  const connection = await RespConnection.connect(address);
  try {
    await connection.call('AUTH', user, password);
    await connection.call(...byeRequest(boardId));
  } finally {
    connection.destroy();
  }
}

/** A claimed entry's field/value list as a map. */
function entryFields(flat: Buffer[]): Map<string, Buffer> {
  const fields = new Map<string, Buffer>();
  for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i]!.toString('latin1'), flat[i + 1]!);
  return fields;
}

/**
 * Sends commands to boards and follows each one to its end (PROTOCOL.md §4, §6): queued →
 * running → ok/error, or expired (never claimed in time), timeout (claimed, no result in
 * time), cancelled, lost (the board rebooted while running it). Output and results are
 * bounded; finished commands stay queryable for a while and go into the board's history.
 */
import { EventEmitter } from 'node:events';
import { newCommandId, streamIdGreater } from './command-id.js';
import { StringDecoder } from 'node:string_decoder';
import type { FleetStore } from '../redis/fleet-store.js';
import type { Logger } from '../log.js';
import type { BoardRegistry, BoardState } from './board-registry.js';
import {
  DEFAULT_EXEC_TIMEOUT_MS,
  describeCommand,
  encodeCommandFields,
  redactConfig,
  validateCommandRequest,
  type CommandOp,
  type CommandRequest,
} from './command-ops.js';
import { UPLINK_LIMITS, type UplinkMessage } from './uplink-messages.js';
import { prepareUpload, discardUpload } from '../transfer/upload-blob.js';
import { DownloadAssembler } from '../transfer/download-assembler.js';
import { HistoryWriter, historyRecord } from './history-writer.js';

export type CommandStatus = 'queued' | 'running' | 'ok' | 'error' | 'timeout' | 'expired' | 'cancelled' | 'lost';
export const FINAL_STATUSES: ReadonlySet<CommandStatus> = new Set(['ok', 'error', 'timeout', 'expired', 'cancelled', 'lost']);

export interface OutputChunk {
  stream: 'stdout' | 'stderr';
  text: string;
}

/** What callers see of a command. */
export interface CommandView {
  cid: string;
  boardId: string;
  board: string;
  op: CommandOp;
  summary: string;
  status: CommandStatus;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  expiresAt: number;
  timeoutMs: number;
  output: OutputChunk[];
  outputTruncated: boolean;
  /** A user asked to stop it while it ran (the board stops it if it can, §4.4). */
  stopRequested: boolean;
  /** `get`: bytes received from the board so far. */
  transferredBytes: number;
  error: string | null;
  errorCode: string | null;
  result: unknown;
}

interface CommandRecord {
  view: CommandView;
  eid: string | null;
  nextSeq: number;
  outputBytes: number;
  /** For `put`: blob size to delete when the command ends. */
  blobSize: number | null;
  download: DownloadAssembler | null;
  file: Buffer | null;
  expiring: boolean;
  /** The board said it started it (`start`, `out` or `dat` arrived); null: unknown (restored after a manager restart). */
  started: boolean | null;
  /** Output is UTF-8 that a board may split anywhere between entries (§6): decoded per stream. */
  decoders: { stdout: StringDecoder; stderr: StringDecoder } | null;
  /** When progress (bytes of a `get`) was last announced. */
  progressAt: number;
}

export interface OutputEvent {
  cid: string;
  boardId: string;
  board: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface DispatcherEvents {
  command: [view: CommandView];
  output: [event: OutputEvent];
}

export interface SendOptions {
  /** How long the command may wait for an offline board (default 1 h, at most 7 days). */
  expireMs?: number;
  /** Time limit once the board runs it (exec: its own timeout; others default 60 s). */
  timeoutMs?: number;
}

export const DEFAULT_EXPIRE_MS = 3_600_000;
const MAX_EXPIRE_MS = 7 * 24 * 3_600_000;
const DEFAULT_TIMEOUT_MS = 60_000;
/** Extra time after a command's timeout before the manager gives up waiting for it. */
const TIMEOUT_GRACE_MS = 2_000;
const MAX_PENDING_PER_BOARD = 1_000;
const FINISHED_KEPT = 5_000;
/** Downloaded files kept for their callers, all together (the newest always stays). */
const FILES_KEPT_BYTES = 64 * 1024 * 1024;
const PROGRESS_INTERVAL_MS = 200;
/** The manager acknowledges every this many `dat` entries of a `get` (PROTOCOL.md §7.3). */
const DATA_ACK_EVERY = 64;
/** Added to a board's ENOMEM answer to anything but exec. */
export const OUT_OF_MEMORY_HINT = 'the board ran out of memory: upload smaller files, or free memory on the board (a reset frees it all)';

export class CommandDispatcher extends EventEmitter<DispatcherEvents> {
  private readonly active = new Map<string, CommandRecord>();
  private readonly finished = new Map<string, CommandRecord>();
  private readonly keptFiles: CommandRecord[] = [];
  private keptFileBytes = 0;
  private readonly history: HistoryWriter;

  constructor(
    private readonly store: FleetStore,
    private readonly registry: BoardRegistry,
    private readonly log: Logger,
  ) {
    super();
    this.setMaxListeners(0);
    this.history = new HistoryWriter(store, log);
  }

  /** Re-adopts commands that were pending when the manager last stopped. */
  async restore(board: BoardState): Promise<void> {
    for (const [cid, meta] of await this.store.pendingCommands(board.id)) {
      const record = this.newRecord(cid, board, {
        op: String(meta.op ?? 'exec') as CommandOp,
        summary: String(meta.summary ?? meta.op ?? ''),
        createdAt: Number(meta.createdAt ?? Date.now()),
        expiresAt: Number(meta.expiresAt ?? Date.now()),
        timeoutMs: Number(meta.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      });
      record.eid = typeof meta.e === 'string' ? meta.e : null;
      record.started = null;
      if (typeof meta.blobSize === 'number') record.blobSize = meta.blobSize;
      if (record.view.op === 'get') record.download = new DownloadAssembler();
      this.active.set(cid, record);
    }
  }

  async send(board: BoardState, request: CommandRequest, options: SendOptions = {}): Promise<CommandView> {
    const now = Date.now();
    const cid = newCommandId();
    const expireMs = Math.min(Math.max(options.expireMs ?? DEFAULT_EXPIRE_MS, 1_000), MAX_EXPIRE_MS);
    const timeoutMs = request.op === 'exec' ? (request.timeoutMs ?? options.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS) : (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const summary = describeCommand(request);
    // Validate (encoding validates) before anything is stored, so bad input leaves no trace.
    if (request.op === 'put') validateCommandRequest(request);
    const fields = request.op === 'put' ? null : encodeCommandFields(request, timeoutMs);
    const record = this.newRecord(cid, board, { op: request.op, summary, createdAt: now, expiresAt: now + expireMs, timeoutMs });
    if (request.op === 'get') record.download = new DownloadAssembler();
    // Registered before enqueueing: a fast board may answer before enqueue returns.
    this.active.set(cid, record);
    try {
      let entryFields = fields;
      if (request.op === 'put') {
        const upload = await prepareUpload(this.store, board.id, cid, request.path, request.data, Math.ceil(expireMs / 1000));
        record.blobSize = upload.size;
        entryFields = upload.fields;
      }
      const meta = { op: request.op, summary, createdAt: now, expiresAt: record.view.expiresAt, timeoutMs, blobSize: record.blobSize };
      const { eid } = await this.store.enqueue(board.id, cid, meta, entryFields!, MAX_PENDING_PER_BOARD);
      record.eid = eid;
    } catch (error) {
      this.finish(record, 'error', { error: `not queued: ${(error as Error).message}`, errorCode: 'EFAIL' }, false);
      return record.view;
    }
    if (!FINAL_STATUSES.has(record.view.status)) this.emit('command', record.view);
    return record.view;
  }

  get(cid: string): CommandView | undefined {
    return (this.active.get(cid) ?? this.finished.get(cid))?.view;
  }

  /** The downloaded file of a finished `get` (null once it gave way to newer ones). */
  file(cid: string): Buffer | null {
    return this.finished.get(cid)?.file ?? null;
  }

  /**
   * Downloaded files wait in memory for whoever asked (the CLI or the UI fetches them at
   * once); the oldest give way when they hold more than FILES_KEPT_BYTES, so memory stays
   * bounded however many gets run.
   */
  private keepFile(record: CommandRecord): void {
    this.keptFiles.push(record);
    this.keptFileBytes += record.file!.length;
    while (this.keptFileBytes > FILES_KEPT_BYTES && this.keptFiles.length > 1) {
      const oldest = this.keptFiles.shift()!;
      this.keptFileBytes -= oldest.file?.length ?? 0;
      oldest.file = null;
    }
  }

  /** Whether a command of this kind for this board has not finished yet. */
  hasActive(boardId: string, op: CommandOp): boolean {
    for (const record of this.active.values()) if (record.view.boardId === boardId && record.view.op === op) return true;
    return false;
  }

  activeCount(): number {
    return this.active.size;
  }

  /** Resolves when every command has ended, or at the timeout with their current state. */
  wait(cids: string[], timeoutMs: number): Promise<CommandView[]> {
    const views = () => cids.map((cid) => this.get(cid)).filter((view): view is CommandView => view !== undefined);
    // Counted down as commands finish, so waiting for a whole fleet stays linear.
    const open = new Set(
      cids.filter((cid) => {
        const view = this.get(cid);
        return view !== undefined && !FINAL_STATUSES.has(view.status);
      }),
    );
    if (open.size === 0) return Promise.resolve(views());
    return new Promise((resolve) => {
      const onCommand = (view: CommandView) => {
        if (FINAL_STATUSES.has(view.status) && open.delete(view.cid) && open.size === 0) finish();
      };
      const finish = () => {
        clearTimeout(timer);
        this.off('command', onCommand);
        resolve(views());
      };
      const timer = setTimeout(finish, timeoutMs);
      this.on('command', onCommand);
    });
  }

  async cancel(cid: string): Promise<CommandView> {
    const record = this.active.get(cid);
    if (!record) {
      const view = this.get(cid);
      if (!view) throw new Error(`no command ${cid}`);
      return view;
    }
    if (record.view.status === 'queued' && record.eid) {
      const outcome = await this.store.cancel(record.view.boardId, cid, record.eid);
      if (outcome === 'cancelled') {
        this.finish(record, 'cancelled', { error: 'cancelled before the board took it' });
        return record.view;
      }
    }
    // Taken by the board: ask it to stop (§4.4). A board that cannot interrupt the code
    // finishes it; its result then says so.
    if (!FINAL_STATUSES.has(record.view.status) && !record.view.stopRequested) {
      await this.store.requestStop(record.view.boardId, cid);
      record.view.stopRequested = true;
      this.emit('command', record.view);
    }
    return record.view;
  }

  /** A validated uplink message about a command, from `board`. */
  handle(board: BoardState, message: UplinkMessage & { i: string }, now: number): 'ok' | 'unknown' | 'duplicate' {
    const record = this.active.get(message.i);
    if (!record || record.view.boardId !== board.id) return this.finished.has(message.i) ? 'duplicate' : 'unknown';
    const view = record.view;
    if (message.k !== 'res') record.started = true;
    switch (message.k) {
      case 'start':
        if (view.status === 'queued') this.markRunning(record, board, now);
        return 'ok';
      case 'out':
      case 'dat': {
        if (view.status === 'queued') this.markRunning(record, board, now);
        if (message.n < record.nextSeq) return 'duplicate';
        record.nextSeq = message.n + 1;
        if (message.k === 'dat') {
          // Flow control (§7.3): a board sends at most DATA_WINDOW entries past the last
          // acknowledged one, so a lagging manager slows it down instead of losing data to
          // the uplink's MAXLEN trimming.
          if (message.n % DATA_ACK_EVERY === DATA_ACK_EVERY - 1) {
            void this.store.acknowledgeData(board.id, view.cid, message.n).catch(() => undefined);
          }
          try {
            record.download?.add(message.o, message.d);
          } catch (error) {
            this.finish(record, 'error', { error: (error as Error).message, errorCode: 'ENOSPC' });
            return 'ok';
          }
          view.transferredBytes += message.d.length;
          // Progress for whoever shows a download: a few times a second, not per chunk.
          if (now - record.progressAt >= PROGRESS_INTERVAL_MS) {
            record.progressAt = now;
            this.emit('command', view);
          }
          return 'ok';
        }
        if (record.outputBytes + message.d.length > UPLINK_LIMITS.outputPerCommand) {
          view.outputTruncated = true;
          return 'ok';
        }
        record.outputBytes += message.d.length;
        this.addOutput(record, message.s === 1 ? 'stdout' : 'stderr', message.d);
        return 'ok';
      }
      case 'res':
        this.complete(record, board, message);
        return 'ok';
      default:
        return 'unknown';
    }
  }

  private addOutput(record: CommandRecord, stream: 'stdout' | 'stderr', data: Buffer): void {
    record.decoders ??= { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
    const text = record.decoders[stream].write(data);
    if (text !== '') this.addOutputText(record, stream, text); // '': a character's first bytes
  }

  private addOutputText(record: CommandRecord, stream: 'stdout' | 'stderr', text: string): void {
    const view = record.view;
    const last = view.output[view.output.length - 1];
    if (last && last.stream === stream) last.text += text;
    else view.output.push({ stream, text });
    this.emit('output', { cid: view.cid, boardId: view.boardId, board: view.board, stream, text });
  }

  /**
   * The board restarted (new boot id): what it was running will never finish, and what the
   * previous boot claimed without starting will never run. `cursor` is the claim cursor
   * the new boot starts from (hello `c`, §4.2): every entry up to it was taken by an
   * earlier boot. Without it (an older client) only commands seen starting are judged.
   */
  boardRebooted(board: BoardState, cursor?: string): void {
    for (const record of this.active.values()) {
      if (record.view.boardId !== board.id) continue;
      const takenBefore = record.eid !== null && cursor !== undefined && !streamIdGreater(record.eid, cursor);
      if (record.started === true) {
        if (record.view.status === 'running') this.finish(record, 'lost', { error: 'board restarted while running the command', errorCode: 'EFAIL' });
      } else if (record.started === false && takenBefore) {
        this.finish(record, 'lost', { error: 'not run: the board restarted after taking the command, before starting it', errorCode: 'ENOTRUN' });
      } else if (takenBefore || record.view.status === 'running') {
        this.finish(record, 'lost', { error: 'board restarted after taking the command; it may not have run', errorCode: 'EFAIL' });
      }
    }
  }

  /** Expiry and timeouts; call a few times a second. */
  sweep(now: number): void {
    for (const record of this.active.values()) {
      const view = record.view;
      if (view.status === 'queued' && now >= view.expiresAt && !record.expiring && record.eid) {
        record.expiring = true;
        void this.expire(record, now);
      } else if (view.status === 'running' && now >= (view.startedAt ?? now) + view.timeoutMs + TIMEOUT_GRACE_MS) {
        const seconds = Math.round(view.timeoutMs / 1000);
        const error = record.started
          ? `no result within ${seconds} s`
          : `the board took the command when it expired but reported neither its start nor a result within ${seconds} s; it may not have run`;
        this.finish(record, 'timeout', { error, errorCode: 'ETIMEDOUT' });
      }
    }
  }

  private async expire(record: CommandRecord, now: number): Promise<void> {
    try {
      const outcome = await this.store.cancel(record.view.boardId, record.view.cid, record.eid!);
      if (outcome === 'cancelled') {
        this.finish(record, 'expired', { error: 'the board did not take the command before it expired', errorCode: 'ETIMEDOUT' });
      } else if (record.view.status === 'queued') {
        // Claimed, but its `start` has not reached us: in flight, lost in a Redis restart,
        // or the board lost the claim's reply and will claim it again when it reconnects
        // (§4.2). It is the board's now; a restart before starting it is told by its
        // next hello (boardRebooted), otherwise the timeout runs from here.
        const board = this.registry.get(record.view.boardId);
        if (board) this.markRunning(record, board, now);
      }
    } catch (error) {
      this.log('warn', `could not expire command ${record.view.cid}: ${(error as Error).message}`);
    } finally {
      record.expiring = false;
    }
  }

  private markRunning(record: CommandRecord, board: BoardState, now: number): void {
    record.view.status = 'running';
    record.view.startedAt = now;
    this.registry.setBusy(board, record.view.cid, now + record.view.timeoutMs, now);
    this.emit('command', record.view);
  }

  private complete(record: CommandRecord, board: BoardState, message: Extract<UplinkMessage, { k: 'res' }>): void {
    const view = record.view;
    if (message.tr) view.outputTruncated = true;
    if (message.n > record.nextSeq) view.outputTruncated = true; // entries were lost on the way
    let result = view.op === 'cfg_get' ? redactConfig(message.r) : message.r;
    if (!message.ok) {
      // Stopped because a user asked: that is a cancellation, not a failure of the code.
      const stopped = message.ec === 'EINTR' && view.stopRequested;
      let error = stopped ? 'stopped' : (message.e ?? 'failed');
      // A board's MemoryError only names the allocation; what to do is the same for every
      // operation but exec (whose MemoryError is the user's code's own).
      if (message.ec === 'ENOMEM' && view.op !== 'exec') error += `; ${OUT_OF_MEMORY_HINT}`;
      this.finish(record, stopped ? 'cancelled' : 'error', { error, errorCode: message.ec ?? 'EFAIL', result, fromResult: true });
      return;
    }
    if (record.download) {
      try {
        record.file = record.download.finish(message.r);
        this.keepFile(record);
      } catch (error) {
        this.finish(record, 'error', { error: (error as Error).message, errorCode: 'EHASH', result, fromResult: true });
        return;
      }
    }
    if (view.op === 'rename' && typeof (result as { name?: unknown })?.name !== 'string') result = { name: board.name };
    this.finish(record, 'ok', { result, fromResult: true });
  }

  /**
   * `outcome.fromResult`: the board sent the command's `res`, so it had the claim reply of its
   * queue entry: the history write deletes the entries up to it from the queue (§4.2).
   */
  private finish(
    record: CommandRecord,
    status: CommandStatus,
    outcome: { error?: string; errorCode?: string; result?: unknown; fromResult?: boolean },
    recordHistory = true,
  ): void {
    const view = record.view;
    if (FINAL_STATUSES.has(view.status)) return;
    // Bytes of an unfinished character (output cut short) show as U+FFFD.
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = record.decoders?.[stream].end();
      if (rest) this.addOutputText(record, stream, rest);
    }
    record.decoders = null;
    view.status = status;
    view.finishedAt = Date.now();
    view.error = outcome.error ?? null;
    view.errorCode = outcome.errorCode ?? null;
    view.result = outcome.result ?? null;
    this.active.delete(view.cid);
    this.finished.set(view.cid, record);
    if (this.finished.size > FINISHED_KEPT) this.finished.delete(this.finished.keys().next().value!);
    const board = this.registry.get(view.boardId);
    if (board) this.registry.clearBusy(board, view.cid, Date.now());
    record.download = null;
    if (record.blobSize !== null) {
      void discardUpload(this.store, view.boardId, view.cid, record.blobSize).catch(() => undefined);
    }
    if (recordHistory) this.history.add(view.boardId, view.cid, historyRecord(view), outcome.fromResult ? record.eid : null);
    this.emit('command', view);
  }

  /** Writes the history of every command finished so far (finished commands are written in batches). */
  flushHistory(): Promise<void> {
    return this.history.flush();
  }

  private newRecord(
    cid: string,
    board: BoardState,
    base: { op: CommandOp; summary: string; createdAt: number; expiresAt: number; timeoutMs: number },
  ): CommandRecord {
    return {
      view: {
        cid,
        boardId: board.id,
        board: board.name,
        ...base,
        status: 'queued',
        startedAt: null,
        finishedAt: null,
        output: [],
        outputTruncated: false,
        stopRequested: false,
        transferredBytes: 0,
        error: null,
        errorCode: null,
        result: null,
      },
      eid: null,
      nextSeq: 0,
      outputBytes: 0,
      blobSize: null,
      download: null,
      file: null,
      expiring: false,
      started: false,
      decoders: null,
      progressAt: 0,
    };
  }
}

/**
 * One powered-on interpreter of a MicroPython lab board (micropython-board.ts): the worker
 * thread that runs it (micropython-board-worker.mjs), the requests sent to it and their
 * replies, its console output decoded, and its sockets (BoardNetwork). A board throws its
 * session away on every reset and starts a new one; what the board does with the worker's
 * boot, halt and fault messages (its modes, events and resets) stays with the board.
 */
import { Worker } from 'node:worker_threads';
import { TextDecoder } from 'node:util';
import { BoardNetwork, type BridgeCall, type BridgeNotice } from './micropython-board-network.js';
import { SHARED_BYTES, sharedViews } from './micropython-board-protocol.mjs';
import { MicroPythonBoardOffError, type Reply, type WorkerMessage } from './micropython-board-types.js';
import { unpackedUrl } from '../package-info.js';

// In the packaged app the worker and its imports are unpacked from app.asar (a worker thread loads
// real files), so its URL is mapped there.
const WORKER_URL = unpackedUrl(new URL('./micropython-board-worker.mjs', import.meta.url));

export type SessionRequest =
  | { type: 'run'; code: string; single: boolean }
  | { type: 'heap' }
  | { type: 'sync' }
  | { type: 'interrupt' }
  | { type: 'power-cut'; path: string; count: number };

/** What the board hears from its session. */
export interface SessionHandlers {
  /** The board wrote to its flash outside the files (delivered even after the session closed: it reached the flash). */
  flash(message: Extract<WorkerMessage, { type: 'flash' }>): void;
  console(stream: 'stdout' | 'stderr', text: string): void;
  /** Boot, halt, fault, reset and log messages, while the session is open. */
  message(message: Exclude<WorkerMessage, { type: 'flash' | 'console' | 'call' | 'net' | 'reply' }>): void;
  /** The worker ended on its own (not by close()): `why` from its error, or its exit code. */
  exit(why: string): void;
}

export class BoardSession {
  readonly network: BoardNetwork;
  /** The control words shared with the worker (CTL_* in micropython-board-protocol.mjs). */
  readonly ctl: Int32Array;
  /** Set once the worker said it booted (or halted while booting). */
  booted = false;
  /** Settles what start(), a reset or a soft reset wait for: the boot of this interpreter. */
  readonly boot: { resolve: () => void; reject: (error: Error) => void };
  readonly booting: Promise<void>;
  private readonly worker: Worker;
  private readonly decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  private readonly pending = new Map<number, (reply: Reply | undefined, why: string) => void>();
  private nextId = 1;
  private closed = false;

  /** Starts the worker; `workerData` is the board's configuration (see micropython-board-worker.mjs), without the shared memory. */
  constructor(workerData: Record<string, unknown>, handlers: SessionHandlers) {
    const shared = new SharedArrayBuffer(SHARED_BYTES);
    this.worker = new Worker(WORKER_URL, { workerData: { ...workerData, shared } });
    this.network = new BoardNetwork(shared);
    this.ctl = sharedViews(shared).ctl;
    let boot!: BoardSession['boot'];
    this.booting = new Promise<void>((resolve, reject) => {
      boot = { resolve, reject };
    });
    this.boot = boot;
    let lastError: unknown;
    this.worker.on('message', (msg: WorkerMessage) => {
      // What reached the flash stays there, even from an interpreter that reset since.
      if (msg.type === 'flash') handlers.flash(msg);
      else if (!this.closed) this.onMessage(msg, handlers);
    });
    this.worker.on('error', (error) => {
      lastError = error;
    });
    this.worker.on('exit', (code) => {
      if (this.closed) return; // terminated on purpose
      handlers.exit(lastError instanceof Error ? lastError.message : `worker exited with code ${code}`);
    });
  }

  private onMessage(msg: Exclude<WorkerMessage, { type: 'flash' }>, handlers: SessionHandlers): void {
    switch (msg.type) {
      case 'console': {
        const text = this.decoders[msg.stream].decode(msg.data, { stream: true });
        if (text) handlers.console(msg.stream, text);
        return;
      }
      case 'call': {
        const { type: _type, ...call } = msg;
        this.network.call(call as BridgeCall);
        return;
      }
      case 'net': {
        const { type: _type, ...notice } = msg;
        this.network.notice(notice as BridgeNotice);
        return;
      }
      case 'reply':
        this.pending.get(msg.id)?.(msg, '');
        return;
      default:
        handlers.message(msg);
    }
  }

  /** Sends a request; rejects with MicroPythonBoardOffError after `timeoutMs`, or when the session closes first. */
  request(message: SessionRequest, timeoutMs?: number): Promise<Reply> {
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => settle(undefined, `no answer within ${timeoutMs} ms`), timeoutMs);
      const settle = (reply: Reply | undefined, why: string): void => {
        if (!this.pending.delete(id)) return;
        clearTimeout(timer);
        if (reply) resolve(reply);
        else reject(new MicroPythonBoardOffError(why));
      };
      this.pending.set(id, settle);
      this.worker.postMessage({ ...message, id });
    });
  }

  /** Answers every pending request with `reply` (for Python the lab had to stop); returns how many there were. */
  answerPending(reply: Reply): number {
    const waiting = [...this.pending.values()];
    for (const settle of waiting) settle(reply, '');
    return waiting.length;
  }

  /** Stops the interpreter and its connections; requests still pending fail with `why`. */
  async close(why: string): Promise<void> {
    this.closed = true;
    for (const settle of [...this.pending.values()]) settle(undefined, why);
    this.network.close();
    await this.worker.terminate();
  }
}

/**
 * The MicroPython board lab: a simulated ESP8266 that runs our real board firmware.
 *
 * One board = one MicroPython WebAssembly interpreter in a worker thread of its own
 * (micropython-board-worker.mjs), with an ESP8266-sized heap, a `socket` module backed by
 * real TCP (micropython-board-network.ts owns the sockets), small `network` and `machine`
 * shims (lab-python/), and its flash file system mapped to a host folder.
 *
 * Booting: boot.py if present; then, if the firmware module (`cm`) is there,
 * `client = cm.start()` and the worker calls `client.step(stepWaitMs)` over and over
 * (control returns to the event loop between steps, which is when this port collects
 * garbage); otherwise main.py runs as is.
 *
 * Files: the folder is copied into the interpreter at boot; what the board changes is
 * written back after every step and run(), before anything it sends on a socket (so a
 * peer that hears from the board finds its files on the host), while it sleeps, and
 * before a reset. A large .py module may not compile within the heap (see below): ship
 * the firmware as .mpy, as on a board.
 *
 * Shortcuts compared with a real ESP8266, written down as the lab rules ask:
 * - This port collects garbage only between steps, never in the middle of one. With
 *   `heapLimit: 'memory-error'` (default) the GC heap cannot grow past `heapBytes` and an
 *   allocation beyond raises a real MemoryError, but a step's garbage must then fit in the
 *   free heap (a board would collect and go on). With 'live-check' the heap may grow
 *   during a step and the board is out of memory when what is still referenced after the
 *   step's collection exceeds the budget (a transient peak goes unnoticed). A MemoryError
 *   out of step() resets the board ('out-of-memory'), as a watchdog would; any other
 *   uncaught exception (and a MemoryError out of start() or main.py, where a reset would
 *   only loop) stops the program and leaves the board at its REPL ('exit'), as on a board.
 * - gc.mem_free() is the port's own and adds 128 MiB ("max new split"); heap() does not.
 * - time.sleep() busy-waits in this port (the lab makes it nap, the timing is unchanged).
 * - Sockets work whether or not the WLAN is connected; only TCP; the peer sees a reset
 *   board's connections close at once (a real one would vanish silently); the flash has
 *   no size limit; sys.platform is 'webassembly'; os.dupterm does not exist.
 * - reset() (the button) is honoured between steps, after writing the files back.
 *
 * Library code: never prints; the board's console comes out as 'stdout'/'stderr' events,
 * diagnostics through `onLog`.
 */
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import { TextDecoder } from 'node:util';
import path from 'node:path';
import type { LogLevel } from '../log.js';
import { BoardNetwork, type BridgeCall, type BridgeNotice } from './micropython-board-network.js';
import { SHARED_BYTES, CTL_IN_STEP, CTL_FEED, RESET_CAUSE } from './micropython-board-protocol.mjs';

export interface MicroPythonBoardOptions {
  /** Host folder = the board's flash. Created if missing. */
  folder: string;
  /** The board's GC heap (default 36 KB, an ESP8266). */
  heapBytes?: number;
  /** How the heap budget is enforced (see the class comment). Default 'memory-error'. */
  heapLimit?: 'memory-error' | 'live-check';
  /** `wait_ms` passed to each firmware step (default 50). */
  stepWaitMs?: number;
  /** The lab's access point; connecting with another ssid/password never succeeds. */
  wifi?: { ssid: string; password: string };
  onLog?: (level: LogLevel, message: string) => void;
  /** Prefix of log lines (default: the folder's name). */
  label?: string;
  /** Module whose start() returns the client to step (default 'cm', our firmware). */
  firmwareModule?: string;
  /** Longest wait between steps, whatever step() returned (default 20 ms). */
  maxIdleMs?: number;
  /** A step busy (not waiting on the network) this long resets the board ('crash'). 0: off. Default 10 s. */
  watchdogMs?: number;
}

export type BoardResetReason = 'machine.reset' | 'button' | 'out-of-memory' | 'crash';
export type BoardMode = 'firmware' | 'main' | 'idle';

export interface BoardHeap {
  /** The GC heap (≈ heapBytes less the allocation tables), without the lab's own Python. */
  total: number;
  used: number;
  free: number;
  /** Highest use, garbage included, seen at the end of a step or run since the last heap(). */
  peakUsed: number;
}

export interface BoardRunResult {
  stdout: string;
  stderr: string;
  /** Last line of the traceback ("NameError: ..."), or why the run did not finish. */
  error?: string;
}

export interface BoardExit {
  reason: 'power-off' | 'program-ended' | 'exception';
  /** Where the exception was raised: 'start()', 'step()' or 'main.py'. */
  during?: string;
}

export interface BoardBoot {
  /** Boots since start(), 1 first. */
  count: number;
  mode: BoardMode;
  /** machine.reset_cause() of this boot. */
  cause: number;
  /**
   * Lab figures: heap added for the lab's own Python and hidden from the budget, what its
   * modules actually hold of it, malloc space taken to lock the RAM, wasm memory size.
   */
  labBytes: number;
  labPythonBytes: number;
  heldBytes: number;
  wasmBytes: number;
}

export interface MicroPythonBoardEvents {
  stdout: [text: string];
  stderr: [text: string];
  reset: [reason: BoardResetReason];
  outOfMemory: [message: string];
  exit: [info: BoardExit];
  boot: [info: BoardBoot];
}

/** The board's program failed while booting (its start() raised); see 'stderr'. */
export class MicroPythonBoardBootError extends Error {
  override readonly name = 'MicroPythonBoardBootError';
}

/** The board is off (never started, powered off, or it stopped while the request ran). */
export class MicroPythonBoardOffError extends Error {
  override readonly name = 'MicroPythonBoardOffError';
  constructor(what: string) {
    super(`the board is off: ${what}`);
  }
}

type WorkerMessage =
  | { type: 'log'; level: LogLevel; message: string }
  | { type: 'console'; stream: 'stdout' | 'stderr'; data: Uint8Array }
  | ({ type: 'call' } & BridgeCall)
  | ({ type: 'net' } & BridgeNotice)
  | { type: 'booted'; mode: BoardMode; hiddenBytes: number; labPythonBytes: number; heldBytes: number; wasmBytes: number }
  | { type: 'halted'; reason: 'exception' | 'program-ended'; during?: string; memory?: boolean }
  | { type: 'fault'; kind: 'memory' | 'crash'; message: string }
  | { type: 'machine-reset' }
  | { type: 'reply'; id: number; stdout?: string; stderr?: string; failed?: boolean; heap?: BoardHeap };

type Reply = Extract<WorkerMessage, { type: 'reply' }>;

interface Pending {
  settle: (reply: Reply | undefined, why: string) => void;
}

/** One powered-on interpreter; replaced on every reset. */
interface Session {
  worker: Worker;
  network: BoardNetwork;
  shared: Int32Array;
  booted: boolean;
  boot: { resolve: () => void; reject: (error: Error) => void };
  decoders: { stdout: TextDecoder; stderr: TextDecoder };
}

/** The access point boards see when the `wifi` option is not given. */
export const DEFAULT_LAB_WIFI: Readonly<{ ssid: string; password: string }> = { ssid: 'cm-lab', password: 'cm-lab-password' };
const WORKER_URL = new URL('./micropython-board-worker.mjs', import.meta.url);
/** A reboot is not instantaneous on a board either; this also keeps boot loops cheap. */
const REBOOT_DELAY_MS = 50;
const BUTTON_SYNC_TIMEOUT_MS = 1000;

export class MicroPythonBoard extends EventEmitter<MicroPythonBoardEvents> {
  private readonly folder: string;
  private readonly heapBytes: number;
  private readonly heapLimit: 'memory-error' | 'live-check';
  private readonly stepWaitMs: number;
  private readonly maxIdleMs: number;
  private readonly watchdogMs: number;
  private readonly wifi: { ssid: string; password: string };
  private readonly label: string;
  private readonly firmwareModule: string;
  private readonly uniqueId: string;
  private readonly onLog: ((level: LogLevel, message: string) => void) | undefined;
  private session: Session | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private resetCount = 0;
  private bootCount = 0;
  private powered = false;
  private rebooting: Promise<void> | undefined;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(options: MicroPythonBoardOptions) {
    super();
    this.folder = path.resolve(options.folder);
    this.heapBytes = options.heapBytes ?? 36 * 1024;
    this.heapLimit = options.heapLimit ?? 'memory-error';
    this.stepWaitMs = options.stepWaitMs ?? 50;
    this.maxIdleMs = options.maxIdleMs ?? 20;
    this.watchdogMs = options.watchdogMs ?? 10_000;
    this.wifi = options.wifi ?? DEFAULT_LAB_WIFI;
    this.label = options.label ?? path.basename(this.folder);
    this.firmwareModule = options.firmwareModule ?? 'cm';
    this.onLog = options.onLog;
    // Stable per flash folder, like a chip id: 4 bytes, as the ESP8266's unique_id().
    this.uniqueId = createHash('sha256').update(this.folder).digest('hex').slice(0, 8);
  }

  /** Powered on (from start() until powerOff(), through resets). */
  get running(): boolean {
    return this.powered;
  }

  /** Resets since start(), whatever the reason. */
  get resets(): number {
    return this.resetCount;
  }

  /**
   * Powers the board on. Resolves when the firmware's start() returned (or main.py was
   * started); rejects with MicroPythonBoardBootError if start() raised (the board stays
   * on, at its REPL).
   */
  start(): Promise<void> {
    if (this.powered) return Promise.resolve();
    this.powered = true;
    if (this.watchdogMs > 0) {
      this.watchdog = setInterval(() => this.checkWatchdog(), Math.max(50, this.watchdogMs / 4));
      this.watchdog.unref();
    }
    return this.spawn(RESET_CAUSE.PWRON_RESET);
  }

  /** Cuts the power: the interpreter stops at once; files keep what was written back. */
  async powerOff(): Promise<void> {
    if (!this.powered) return;
    this.powered = false;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
    await this.kill('the board was powered off');
    this.emit('exit', { reason: 'power-off' });
  }

  /** The reset button: files are written back, then a fresh interpreter boots. */
  async reset(): Promise<void> {
    if (!this.powered) throw new MicroPythonBoardOffError('reset() needs a running board');
    await this.request({ type: 'sync' }, BUTTON_SYNC_TIMEOUT_MS).catch(() => undefined);
    await this.reboot('button');
  }

  /**
   * Runs Python in the board's __main__ between two steps (like a paste into its REPL),
   * capturing what it prints. Output does not reach the 'stdout'/'stderr' events.
   */
  async run(code: string): Promise<BoardRunResult> {
    try {
      const reply = await this.request({ type: 'run', code });
      const stdout = reply.stdout ?? '';
      const stderr = reply.stderr ?? '';
      if (!reply.failed) return { stdout, stderr };
      return { stdout, stderr, error: lastLine(stderr) || 'the code failed' };
    } catch (error) {
      return { stdout: '', stderr: '', error: error instanceof Error ? error.message : String(error) };
    }
  }

  /** The board's GC heap after a full collection (between two steps). */
  async heap(): Promise<BoardHeap> {
    const reply = await this.request({ type: 'heap' });
    if (!reply.heap) throw new Error('the board sent no heap figures');
    return reply.heap;
  }

  private async request(message: { type: 'run'; code: string } | { type: 'heap' } | { type: 'sync' }, timeoutMs?: number): Promise<Reply> {
    // A board in the middle of a reset answers once it has booted again.
    if (this.rebooting && message.type !== 'sync') await this.rebooting.catch(() => undefined);
    const session = this.session;
    if (!session) throw new MicroPythonBoardOffError(`${message.type}() needs a running board`);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => settle(undefined, `no answer within ${timeoutMs} ms`), timeoutMs);
      const settle = (reply: Reply | undefined, why: string): void => {
        if (!this.pending.delete(id)) return;
        clearTimeout(timer);
        if (reply) resolve(reply);
        else reject(new MicroPythonBoardOffError(why));
      };
      this.pending.set(id, { settle });
      session.worker.postMessage({ ...message, id });
    });
  }

  private spawn(cause: number): Promise<void> {
    const shared = new SharedArrayBuffer(SHARED_BYTES);
    const worker = new Worker(WORKER_URL, {
      workerData: {
        folder: this.folder, heapBytes: this.heapBytes, heapLimit: this.heapLimit, stepWaitMs: this.stepWaitMs, maxIdleMs: this.maxIdleMs,
        wifi: this.wifi, uniqueId: this.uniqueId, resetCause: cause, firmwareModule: this.firmwareModule, shared,
      },
    });
    return new Promise<void>((resolve, reject) => {
      const session: Session = {
        worker, network: new BoardNetwork(shared), shared: new Int32Array(shared, 0, 16), booted: false,
        boot: { resolve, reject },
        decoders: { stdout: new TextDecoder(), stderr: new TextDecoder() },
      };
      this.session = session;
      let lastError: unknown;
      worker.on('message', (msg: WorkerMessage) => {
        if (this.session === session) this.onMessage(session, msg, cause);
      });
      worker.on('error', (error) => { lastError = error; });
      worker.on('exit', (code) => {
        if (this.session !== session) return; // terminated on purpose
        const why = lastError instanceof Error ? lastError.message : `worker exited with code ${code}`;
        if (!session.booted) {
          // It cannot even load: retrying would loop.
          this.log('error', `the board could not boot: ${why}`);
          session.boot.reject(new MicroPythonBoardBootError(`the board could not boot: ${why}`));
          void this.powerOff();
          return;
        }
        this.log('error', `the interpreter died: ${why}`);
        void this.reboot('crash');
      });
    });
  }

  private onMessage(session: Session, msg: WorkerMessage, cause: number): void {
    switch (msg.type) {
      case 'log':
        this.log(msg.level, msg.message);
        return;
      case 'console': {
        const text = session.decoders[msg.stream].decode(msg.data, { stream: true });
        if (text) this.emit(msg.stream, text);
        return;
      }
      case 'call': {
        const { type: _type, ...call } = msg;
        session.network.call(call as BridgeCall);
        return;
      }
      case 'net': {
        const { type: _type, ...notice } = msg;
        session.network.notice(notice as BridgeNotice);
        return;
      }
      case 'booted':
        session.booted = true;
        this.bootCount++;
        this.emit('boot', {
          count: this.bootCount, mode: msg.mode, cause,
          labBytes: msg.hiddenBytes, labPythonBytes: msg.labPythonBytes, heldBytes: msg.heldBytes, wasmBytes: msg.wasmBytes,
        });
        session.boot.resolve();
        return;
      case 'halted':
        if (msg.memory) this.emit('outOfMemory', `MemoryError in ${msg.during ?? 'the program'}`);
        if (!session.booted) {
          session.booted = true;
          session.boot.reject(new MicroPythonBoardBootError(`the firmware's start() raised${msg.memory ? ' MemoryError' : ''}; see the board's stderr`));
        }
        this.emit('exit', { reason: msg.reason, ...(msg.during ? { during: msg.during } : {}) });
        return;
      case 'fault':
        if (msg.kind === 'memory') {
          this.log('warn', `out of memory: ${msg.message}`);
          this.emit('outOfMemory', msg.message);
          void this.reboot('out-of-memory');
        } else {
          this.log('error', `the interpreter crashed: ${msg.message}`);
          void this.reboot('crash');
        }
        return;
      case 'machine-reset':
        void this.reboot('machine.reset');
        return;
      case 'reply':
        this.pending.get(msg.id)?.settle(msg, '');
        return;
    }
  }

  /** Throws the interpreter away and boots a fresh one from the same flash folder. */
  private reboot(reason: BoardResetReason): Promise<void> {
    if (this.rebooting) return this.rebooting;
    const rebooting = (async () => {
      const booting = this.session?.boot;
      await this.kill(`the board reset (${reason})`);
      if (!this.powered) return;
      this.resetCount++;
      this.emit('reset', reason);
      await new Promise((resolve) => setTimeout(resolve, REBOOT_DELAY_MS));
      if (!this.powered) return;
      const cause = reason === 'machine.reset' ? RESET_CAUSE.SOFT_RESET
        : reason === 'button' ? RESET_CAUSE.HARD_RESET : RESET_CAUSE.WDT_RESET;
      const boot = this.spawn(cause);
      // Whoever waited for the interrupted boot waits for this one.
      boot.then(() => booting?.resolve(), (error: Error) => booting?.reject(error));
      this.rebooting = undefined;
      await boot;
    })();
    this.rebooting = rebooting;
    rebooting.catch(() => undefined).finally(() => {
      if (this.rebooting === rebooting) this.rebooting = undefined;
    });
    return rebooting;
  }

  /** Stops the current interpreter and its connections; fails requests still pending. */
  private async kill(why: string): Promise<void> {
    const session = this.session;
    this.session = undefined;
    for (const pending of [...this.pending.values()]) pending.settle(undefined, why);
    if (!session) return;
    session.network.close();
    await session.worker.terminate();
  }

  /**
   * A step that neither returns nor waits on the network for `watchdogMs` is hung (an
   * endless loop, or the interpreter stuck after a fatal error): reset, as the ESP8266's
   * watchdog would. Waiting on a socket (timeout None) is not a hang.
   */
  private lastFeed = { value: -1, at: 0 };
  private checkWatchdog(): void {
    const session = this.session;
    if (!session?.booted || this.rebooting) return;
    const feed = Atomics.load(session.shared, CTL_FEED);
    const now = Date.now();
    if (feed !== this.lastFeed.value || session.network.waiting || Atomics.load(session.shared, CTL_IN_STEP) === 0) {
      this.lastFeed = { value: feed, at: now };
      return;
    }
    if (now - this.lastFeed.at >= this.watchdogMs) {
      this.log('error', `a step ran for over ${this.watchdogMs} ms without returning: watchdog reset`);
      void this.reboot('crash');
    }
  }

  private log(level: LogLevel, message: string): void {
    try {
      this.onLog?.(level, `${this.label}: ${message}`);
    } catch {
      // A failing logger must not break the board.
    }
  }
}

function lastLine(text: string): string {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  return lines[lines.length - 1] ?? '';
}

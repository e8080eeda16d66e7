/**
 * One MicroPython (WebAssembly) interpreter shared by all virtual boards of a process.
 *
 * The interpreter lives in a worker thread (micropython-worker.mjs) so that a long-running
 * user program cannot block the main thread, which does the boards' networking, and so
 * that output reaches the main thread while the code is still running. Each board is a
 * *context*: a globals dict of its own inside the one interpreter.
 *
 * Requests (exec, resetContext, info) are queued FIFO and sent to the worker one at a time;
 * the worker runs them synchronously.
 *
 * Timeouts, in two stages:
 * 1. When `timeoutMs` passes, the main thread stores the exec's id in a SharedArrayBuffer.
 *    The worker's output hook sees it the next time the code prints and schedules a
 *    KeyboardInterrupt, which the VM raises at its next loop jump: code that prints stops
 *    cleanly and the interpreter (with every context's globals) is kept.
 * 2. Code that never prints (`while True: pass`) never runs the hook. One second after the
 *    timeout the worker is terminated and a fresh one started. **All contexts lose their
 *    globals** then (as if every virtual board had been hard-reset); requests that were
 *    queued behind simply run on the new worker.
 * A worker that dies on its own (e.g. the wasm aborts) is replaced the same way; the exec
 * it was running resolves with status 'interpreter-restarted'.
 *
 * The worker is unref'd while nothing is pending, so an idle interpreter does not keep the
 * process alive; close() terminates it.
 *
 * Not a sandbox: this port has a `js` module, so user code can reach the worker's JS
 * globals (`import js; js.process.exit()`, and from there Node APIs). Treat exec as host
 * code execution and only offer it to authenticated users.
 *
 * Library code: never prints; problems are reported through the `onLog` option.
 */
import { Worker } from 'node:worker_threads';
import { unpackedUrl } from '../package-info.js';

export type OutputStream = 'stdout' | 'stderr';

export interface ExecOptions {
  /** Stop the code after this long (see the class comment for how). Default: no limit. */
  timeoutMs?: number;
  /** Called with output as it is produced, in chunks of up to 256 bytes or one line. */
  onOutput?: (stream: OutputStream, data: Uint8Array) => void;
  /** Stops the code when aborted (a user's Stop), the way a timeout does. */
  signal?: AbortSignal;
  /** Called when the code starts to run: the interpreter runs one exec at a time, the others wait their turn. */
  onStart?: () => void;
}

export interface ExecResult {
  /**
   * 'ok': the code ran to its end (or called sys.exit()).
   * 'error': it raised; the traceback went to stderr.
   * 'timeout': it was stopped by `timeoutMs`.
   * 'stopped': it was stopped through `signal`.
   * 'interpreter-restarted': the worker died while running it (not by our timeout).
   */
  status: 'ok' | 'error' | 'timeout' | 'stopped' | 'interpreter-restarted';
  /** Last line of the traceback, e.g. "NameError: name 'x' isn't defined". */
  error?: string;
}

export interface InterpreterInfo {
  /** `sys.implementation.version`, e.g. "1.27.0". */
  version: string;
  /** `sys.implementation.name`: "micropython". */
  implementation: string;
  /**
   * `sys.implementation._mpy` as is (774 here): the low byte is the .mpy version (6),
   * bits 8–9 the sub-version (3), bits 10+ the native architecture (0: none).
   */
  mpyAbi: number;
}

export type InterpreterLogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface MicroPythonInterpreterOptions {
  /** Starting MicroPython heap; it grows on demand in this port. Default 2 MiB. */
  heapBytes?: number;
  /** How long after a timeout to wait for a KeyboardInterrupt before restarting. Default 1000 ms. */
  restartGraceMs?: number;
  onLog?: (level: InterpreterLogLevel, message: string) => void;
  /**
   * A host folder that is the interpreter's file system: copied in before every exec and
   * written back after it. For a process that runs ONE board (the lab's board CLI), whose
   * exec'd code then sees the board's own files, and finds them again after a power cut.
   */
  filesDir?: string;
}

/** The worker could not be started (missing package, wasm failed to load...). */
export class MicroPythonStartError extends Error {
  override readonly name = 'MicroPythonStartError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(`the MicroPython interpreter could not start: ${message}`, options);
  }
}

/** The interpreter was closed before or while the request was pending. */
export class MicroPythonClosedError extends Error {
  override readonly name = 'MicroPythonClosedError';
  constructor() {
    super('the MicroPython interpreter is closed');
  }
}

type Request =
  | { type: 'exec'; context: string; code: string; options: ExecOptions; resolve: (r: ExecResult) => void }
  | { type: 'reset'; context: string; resolve: () => void }
  | { type: 'info'; resolve: (info: InterpreterInfo) => void };

type Job = Request & { id: number; reject: (error: Error) => void };

type WorkerMessage =
  | { type: 'ready' }
  | { type: 'log'; level: InterpreterLogLevel; message: string }
  | { type: 'output'; id: number; stream: OutputStream; data: Uint8Array }
  | { type: 'done'; id: number; status: 'ok' | 'error'; error?: string; interrupted?: boolean; info?: InterpreterInfo };

const DEFAULT_HEAP_BYTES = 2 * 1024 * 1024;
const DEFAULT_RESTART_GRACE_MS = 1000;
/**
 * Next to this module both in the sources (vitest) and in dist/ (copied by the build). In the
 * packaged app the worker and its imports are unpacked from app.asar (a worker thread loads
 * real files), so its URL is mapped there.
 */
const WORKER_URL = unpackedUrl(new URL('./micropython-worker.mjs', import.meta.url));

export class MicroPythonInterpreter {
  private static sharedInstance: MicroPythonInterpreter | undefined;

  /** The process-wide interpreter, created on first use (and again after it was closed). */
  static shared(): MicroPythonInterpreter {
    if (!MicroPythonInterpreter.sharedInstance || MicroPythonInterpreter.sharedInstance.closed) {
      MicroPythonInterpreter.sharedInstance = new MicroPythonInterpreter();
    }
    return MicroPythonInterpreter.sharedInstance;
  }

  private readonly heapBytes: number;
  private readonly restartGraceMs: number;
  private readonly onLog: ((level: InterpreterLogLevel, message: string) => void) | undefined;
  private readonly filesDir: string | undefined;
  /** Slot 0: id of the exec the worker should interrupt (0: none). */
  private readonly interruptFlag = new Int32Array(new SharedArrayBuffer(4));

  private worker: Worker | undefined;
  private ready = false;
  private starting: Promise<void> | undefined;
  private readonly queue: Job[] = [];
  private current: Job | undefined;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  /** Why the current exec is being interrupted, if it is. */
  private stopReason: 'timeout' | 'stopped' | null = null;
  private nextId = 1;
  private closed = false;
  private readonly terminations = new Set<Promise<number>>();

  constructor(options: MicroPythonInterpreterOptions = {}) {
    this.heapBytes = options.heapBytes ?? DEFAULT_HEAP_BYTES;
    this.restartGraceMs = options.restartGraceMs ?? DEFAULT_RESTART_GRACE_MS;
    this.onLog = options.onLog;
    this.filesDir = options.filesDir;
  }

  /** Loads the interpreter if it is not running yet. Idempotent; exec() calls it too. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new MicroPythonClosedError());
    this.starting ??= this.spawn();
    return this.starting;
  }

  /**
   * Runs `code` in the globals of `contextId` (created on first use, like a board's
   * `__main__`). Resolves when the code has finished; rejects only with
   * MicroPythonStartError or MicroPythonClosedError.
   */
  exec(contextId: string, code: string, options: ExecOptions = {}): Promise<ExecResult> {
    return this.enqueue<ExecResult>((resolve) => ({ type: 'exec', context: contextId, code, options, resolve }));
  }

  /** Drops the globals of `contextId` (a board reboot); the next exec starts fresh. */
  resetContext(contextId: string): Promise<void> {
    return this.enqueue<void>((resolve) => ({ type: 'reset', context: contextId, resolve }));
  }

  /** Version facts from `sys.implementation`. */
  info(): Promise<InterpreterInfo> {
    return this.enqueue<InterpreterInfo>((resolve) => ({ type: 'info', resolve }));
  }

  /** Stops the worker; pending requests reject with MicroPythonClosedError. */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.clearTimers();
      const pending = [...(this.current ? [this.current] : []), ...this.queue.splice(0)];
      this.current = undefined;
      this.discardWorker();
      for (const job of pending) job.reject(new MicroPythonClosedError());
    }
    await Promise.all(this.terminations);
  }

  private enqueue<T>(make: (resolve: (value: T) => void) => Request): Promise<T> {
    if (this.closed) return Promise.reject(new MicroPythonClosedError());
    return new Promise<T>((resolve, reject) => {
      // The casts tie each request kind to its own result type, which `make` guarantees.
      const job = { ...make(resolve), id: this.allocateId(), reject } as Job;
      this.queue.push(job);
      this.pump();
    });
  }

  /** Ids are positive int32 so they fit the shared interrupt slot; 0 means "none". */
  private allocateId(): number {
    const id = this.nextId;
    this.nextId = id >= 0x7fffffff ? 1 : id + 1;
    return id;
  }

  /** Sends the next request if the worker is idle; starts the worker if needed. */
  private pump(): void {
    if (this.closed) return;
    if (!this.ready) {
      if (this.queue.length > 0) {
        // Failures are delivered to the queued jobs by spawn(); nothing to do here.
        this.start().catch(() => undefined);
      }
      this.updateRef();
      return;
    }
    if (!this.current) {
      const job = this.queue.shift();
      if (job) this.dispatch(job);
    }
    this.updateRef();
  }

  private dispatch(job: Job): void {
    const worker = this.worker;
    if (!worker) throw new Error('dispatch without a worker');
    this.current = job;
    this.stopReason = null;
    switch (job.type) {
      case 'exec': {
        worker.postMessage({ type: 'exec', id: job.id, context: job.context, code: job.code });
        job.options.onStart?.();
        const timeoutMs = job.options.timeoutMs;
        if (timeoutMs !== undefined) {
          this.timeoutTimer = setTimeout(() => this.interrupt(job, 'timeout'), Math.max(0, timeoutMs));
        }
        const signal = job.options.signal;
        if (signal?.aborted) this.interrupt(job, 'stopped');
        else signal?.addEventListener('abort', () => this.interrupt(job, 'stopped'), { once: true });
        break;
      }
      case 'reset':
        worker.postMessage({ type: 'reset', id: job.id, context: job.context });
        break;
      case 'info':
        worker.postMessage({ type: 'info', id: job.id });
        break;
    }
  }

  /** Asks the running code to stop (KeyboardInterrupt); a worker that does not stop is replaced. */
  private interrupt(job: Job, reason: 'timeout' | 'stopped'): void {
    if (this.current !== job || this.stopReason) return;
    this.stopReason = reason;
    if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
    this.timeoutTimer = undefined;
    Atomics.store(this.interruptFlag, 0, job.id);
    this.graceTimer = setTimeout(() => {
      if (this.current !== job) return;
      this.log(
        'warn',
        `exec ${job.id} ignored its ${reason === 'timeout' ? 'timeout' : 'stop'} (no output to interrupt); restarting the interpreter, all contexts lose their globals`,
      );
      this.replaceWorker();
    }, this.restartGraceMs);
  }

  private onMessage(worker: Worker, msg: WorkerMessage): void {
    if (worker !== this.worker) return; // a message from a worker we already dropped
    switch (msg.type) {
      case 'ready':
        this.ready = true;
        this.pump();
        return;
      case 'log':
        this.log(msg.level, `worker: ${msg.message}`);
        return;
      case 'output': {
        const job = this.current;
        if (job?.type !== 'exec' || job.id !== msg.id || !job.options.onOutput) return;
        try {
          job.options.onOutput(msg.stream, msg.data);
        } catch (error) {
          this.log('warn', `onOutput callback threw: ${describe(error)}`);
        }
        return;
      }
      case 'done': {
        const job = this.current;
        if (!job || job.id !== msg.id) {
          this.log('error', `worker answered request ${msg.id}, expected ${job?.id ?? 'none'}`);
          return;
        }
        this.current = undefined;
        this.clearTimers();
        this.settle(job, msg);
        this.pump();
        return;
      }
    }
  }

  private settle(job: Job, msg: Extract<WorkerMessage, { type: 'done' }>): void {
    switch (job.type) {
      case 'exec': {
        const result: ExecResult =
          msg.status === 'ok'
            ? { status: 'ok' }
            : { status: msg.interrupted && this.stopReason ? this.stopReason : 'error', ...(msg.error !== undefined ? { error: msg.error } : {}) };
        job.resolve(result);
        return;
      }
      case 'reset':
        job.resolve();
        return;
      case 'info':
        if (msg.info) job.resolve(msg.info);
        else job.reject(new Error('worker sent no info'));
        return;
    }
  }

  /**
   * Ends the current worker (after a timeout that the interrupt could not reach, or after
   * a crash), settles the request it was running and starts a fresh worker for the rest.
   */
  private replaceWorker(crashMessage?: string): void {
    const job = this.current;
    const stopReason = this.stopReason;
    this.current = undefined;
    this.clearTimers();
    this.discardWorker();
    if (job) {
      switch (job.type) {
        case 'exec':
          job.resolve(
            // No traceback exists for a terminated worker; a crash carries its reason.
            stopReason ? { status: stopReason } : { status: 'interpreter-restarted', ...(crashMessage ? { error: crashMessage } : {}) },
          );
          break;
        case 'reset':
          job.resolve(); // every context is fresh in the new worker anyway
          break;
        case 'info':
          this.queue.unshift(job); // harmless to ask again
          break;
      }
    }
    this.pump();
  }

  private spawn(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      Atomics.store(this.interruptFlag, 0, 0);
      let worker: Worker;
      try {
        worker = new Worker(WORKER_URL, {
          workerData: { heapBytes: this.heapBytes, interruptBuffer: this.interruptFlag.buffer, filesDir: this.filesDir },
        });
      } catch (error) {
        this.starting = undefined;
        const startError = new MicroPythonStartError(describe(error), { cause: error });
        this.failQueued(startError);
        reject(startError);
        return;
      }
      this.worker = worker;
      this.ready = false;
      let lastError: unknown;
      worker.on('message', (msg: WorkerMessage) => {
        if (msg.type === 'ready' && worker === this.worker) resolve();
        this.onMessage(worker, msg);
      });
      worker.on('error', (error) => {
        lastError = error;
      });
      worker.on('exit', (code) => {
        if (worker !== this.worker) return; // terminated on purpose
        const message = lastError !== undefined ? describe(lastError) : `worker exited with code ${code}`;
        if (!this.ready) {
          // Dying before 'ready' means it can't load at all: restarting would loop.
          this.worker = undefined;
          this.starting = undefined;
          const startError = new MicroPythonStartError(message, { cause: lastError });
          this.failQueued(startError);
          reject(startError);
          return;
        }
        this.log('error', `interpreter worker died (${message}); starting a new one, all contexts lose their globals`);
        this.replaceWorker(message);
      });
      this.updateRef();
    });
  }

  /** Forgets the current worker and terminates it; its late events are ignored. */
  private discardWorker(): void {
    const worker = this.worker;
    this.worker = undefined;
    this.ready = false;
    this.starting = undefined;
    if (!worker) return;
    const termination = worker.terminate();
    this.terminations.add(termination);
    void termination.finally(() => this.terminations.delete(termination)).catch(() => undefined);
  }

  private failQueued(error: Error): void {
    for (const job of this.queue.splice(0)) job.reject(error);
  }

  private clearTimers(): void {
    if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.timeoutTimer = undefined;
    this.graceTimer = undefined;
    Atomics.store(this.interruptFlag, 0, 0);
  }

  /** Keep the process alive only while something is pending or the worker is loading. */
  private updateRef(): void {
    const worker = this.worker;
    if (!worker) return;
    if (this.current || this.queue.length > 0 || !this.ready) worker.ref();
    else worker.unref();
  }

  private log(level: InterpreterLogLevel, message: string): void {
    try {
      this.onLog?.(level, message);
    } catch {
      // A failing logger must not break the interpreter.
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

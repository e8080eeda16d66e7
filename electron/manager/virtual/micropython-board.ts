/**
 * The MicroPython board lab: a simulated ESP8266 that runs our real board firmware.
 *
 * One board = one MicroPython WebAssembly interpreter in a worker thread of its own
 * (micropython-board-worker.mjs, driven through micropython-board-session.ts), with an ESP8266-sized heap, a `socket` module backed by
 * real TCP (micropython-board-network.ts owns the sockets), small `network` and `machine`
 * shims (lab-python/), and its flash file system mapped to a host folder.
 *
 * Booting, as MicroPython 1.27's esp8266 port: `_boot.py` first (gc.threshold() set to a
 * quarter of the heap; the filesystem mounted, or a first boot's initial setup, or the
 * corrupt-filesystem loop: decided by the `flash` option's filesystem area, see
 * micropython-board-flash.ts); then boot.py if present; then, if the firmware module
 * (`cm`) is there, `client = cm.start()` and the worker calls `client.step(stepWaitMs)`
 * over and over (control returns to the event loop between steps, which is when this
 * port collects garbage); otherwise main.py runs as is.
 *
 * Files: the folder is copied into the interpreter at boot; what the board changes is
 * written back after every step and run(), before anything it sends on a socket (so a
 * peer that hears from the board finds its files on the host), while it sleeps, and
 * before a reset. A large .py module may not compile within the heap (see below): ship
 * the firmware as .mpy, as on a board.
 *
 * Shortcuts compared with a real ESP8266, written down as the lab rules ask:
 * - First boot (a blank filesystem area): "Performing initial setup", the access point
 *   named and given its password, the host folder emptied (a new LittleFS) and boot.py
 *   written, then a pause of `initialSetupMs`. Foreign data there: the message "The
 *   filesystem starting at sector S with size N sectors looks corrupt." (and its 3 lines)
 *   every `corruptRepeatMs`, as a program (mode 'main') that Ctrl-C stops, with nothing
 *   mounted (the lab unmounts `/`: files raise ENODEV); its traceback lacks the frozen
 *   modules' frames. A soft reset into the raw REPL (runMain false) runs that loop too,
 *   but the REPL simulator shows its raw prompt at once (a board shows it after Ctrl-C).
 * - network (lab-python/network.py): one station network (`wifi`), joined `wifiJoinMs`
 *   after connect() (failing after `wifiWrongPasswordMs` / `wifiNoApMs`), settings not
 *   saved; the access point's settings are the SDK's, kept in `flash`; no station joins it.
 * - This port collects garbage only between steps, never in the middle of one: at
 *   gc.threshold() (a quarter of the heap, as _boot.py sets it) the collection runs as the
 *   step returns. The lab also collects after every firmware step (a board collects as
 *   soon as an allocation does not fit, so each step has all of the unreferenced heap;
 *   gc.mem_free() in a step therefore counts only that step's garbage), and after a run()
 *   when less than the threshold is free. With `heapLimit: 'memory-error'` (default) the
 *   GC heap cannot grow past `heapBytes` and an allocation beyond raises a real
 *   MemoryError, but a step's garbage must then fit in the free heap (a board would
 *   collect and go on). With 'live-check' the heap may grow
 *   during a step and the board is out of memory when what is still referenced after the
 *   step's collection exceeds the budget (a transient peak goes unnoticed). A MemoryError
 *   out of step() resets the board ('out-of-memory'), as a watchdog would; any other
 *   uncaught exception (and a MemoryError out of start() or main.py, where a reset would
 *   only loop) stops the program and leaves the board at its REPL ('exit'), as on a board.
 * - The board says it is an ESP8266 (lab-python/_cm_sys.py, _cm_gc.py): sys.platform is
 *   'esp8266' and os.uname() the esp8266 port's; gc.mem_free() and gc.mem_alloc() count the
 *   board's heap as heap() does (the port's own add 128 MiB and the lab's Python), but
 *   micropython.mem_info() still prints the port's figures.
 * - time.sleep() busy-waits in this port (the lab makes it nap, the timing is unchanged).
 * - Sockets work whether or not the WLAN is connected; TCP as a client only; UDP with the
 *   shortcuts listed in micropython-board-udp.ts (the WLAN is the host's loopback, the
 *   board is 127.0.0.1/8, broadcasts go to 127.255.255.255 and never leave the host); the
 *   peer sees a reset board's connections close at once (a real one would vanish
 *   silently); os.urandom() is the host's CSPRNG (a board's is its hardware RNG); the flash has
 *   no size limit; os.dupterm (2 slots, UART(0) in slot 1 as on an ESP8266) is the lab's
 *   own: lab-python/_cm_dupterm.py, whose shortcuts are listed in
 *   micropython-board-worker-dupterm.mjs.
 * - reset() (the button) is honoured between steps, after writing the files back.
 * - cutPowerAfter() stops the board in the middle of a step, right after a file change;
 *   the flash keeps every change made until then (a board's file system may lose more).
 *   A filesystem area holding FAT renames onto an existing file in FAT's two steps
 *   (micropython-board-worker-fat.mjs).
 * - interrupt() (Ctrl-C) lands where the program calls into the lab: a blocking socket
 *   call (which raises KeyboardInterrupt), a sleep (which ends at once, the port's clock
 *   jumping ahead, then raises it), or between two firmware steps (one more step raises
 *   it). Python that never calls into JavaScript (a busy loop) cannot see it: after
 *   INTERRUPT_GRACE_MS the interpreter is replaced as by a soft reset without main.py,
 *   and a bare KeyboardInterrupt traceback stands in for the real one.
 * - softReset() (Ctrl-D) boots a fresh interpreter from the flash, boot.py and, with
 *   runMain, the firmware or main.py: machine.reset_cause() keeps its last value, as on
 *   an ESP8266 after a soft reboot.
 *
 * Library code: never prints; the board's console comes out as 'stdout'/'stderr' events,
 * diagnostics through `onLog`.
 */
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { LogLevel } from '../log.js';
import { CTL_IN_STEP, CTL_FEED, CTL_INTERRUPT, RESET_CAUSE } from './micropython-board-protocol.mjs';
import {
  FAST_TIMING,
  MicroPythonBoardBootError,
  MicroPythonBoardOffError,
  REALISTIC_TIMING,
  type BoardFilesystem,
  type BoardFlash,
  type BoardHeap,
  type BoardMode,
  type BoardResetReason,
  type BoardRunOptions,
  type BoardRunResult,
  type BoardTiming,
  type MicroPythonBoardEvents,
  type MicroPythonBoardOptions,
  type Reply,
  type WorkerMessage,
} from './micropython-board-types.js';
import { flashAtBoot, labUniqueId, MemoryBoardFlash } from './micropython-board-flash.js';
import { BoardSession, type SessionHandlers, type SessionRequest } from './micropython-board-session.js';

export * from './micropython-board-types.js';

/**
 * The lab's access point: what boards join when the `wifi` option is not given, and what
 * provisioning gives lab boards (one definition, so a provisioned board always joins).
 */
export const LAB_WIFI: Readonly<{ ssid: string; password: string }> = { ssid: 'cloudmanager-lab', password: 'lab-password' };
/** A reboot is not instantaneous on a board either; this also keeps boot loops cheap. */
const REBOOT_DELAY_MS = 50;
const BUTTON_SYNC_TIMEOUT_MS = 1000;
/** How long interrupt() waits for the program to see the KeyboardInterrupt. */
const INTERRUPT_GRACE_MS = 2000;
/** What stands in for the traceback of a program the lab had to replace (see interrupt()). */
const BARE_INTERRUPT = 'Traceback (most recent call last):\nKeyboardInterrupt: \n';

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
  private readonly onSystemReset: ((reason: BoardResetReason) => void) | undefined;
  private readonly flash: BoardFlash;
  private readonly timing: BoardTiming;
  /** The interpreter now powered on; replaced on every reset. */
  private session: BoardSession | undefined;
  private resetCount = 0;
  private bootCount = 0;
  private powered = false;
  private rebooting: Promise<void> | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private currentMode: BoardMode | undefined;
  private currentFilesystem: BoardFilesystem | undefined;
  /** machine.reset_cause() of the last hard boot (a soft reset keeps it). */
  private lastCause: number = RESET_CAUSE.PWRON_RESET;

  constructor(options: MicroPythonBoardOptions) {
    super();
    this.folder = path.resolve(options.folder);
    this.heapBytes = options.heapBytes ?? 36 * 1024;
    this.heapLimit = options.heapLimit ?? 'memory-error';
    this.stepWaitMs = options.stepWaitMs ?? 50;
    this.maxIdleMs = options.maxIdleMs ?? 20;
    this.watchdogMs = options.watchdogMs ?? 10_000;
    this.wifi = options.wifi ?? LAB_WIFI;
    this.label = options.label ?? path.basename(this.folder);
    this.firmwareModule = options.firmwareModule ?? 'cm';
    this.onLog = options.onLog;
    this.onSystemReset = options.onSystemReset;
    // Stable per flash folder, like a chip id: 4 bytes, as the ESP8266's unique_id().
    this.uniqueId = labUniqueId(this.folder);
    this.flash = options.flash ?? new MemoryBoardFlash(this.uniqueId);
    const timing = options.timing ?? 'realistic';
    this.timing = typeof timing === 'string' ? { ...(timing === 'fast' ? FAST_TIMING : REALISTIC_TIMING) } : { ...REALISTIC_TIMING, ...timing };
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
   * What the board is doing: 'firmware' or 'main' while its program runs, 'idle' at its
   * REPL (no program, or it ended, raised or was interrupted); undefined while off or
   * booting.
   */
  get mode(): BoardMode | undefined {
    return this.currentMode;
  }

  /** What the last boot found in the filesystem area (undefined before the first boot). */
  get filesystem(): BoardFilesystem | undefined {
    return this.currentFilesystem;
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
  async run(code: string, options: BoardRunOptions = {}): Promise<BoardRunResult> {
    try {
      const reply = await this.request({ type: 'run', code, single: options.single === true });
      const stdout = reply.stdout ?? '';
      const stderr = reply.stderr ?? '';
      const printedErr = reply.console !== undefined && reply.console !== stdout;
      if (!reply.failed) return printedErr ? { stdout, stderr, console: reply.console } : { stdout, stderr };
      const result: BoardRunResult = { stdout, stderr, error: lastLine(stderr) || 'the code failed', traceback: reply.traceback ?? stderr };
      if (printedErr) result.console = reply.console;
      if (reply.systemExit) result.systemExit = true;
      if (reply.interrupted) result.interrupted = true;
      return result;
    } catch (error) {
      return { stdout: '', stderr: '', error: error instanceof Error ? error.message : String(error) };
    }
  }

  /**
   * Ctrl-C: raises KeyboardInterrupt in the Python that runs, a run() or the program (see
   * the class comment for where it lands). An interrupted program prints its traceback to
   * 'stderr', emits 'exit' (reason 'interrupted') and leaves the board at its REPL.
   * Resolves once that happened (at once if nothing ran).
   */
  async interrupt(): Promise<void> {
    if (this.rebooting) await this.rebooting.catch(() => undefined);
    const session = this.session;
    if (!session) throw new MicroPythonBoardOffError('interrupt() needs a running board');
    Atomics.store(session.ctl, CTL_INTERRUPT, 1);
    session.network.interrupt();
    try {
      await this.request({ type: 'interrupt' }, INTERRUPT_GRACE_MS);
    } catch {
      if (this.session !== session || !this.powered) return; // it reset meanwhile
      this.log('warn', `the program did not see Ctrl-C within ${INTERRUPT_GRACE_MS} ms (a loop that never calls into the lab): replacing the interpreter`);
      const programRan = this.currentMode === 'firmware' || this.currentMode === 'main';
      const runs = session.answerPending({ type: 'reply', id: 0, stdout: '', stderr: BARE_INTERRUPT, failed: true, interrupted: true });
      if (programRan) {
        if (runs === 0) this.emit('stderr', BARE_INTERRUPT);
        this.emit('exit', { reason: 'interrupted' });
      }
      await this.reboot('soft-reset', false);
    }
  }

  /**
   * Ctrl-D: a soft reset. Files are written back, a fresh interpreter boots from the same
   * flash and runs boot.py, then the firmware or main.py only with `runMain` (a board's
   * friendly REPL does; its raw REPL does not). Resolves as start() does.
   */
  async softReset(options: { runMain: boolean }): Promise<void> {
    if (!this.powered) throw new MicroPythonBoardOffError('softReset() needs a running board');
    await this.request({ type: 'sync' }, BUTTON_SYNC_TIMEOUT_MS).catch(() => undefined);
    await this.reboot('soft-reset', options.runMain);
  }

  /**
   * Lab fault: the power goes right after the board's `count`-th (default first) change of
   * a file (a rename or a removal) naming a path that begins with `path`, and comes back
   * at once ('reset' reason 'power-cut'): the next boot finds the flash as it was then.
   */
  async cutPowerAfter(change: { path: string; count?: number }): Promise<void> {
    await this.request({ type: 'power-cut', path: change.path, count: change.count ?? 1 });
  }

  /** The board's GC heap after a full collection (between two steps). */
  async heap(): Promise<BoardHeap> {
    const reply = await this.request({ type: 'heap' });
    if (!reply.heap) throw new Error('the board sent no heap figures');
    return reply.heap;
  }

  private async request(message: SessionRequest, timeoutMs?: number): Promise<Reply> {
    // A board in the middle of a reset answers once it has booted again.
    if (this.rebooting && message.type !== 'sync') await this.rebooting.catch(() => undefined);
    const session = this.session;
    if (!session) throw new MicroPythonBoardOffError(`${message.type}() needs a running board`);
    return session.request(message, timeoutMs);
  }

  private spawn(cause: number, runMain = true): Promise<void> {
    let flash;
    try {
      flash = flashAtBoot(this.flash, this.uniqueId);
    } catch (error) {
      this.log('error', `the board's flash cannot be read: ${(error as Error).message}`);
      return Promise.reject(new MicroPythonBoardBootError(`the board's flash cannot be read: ${(error as Error).message}`));
    }
    const handlers: SessionHandlers = {
      flash: (msg) => this.writeFlash(msg),
      console: (stream, text) => this.emit(stream, text),
      message: (msg) => this.onMessage(session, msg, cause),
      exit: (why) => {
        if (this.session !== session) return;
        if (!session.booted) {
          // It cannot even load: retrying would loop.
          this.log('error', `the board could not boot: ${why}`);
          session.boot.reject(new MicroPythonBoardBootError(`the board could not boot: ${why}`));
          void this.powerOff();
          return;
        }
        this.log('error', `the interpreter died: ${why}`);
        void this.reboot('crash');
      },
    };
    const session: BoardSession = new BoardSession(
      {
        folder: this.folder,
        heapBytes: this.heapBytes,
        heapLimit: this.heapLimit,
        stepWaitMs: this.stepWaitMs,
        maxIdleMs: this.maxIdleMs,
        wifi: this.wifi,
        uniqueId: this.uniqueId,
        resetCause: cause,
        firmwareModule: this.firmwareModule,
        runMain,
        timing: this.timing,
        ...flash,
      },
      handlers,
    );
    this.lastCause = cause;
    this.session = session;
    return session.booting;
  }

  /** The worker's boot, halt, fault, reset and log messages (console, sockets and replies are the session's). */
  private onMessage(session: BoardSession, msg: Parameters<SessionHandlers['message']>[0], cause: number): void {
    switch (msg.type) {
      case 'log':
        this.log(msg.level, msg.message);
        return;
      case 'booted':
        session.booted = true;
        this.bootCount++;
        this.currentMode = msg.mode;
        this.currentFilesystem = msg.filesystem;
        this.emit('boot', {
          count: this.bootCount,
          mode: msg.mode,
          cause,
          filesystem: msg.filesystem,
          labBytes: msg.hiddenBytes,
          labPythonBytes: msg.labPythonBytes,
          heldBytes: msg.heldBytes,
          wasmBytes: msg.wasmBytes,
        });
        session.boot.resolve();
        return;
      case 'halted':
        this.currentMode = 'idle';
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
        } else if (msg.kind === 'power-cut') {
          this.log('info', msg.message);
          void this.reboot('power-cut');
        } else {
          this.log('error', `the interpreter crashed: ${msg.message}`);
          void this.reboot('crash');
        }
        return;
      case 'machine-reset':
        void this.reboot('machine.reset');
        return;
    }
  }

  /** The board wrote to its flash outside the filesystem's files (a first boot's format, the SDK's wifi settings). */
  private writeFlash(msg: Extract<WorkerMessage, { type: 'flash' }>): void {
    try {
      if (msg.op === 'format') this.flash.formatFilesystem();
      else this.flash.writeWifi(msg.settings);
    } catch (error) {
      this.log('error', `writing the board's flash failed: ${(error as Error).message}`);
    }
  }

  /** Throws the interpreter away and boots a fresh one from the same flash folder. */
  private reboot(reason: BoardResetReason, runMain = true): Promise<void> {
    if (this.rebooting) return this.rebooting;
    const rebooting = (async () => {
      const booting = this.session?.boot;
      await this.kill(`the board reset (${reason})`);
      if (!this.powered) return;
      this.resetCount++;
      this.emit('reset', reason);
      if (this.onSystemReset && reason !== 'soft-reset' && reason !== 'button') {
        // A chip reset: the owner (the simulated ROM) decides what boots next.
        this.rebooting = undefined;
        this.onSystemReset(reason);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, REBOOT_DELAY_MS));
      if (!this.powered) return;
      const cause =
        reason === 'machine.reset'
          ? RESET_CAUSE.SOFT_RESET
          : reason === 'button'
            ? RESET_CAUSE.HARD_RESET
            : reason === 'power-cut'
              ? RESET_CAUSE.PWRON_RESET
              : reason === 'soft-reset'
                ? this.lastCause
                : RESET_CAUSE.WDT_RESET;
      const boot = this.spawn(cause, runMain);
      // Whoever waited for the interrupted boot waits for this one.
      boot.then(
        () => booting?.resolve(),
        (error: Error) => booting?.reject(error),
      );
      this.rebooting = undefined;
      await boot;
    })();
    this.rebooting = rebooting;
    rebooting
      .catch(() => undefined)
      .finally(() => {
        if (this.rebooting === rebooting) this.rebooting = undefined;
      });
    return rebooting;
  }

  /** Stops the current interpreter and its connections; fails requests still pending. */
  private async kill(why: string): Promise<void> {
    const session = this.session;
    this.session = undefined;
    this.currentMode = undefined;
    await session?.close(why);
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
    const feed = Atomics.load(session.ctl, CTL_FEED);
    const now = Date.now();
    if (feed !== this.lastFeed.value || session.network.waiting || Atomics.load(session.ctl, CTL_IN_STEP) === 0) {
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

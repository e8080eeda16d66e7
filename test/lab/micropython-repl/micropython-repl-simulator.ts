/**
 * A simulated ESP8266's serial console: MicroPython's REPL on a pty (PtyLink, 115200 baud
 * with line-rate pacing) backed by a MicroPythonBoard (real MicroPython in WebAssembly),
 * as mpremote and a terminal see a board running MicroPython 1.27:
 *
 * - boot: boot.py and main.py (or our firmware) run; whatever the board prints goes to the
 *   line; the REPL starts when the program ends or is interrupted with Ctrl-C (its
 *   traceback, then `\r\n` and the banner `MicroPython v1.27.0 on ...; ESP module with
 *   ESP8266\r\nType "help()" for more information.\r\n>>> `);
 * - friendly REPL: echo, Enter runs a line (an expression's value is printed), `... `
 *   continuation lines with auto-indent, Ctrl-C cancels, Ctrl-E paste mode, Ctrl-B the
 *   banner again, Ctrl-D on an empty line soft-resets (`MPY: soft reboot`, boot.py and
 *   main.py run again), sys.exit() soft-resets too;
 * - raw REPL (shared/runtime/pyexec.c): Ctrl-A → `raw REPL; CTRL-B to exit\r\n>`; code
 *   until Ctrl-D → `OK`, stdout, `\x04`, stderr, `\x04>`; Ctrl-D on an empty buffer →
 *   `OK\r\nMPY: soft reboot\r\n` (boot.py only) then the raw banner; Ctrl-C clears the
 *   buffer; Ctrl-B → `\r\n` and the friendly banner;
 * - raw-paste (`\x05A\x01` at the raw prompt): `R\x01`, the window (128 bytes, 16-bit
 *   little-endian: half of MICROPY_REPL_STDIN_BUFFER_MAX, 256 on the ESP8266 port) and
 *   `\x01` (a second window); one `\x01` for each window's worth of bytes consumed; the
 *   host's `\x04` ends the code: `\x04`, then stdout `\x04` stderr `\x04>`; a Ctrl-C
 *   instead: `\x04\x04KeyboardInterrupt: \r\n\x04>`. A syntax error found while the code
 *   streams in ends the paste early, as the board's compiler does (pyexec.c: the reader
 *   is closed): `\x04` instead of the next `\x01`, every byte dropped until the host's
 *   `\x04` (or Ctrl-C), then `\x04`, the SyntaxError traceback, `\x04>` (syntax-check.ts).
 *   `rawPaste: false` answers `R\x00` (then `>`), as pyexec.c does for a raw-paste
 *   command it does not support;
 * - Ctrl-C while code or the program runs raises KeyboardInterrupt in it (the UART
 *   interrupt: the byte is not queued); other bytes wait in the UART receive buffer.
 *
 * Shortcuts, written down as the lab rules ask:
 * - Code runs through MicroPythonBoard.run(): its output comes back when it has finished,
 *   not while it runs; it holds the whole source in the board's heap (a board does not,
 *   in raw-paste mode). A raw-paste syntax error is looked for at window boundaries, once
 *   the code has grown by a quarter since the last look (so the cost stays linear), and
 *   only where no later line could mend it: the paste ends up to a quarter of the code
 *   later than on a board, and an error in the last lines is reported after the host's
 *   `\x04`, in the same format.
 * - Bytes are consumed as soon as they arrive (PtyLink delivers them at the line rate),
 *   so flow-control credit is granted at that rate. A host that sends beyond its credit
 *   loses the excess (a real board's receive buffer would overflow): counted in
 *   `stats.creditViolations`. While the board is busy (running code, resetting) at most
 *   `rxBufferBytes` wait; more are lost (`stats.overruns`). The default is 255: the REPL's
 *   UART is attached to dupterm, whose interrupt handler puts bytes in `stdin_ringbuf`
 *   (256 bytes in ports/esp8266/esp_mphal.c; a ring buffer holds one less). The 16-byte
 *   `uart_ringbuf` (UART0_STATIC_RXBUF_LEN) is used only once the UART is detached from
 *   the REPL.
 * - Ctrl-C lands where the lab can deliver it (a blocking socket call, a sleep, between
 *   two firmware steps); a busy loop that never calls into the lab is stopped by
 *   replacing the interpreter after 2 s (see MicroPythonBoard.interrupt()).
 * - No ROM boot text at 74,880 baud on a hard reset (the ESP8266 ROM simulator prints it
 *   and calls start() once its flash boots); the friendly editor has no history, cursor
 *   keys or tab completion (see friendly-readline.ts).
 *
 * Library code for tests: never prints; diagnostics through `onLog`.
 */
import type { LogLevel } from '../../../electron/manager/log.js';
import { MicroPythonBoardBootError, type BoardResetReason, type MicroPythonBoard } from '../../../electron/manager/virtual/micropython-board.js';
import { FriendlyReadline, PS1 } from './friendly-readline.js';
import { SyntaxChecker } from './syntax-check.js';
import type { MicroPythonReplOptions, ReplLink, ReplMode, ReplStats } from './repl-simulator-types.js';
import { CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E, RAW_BANNER, SOFT_REBOOT, cook } from './console-bytes.js';

export class MicroPythonReplSimulator {
  readonly stats: ReplStats = { overruns: 0, creditViolations: 0, execs: 0, rawPasteExecs: 0, rawPasteEarlyEnds: 0 };
  private readonly link: ReplLink;
  private readonly board: MicroPythonBoard;
  private readonly rawPaste: boolean;
  private readonly banner: string;
  private readonly rxBufferBytes: number;
  private readonly window: number;
  private readonly onLog: ((level: LogLevel, message: string) => void) | undefined;
  private mode: ReplMode = 'off';
  /** Set while the board works (runs code, resets): input waits in `queue`. */
  private busy: 'exec' | 'reset' | undefined;
  /** A Ctrl-C arrived while resetting: interrupt the program once it runs. */
  private interruptAfterBoot = false;
  private interrupting = false;
  private readonly queue: number[] = [];
  private readonly readline = new FriendlyReadline();
  /** Friendly paste mode (Ctrl-E), raw and raw-paste code being received. */
  private code: number[] = [];
  private paste = { remain: 0, allowed: 0, received: 0, nextCheck: 0 };
  /** The traceback of a raw paste ended early, sent once the host acknowledges. */
  private pasteError = '';
  private checker: SyntaxChecker | null = null;
  private started = false;
  private closed = false;
  /** The REPL comes up after the power-on boot (which prints an extra \r\n), not a soft reset. */
  private firstBoot = true;
  /** The board reset by itself (machine.reset(), watchdog): the REPL restarts once it booted. */
  private hardReset = false;
  private readonly onData = (chunk: Buffer): void => this.receive(chunk);
  private readonly onStdout = (text: string): void => this.write(cook(text));
  private readonly onExit = (): void => this.programEnded();
  private readonly onReset = (reason: BoardResetReason): void => {
    if (reason !== 'soft-reset') this.hardReset = true;
  };
  private readonly onBoot = (): void => {
    if (!this.hardReset) return;
    this.hardReset = false;
    this.afterBoot(true);
  };

  constructor(options: MicroPythonReplOptions) {
    this.link = options.link;
    this.board = options.board;
    this.rawPaste = options.rawPaste ?? true;
    this.banner = `MicroPython ${options.bannerVersion ?? 'v1.27.0 on 2025-12-10'}; ESP module with ESP8266\r\nType "help()" for more information.\r\n`;
    this.rxBufferBytes = options.rxBufferBytes ?? 255;
    this.window = Math.floor((options.stdinBufferMax ?? 256) / 2);
    this.onLog = options.onLog;
  }

  /** The REPL's mode: 'program' while main.py or the firmware runs, else the REPL's own. */
  get state(): ReplMode {
    return this.mode;
  }

  /**
   * The board has booted (or boots now): attach to the line; show the banner, or let the
   * program run (its output goes to the line) until it ends or Ctrl-C arrives.
   */
  async start(): Promise<void> {
    if (this.closed) throw new Error('the REPL simulator is closed');
    if (!this.started) {
      this.started = true;
      this.link.on('data', this.onData);
      this.board.on('stdout', this.onStdout);
      this.board.on('stderr', this.onStdout);
      this.board.on('exit', this.onExit);
      this.board.on('reset', this.onReset);
      this.board.on('boot', this.onBoot);
    }
    this.busy = 'reset';
    if (this.rawPaste) this.checker ??= await SyntaxChecker.load();
    try {
      if (!this.board.running) await this.board.start();
    } catch (error) {
      if (!(error instanceof MicroPythonBoardBootError)) throw error; // start() raised: the board sits at its REPL
    }
    this.afterBoot(true);
  }

  /** Detaches from the line and the board (neither is closed). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.mode = 'off';
    this.link.off('data', this.onData);
    this.board.off('stdout', this.onStdout);
    this.board.off('stderr', this.onStdout);
    this.board.off('exit', this.onExit);
    this.board.off('reset', this.onReset);
    this.board.off('boot', this.onBoot);
  }

  // --- input -----------------------------------------------------------------------------

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    for (const c of chunk) {
      // The UART interrupt raises KeyboardInterrupt while Python runs; the byte is dropped.
      if (c === CTRL_C && (this.mode === 'program' || this.busy === 'exec')) {
        this.interruptBoard();
        continue;
      }
      if (c === CTRL_C && this.busy === 'reset') this.interruptAfterBoot = true;
      if ((this.mode === 'raw-paste' || this.mode === 'raw-paste-ended') && !this.busy && this.queue.length === 0) {
        this.pasteByte(c); // the hot path: no queueing
        continue;
      }
      if ((this.busy || this.mode === 'program') && this.queue.length >= this.rxBufferBytes) {
        if (this.stats.overruns++ === 0) this.log('warn', 'receive buffer full while the board was busy: input lost');
        continue;
      }
      this.queue.push(c);
      this.pump(); // byte by byte: an Enter makes the board busy for the bytes after it
    }
  }

  private pump(): void {
    while (!this.busy && this.mode !== 'program' && this.mode !== 'off' && this.queue.length > 0) {
      const c = this.queue.shift()!;
      switch (this.mode) {
        case 'friendly':
          this.friendlyByte(c);
          break;
        case 'paste-mode':
          this.pasteModeByte(c);
          break;
        case 'raw':
          this.rawByte(c);
          break;
        case 'raw-paste':
        case 'raw-paste-ended':
          this.pasteByte(c);
          break;
      }
    }
  }

  private friendlyByte(c: number): void {
    const { echo, event } = this.readline.feed(c);
    if (echo) this.write(echo);
    if (!event) return;
    switch (event.kind) {
      case 'empty':
      case 'cancel':
        this.write(event.kind === 'cancel' ? '\r\n' : '');
        return this.prompt();
      case 'execute':
        return this.execute(event.source, 'friendly');
      case 'control':
        if (event.char === CTRL_A) {
          this.write('\r\n');
          return this.enterRaw();
        }
        if (event.char === CTRL_B) {
          this.write('\r\n');
          return this.friendlyBanner();
        }
        if (event.char === CTRL_C) {
          this.write('\r\n');
          return this.prompt();
        }
        if (event.char === CTRL_D) {
          this.write('\r\n');
          return void this.softReset(true);
        }
        if (event.char === CTRL_E) {
          this.write('\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ');
          this.code = [];
          this.mode = 'paste-mode';
        }
    }
  }

  /** Friendly paste mode (Ctrl-E): everything echoed until Ctrl-D runs it as a file. */
  private pasteModeByte(c: number): void {
    if (c === CTRL_C) {
      this.write('\r\n');
      this.mode = 'friendly';
      return this.prompt();
    }
    if (c === CTRL_D) {
      this.write('\r\n');
      this.mode = 'friendly';
      return this.execute(Buffer.from(this.code).toString('utf8').replace(/\r\n?/g, '\n'), 'paste-mode');
    }
    this.code.push(c);
    this.write(c === 0x0d ? '\r\n=== ' : Buffer.from([c]));
  }

  private rawByte(c: number): void {
    if (c === CTRL_A) {
      if (this.code.length === 2 && this.code[0] === CTRL_E) return this.rawPasteRequest(this.code[1]!);
      this.write(RAW_BANNER);
      this.code = [];
      this.write('>');
    } else if (c === CTRL_B) {
      this.code = [];
      this.write('\r\n');
      this.friendlyBanner();
    } else if (c === CTRL_C) {
      this.code = [];
    } else if (c === CTRL_D) {
      this.write('OK');
      if (this.code.length === 0) {
        this.write('\r\n');
        void this.softReset(false);
        return;
      }
      const source = Buffer.from(this.code).toString('utf8');
      this.code = [];
      this.execute(source, 'raw');
    } else {
      this.code.push(c);
    }
  }

  private rawPasteRequest(command: number): void {
    this.code = [];
    if (command !== 0x41 /* 'A' */ || !this.rawPaste) {
      this.write(Buffer.from('R\x00>', 'latin1'));
      return;
    }
    const w = this.window;
    this.write(Buffer.from([0x52, 0x01, w & 0xff, w >> 8, 0x01])); // R\x01, window, and a second window
    this.paste = { remain: w, allowed: 2 * w, received: 0, nextCheck: w };
    this.mode = 'raw-paste';
  }

  private pasteByte(c: number): void {
    if (this.mode === 'raw-paste-ended') {
      // The reader was closed: everything up to the host's \x04 (or Ctrl-C) is dropped.
      if (c !== CTRL_C && c !== CTRL_D) return;
      this.mode = 'raw';
      this.write(Buffer.from(`\x04${cook(this.pasteError)}\x04>`, 'utf8'));
      return;
    }
    if (c === CTRL_C) {
      this.code = [];
      this.mode = 'raw';
      this.write(Buffer.from('\x04\x04KeyboardInterrupt: \r\n\x04>', 'latin1'));
      return;
    }
    if (c === CTRL_D) {
      this.write(Buffer.from([CTRL_D]));
      const source = Buffer.from(this.code).toString('utf8');
      this.code = [];
      this.mode = 'raw';
      this.stats.rawPasteExecs++;
      return this.execute(source, 'raw-paste');
    }
    if (++this.paste.received > this.paste.allowed) {
      if (this.stats.creditViolations++ === 0) this.log('warn', 'raw-paste: the host sent beyond its flow-control credit; bytes lost');
      return;
    }
    this.code.push(c);
    if (--this.paste.remain === 0) {
      if (this.endsEarly()) return;
      this.write(Buffer.from([0x01]));
      this.paste.remain = this.window;
      this.paste.allowed += this.window;
    }
  }

  /** At a window boundary: a syntax error no more code can mend ends the paste now (see syntax-check.ts). */
  private endsEarly(): boolean {
    const received = this.code.length;
    if (!this.checker || received < this.paste.nextCheck) return false;
    this.paste.nextCheck = Math.max(received + this.window, Math.ceil(received * 1.25));
    const source = Buffer.from(this.code).toString('utf8');
    const finding = this.checker.definiteError(source);
    if (!finding) return false;
    this.code = [];
    this.pasteError = finding.traceback;
    this.mode = 'raw-paste-ended';
    this.stats.rawPasteEarlyEnds++;
    this.write(Buffer.from([CTRL_D]));
    return true;
  }

  // --- actions -----------------------------------------------------------------------------

  private execute(source: string, from: 'friendly' | 'paste-mode' | 'raw' | 'raw-paste'): void {
    this.busy = 'exec';
    this.stats.execs++;
    void this.board.run(source, { single: from === 'friendly' }).then(
      (result) => {
        if (this.closed) return;
        // The code reset the board (machine.reset()): nothing more comes from this REPL; it
        // restarts once the board has booted again.
        if (this.board.mode === undefined) return;
        this.busy = undefined;
        // One UART: what the code printed to stdout and stderr comes out in order; the raw
        // REPL sends only the traceback after the first \x04.
        const printed = result.console ?? result.stdout;
        const traceback = result.error === undefined || result.systemExit ? '' : (result.traceback ?? result.stderr) || `${result.error}\n`;
        if (from === 'raw' || from === 'raw-paste') {
          this.write(`${cook(printed)}\x04${cook(traceback)}\x04`);
          if (result.systemExit) return void this.softReset(false);
          this.write('>');
        } else {
          this.write(cook(printed + traceback));
          if (result.systemExit) return void this.softReset(true);
          this.prompt();
        }
        this.pump();
      },
      (error: unknown) => this.fail(error),
    );
  }

  private interruptBoard(): void {
    if (this.interrupting) return;
    this.interrupting = true;
    this.board
      .interrupt()
      .catch((error: unknown) => this.fail(error))
      .finally(() => {
        this.interrupting = false;
      });
  }

  /** Ctrl-D: `MPY: soft reboot`, boot.py (and main.py in the friendly REPL), then the REPL. */
  private async softReset(runMain: boolean): Promise<void> {
    this.busy = 'reset';
    this.write(SOFT_REBOOT);
    try {
      await this.board.softReset({ runMain });
    } catch (error) {
      if (!(error instanceof MicroPythonBoardBootError)) return this.fail(error);
    }
    if (this.closed) return;
    if (runMain) return this.afterBoot(false);
    this.busy = undefined;
    this.enterRaw();
    this.pump();
  }

  /** After a boot: the program runs, or the REPL starts (`first`: the power-on boot's extra \r\n). */
  private afterBoot(first: boolean): void {
    this.busy = undefined;
    this.code = [];
    const running = this.board.mode === 'firmware' || this.board.mode === 'main';
    if (running) {
      this.mode = 'program';
      this.firstBoot = first;
      if (this.interruptAfterBoot) this.interruptBoard();
      this.interruptAfterBoot = false;
      return;
    }
    this.interruptAfterBoot = false;
    if (first) this.write('\r\n');
    this.friendlyBanner();
    this.pump();
  }

  /** The program ended, raised or was interrupted: the REPL starts, as after main.py. */
  private programEnded(): void {
    if (this.mode !== 'program' || this.closed) return;
    if (this.firstBoot) this.write('\r\n');
    this.friendlyBanner();
    this.pump();
  }

  private enterRaw(): void {
    this.mode = 'raw';
    this.code = [];
    this.write(`${RAW_BANNER}>`);
  }

  private friendlyBanner(): void {
    this.mode = 'friendly';
    this.write(this.banner);
    this.prompt();
  }

  private prompt(): void {
    this.readline.reset();
    this.write(PS1);
  }

  private write(data: string | Buffer): void {
    if (this.closed || data.length === 0) return;
    this.link.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  }

  private fail(error: unknown): void {
    this.busy = undefined;
    this.interrupting = false;
    this.log('error', `the board failed: ${error instanceof Error ? error.message : String(error)}`);
  }

  private log(level: LogLevel, message: string): void {
    try {
      this.onLog?.(level, message);
    } catch {
      // a failing logger must not break the simulator
    }
  }
}

/**
 * MicroPython's raw REPL from the host, over a serial port (mpremote's protocol, as
 * shared/runtime/pyexec.c implements the board side):
 *
 * - enter(): `\r\x03\x03` (Ctrl-C twice stops a running program, our firmware included),
 *   wait for the board to settle, Ctrl-A, wait for `raw REPL; CTRL-B to exit\r\n>`;
 *   retried until the deadline, so a program that needs a second Ctrl-C still gets one.
 * - exec(): raw-paste mode when the board supports it (`\x05A\x01` → `R\x01` + 16-bit
 *   little-endian window + `\x01`): the host never has more bytes in flight than the credit
 *   the board granted (two windows at first, one more per `\x01`); `\x04` ends the code,
 *   the board acknowledges with `\x04`, then sends stdout `\x04` stderr `\x04>`. A board
 *   that answers `R\x00` (or does not know raw-paste and re-sends the raw banner) gets
 *   plain raw mode from then on: the code, `\x04`, `OK`, stdout `\x04` stderr `\x04>`.
 *   `pipelineNext` sends the next raw-paste request right after the `\x04`, so the board
 *   finds it in its receive buffer (3 bytes) once the code has run: one round trip less
 *   per exec in a series (serial-copy.ts uses it).
 * - softReset({ runMain }): Ctrl-D at the raw prompt (boot.py only; stays in the raw REPL)
 *   or, with runMain, at the friendly prompt (boot.py and main.py; the REPL is left).
 * - exit(): Ctrl-B, back to the friendly REPL.
 *
 * The serial port comes in through the options (anything with write/on/off, e.g. a
 * `serialport` SerialPort or a Node stream), so tests can swap it. Never prints: progress
 * through callbacks, diagnostics through `onLog`. Output is returned as the board sent it
 * (a board's console turns `\n` into `\r\n`).
 */
import type { LogLevel } from '../log.js';
import { RawReplClosedError, RawReplError, RawReplProtocolError, RawReplTimeoutError } from './raw-repl-errors.js';
import { Inbox } from './repl-inbox.js';

/** The small duplex interface RawRepl needs (a `serialport` SerialPort has it). */
export interface ReplPort {
  write(data: Buffer, callback?: (error?: Error | null) => void): unknown;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  off(event: 'data', listener: (chunk: Buffer) => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

export interface RawReplOptions {
  port: ReplPort;
  /** On any failure, try to leave the board out of the raw REPL (Ctrl-C, Ctrl-B). Default false. */
  exitOnError?: boolean;
  /** Try raw-paste mode (default true); false always uses plain raw mode. */
  rawPaste?: boolean;
  onLog?: (level: LogLevel, message: string) => void;
}

export interface ExecOptions {
  /** Longest wait for the board at any point (credit, acknowledgement, output). Default 10 s. */
  timeoutMs?: number;
  /** Bytes of code sent so far. */
  onSend?: (sent: number, total: number) => void;
  /** Send the next exec's raw-paste request now (only the next call may be exec()). */
  pipelineNext?: boolean;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
}

const CTRL_A = 0x01;
const CTRL_B = 0x02;
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const RAW_PROMPT = Buffer.from('raw REPL; CTRL-B to exit\r\n>', 'latin1');
const RAW_BANNER_TAIL = Buffer.from('w REPL; CTRL-B to exit\r\n>', 'latin1');
const FRIENDLY_PROMPT = Buffer.from('>>> ', 'latin1');
const SOFT_REBOOT = Buffer.from('soft reboot\r\n', 'latin1');
const PASTE_REQUEST = Buffer.from([0x05, 0x41, CTRL_A]);
const DEFAULT_TIMEOUT_MS = 10_000;
/** enter(): how long the board may keep talking after Ctrl-C before we go on anyway. */
const SETTLE_QUIET_MS = 150;
const SETTLE_MAX_MS = 1500;
/** Plain raw mode: bytes per write, and the pause between writes (mpremote's pacing). */
const RAW_WRITE_CHUNK = 256;
const RAW_WRITE_PAUSE_MS = 10;

export class RawRepl {
  private readonly port: ReplPort;
  private readonly exitOnError: boolean;
  private readonly onLog: ((level: LogLevel, message: string) => void) | undefined;
  private readonly inbox = new Inbox();
  /** undefined: not asked yet; true: the board answered R\x01; false: plain raw mode. */
  private pasteSupport: boolean | undefined;
  private inRaw = false;
  /** A raw-paste request went out ahead (pipelineNext) and its answer is not read yet. */
  private pasteRequested = false;
  private busy = false;
  private readonly onData = (chunk: Buffer): void => this.inbox.push(chunk);
  private readonly onClose = (): void => this.inbox.close();

  constructor(options: RawReplOptions) {
    this.port = options.port;
    this.exitOnError = options.exitOnError ?? false;
    this.onLog = options.onLog;
    if (options.rawPaste === false) this.pasteSupport = false;
    this.port.on('data', this.onData);
    this.port.on('close', this.onClose);
  }

  /** In the raw REPL (as far as this client knows). */
  get inRawRepl(): boolean {
    return this.inRaw;
  }

  /** Whether the board does raw-paste: undefined until the first exec() asked. */
  get rawPaste(): boolean | undefined {
    return this.pasteSupport;
  }

  /** Stops listening to the port (the port stays open). */
  dispose(): void {
    this.port.off('data', this.onData);
    this.port.off('close', this.onClose);
  }

  /**
   * Interrupts whatever runs (Ctrl-C twice) and enters the raw REPL. Retries until
   * `timeoutMs` (default 10 s): a program that catches one KeyboardInterrupt gets another.
   */
  enter(options: { timeoutMs?: number } = {}): Promise<void> {
    return this.guard(async () => {
      const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      const deadline = Date.now() + timeoutMs;
      this.pasteRequested = false;
      for (let attempt = 1; ; attempt++) {
        await this.write(Buffer.from([0x0d, CTRL_C, CTRL_C]));
        await this.settle(Math.min(SETTLE_MAX_MS, Math.max(0, deadline - Date.now())));
        this.inbox.discard();
        await this.write(Buffer.from([CTRL_A]));
        try {
          await this.inbox.until(RAW_PROMPT, Math.max(1, Math.min(1000 * attempt, deadline - Date.now())), 'raw REPL prompt');
          this.inRaw = true;
          this.log('debug', `raw REPL entered (attempt ${attempt})`);
          return;
        } catch (error) {
          if (!(error instanceof RawReplTimeoutError)) throw error;
          if (Date.now() >= deadline) throw new RawReplTimeoutError(`could not enter the raw REPL within ${timeoutMs} ms: ${error.message}`);
          this.log('debug', `no raw REPL prompt yet (attempt ${attempt}), interrupting again`);
        }
      }
    });
  }

  /** Runs `code`; resolves with what it printed (a traceback on stderr is not an error here). */
  exec(code: string | Buffer, options: ExecOptions = {}): Promise<ExecResult> {
    return this.guard(() => this.execInRaw(typeof code === 'string' ? Buffer.from(code, 'utf8') : code, options));
  }

  /** Like exec(), but a traceback throws RawReplError; resolves with stdout. */
  async execChecked(code: string | Buffer, options: ExecOptions = {}): Promise<string> {
    return this.guard(async () => {
      const result = await this.execInRaw(typeof code === 'string' ? Buffer.from(code, 'utf8') : code, options);
      if (result.stderr) throw new RawReplError(result.stderr, result.stdout);
      return result.stdout;
    });
  }

  /** Evaluates a Python expression on the board; resolves with its repr() (line end removed). */
  async eval(expression: string, options: ExecOptions = {}): Promise<string> {
    const stdout = await this.execChecked(`print(repr(${expression}))`, options);
    return stdout.replace(/\r?\n$/, '');
  }

  /**
   * Ctrl-D. Without runMain: at the raw prompt, boot.py runs and the board stays in the
   * raw REPL. With runMain: from the friendly REPL, boot.py and main.py run (the program
   * owns the board afterwards: enter() again to use the raw REPL).
   */
  softReset(options: { runMain: boolean; timeoutMs?: number }): Promise<void> {
    return this.guard(async () => {
      const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      this.requireRaw();
      await this.cancelPasteRequest(timeoutMs);
      if (!options.runMain) {
        await this.write(Buffer.from([CTRL_D]));
        await this.inbox.until(SOFT_REBOOT, timeoutMs, 'soft reboot');
        await this.inbox.until(RAW_PROMPT, timeoutMs, 'raw REPL prompt after the soft reboot');
        return;
      }
      await this.leaveRaw(timeoutMs);
      await this.write(Buffer.from([CTRL_D]));
      await this.inbox.until(SOFT_REBOOT, timeoutMs, 'soft reboot');
    });
  }

  /** Ctrl-B: back to the friendly REPL. */
  exit(options: { timeoutMs?: number } = {}): Promise<void> {
    return this.guard(async () => {
      const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
      if (!this.inRaw) return;
      await this.cancelPasteRequest(timeoutMs);
      await this.leaveRaw(timeoutMs);
    });
  }

  // --- internals ---------------------------------------------------------------------------

  /** One operation at a time; on failure, optionally leave the raw REPL. */
  private async guard<T>(operation: () => Promise<T>): Promise<T> {
    if (this.busy) throw new RawReplProtocolError('another raw REPL operation is in progress');
    this.busy = true;
    try {
      return await operation();
    } catch (error) {
      if (this.exitOnError) await this.abandon();
      throw error;
    } finally {
      this.busy = false;
    }
  }

  private async execInRaw(code: Buffer, options: ExecOptions): Promise<ExecResult> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.requireRaw();
    let paste = false;
    if (this.pasteSupport !== false) {
      if (!this.pasteRequested) await this.write(PASTE_REQUEST);
      this.pasteRequested = false;
      paste = await this.pasteAnswer(timeoutMs);
    }
    if (paste) {
      const ended = await this.sendPaste(code, options, timeoutMs);
      if (options.pipelineNext) {
        await this.write(PASTE_REQUEST);
        this.pasteRequested = true;
      }
      if (!ended) {
        // Credit for the last window may still come before the acknowledgement.
        const ack = await this.inbox.until(Buffer.from([CTRL_D]), timeoutMs, 'end-of-code acknowledgement');
        if (ack.subarray(0, -1).some((b) => b !== CTRL_A))
          throw new RawReplProtocolError(`unexpected bytes before the raw-paste acknowledgement: ${JSON.stringify(ack.toString('latin1'))}`);
      }
    } else {
      await this.sendRaw(code, options);
      const ok = await this.inbox.bytes(2, timeoutMs, 'OK');
      if (ok.toString('latin1') !== 'OK') throw new RawReplProtocolError(`expected OK after the code, got ${JSON.stringify(ok.toString('latin1'))}`);
    }
    return this.readOutput(timeoutMs);
  }

  /** Reads the answer to a raw-paste request; false (plain raw mode from now on) if refused. */
  private async pasteAnswer(timeoutMs: number): Promise<boolean> {
    const answer = await this.inbox.bytes(2, timeoutMs, 'raw-paste answer');
    if (answer[0] === 0x52 && answer[1] === 0x01) {
      this.pasteSupport = true;
      return true;
    }
    if (answer[0] === 0x52 && answer[1] === 0x00) {
      await this.inbox.until(Buffer.from('>'), timeoutMs, 'raw REPL prompt'); // pyexec.c prompts again
      this.log('info', 'the board does not support raw-paste mode: using plain raw mode');
    } else {
      // A board older than raw-paste took Ctrl-A as "reset the raw REPL".
      await this.inbox.until(RAW_BANNER_TAIL, timeoutMs, 'raw REPL prompt');
      this.log('info', 'the board does not know raw-paste mode: using plain raw mode');
    }
    this.pasteSupport = false;
    return false;
  }

  /**
   * Sends `code` within the board's flow-control credit, then \x04. Resolves true if the
   * board ended the paste early (its \x04: it stopped compiling, e.g. a syntax error or
   * no memory; the error follows as the exec's output), which is acknowledged with \x04.
   */
  private async sendPaste(code: Buffer, options: ExecOptions, timeoutMs: number): Promise<boolean> {
    const header = await this.inbox.bytes(2, timeoutMs, 'raw-paste window size');
    const window = header.readUInt16LE(0);
    if (window === 0) throw new RawReplProtocolError('the board announced a raw-paste window of 0 bytes');
    let credit = window;
    let sent = 0;
    while (sent < code.length) {
      // Flow control bytes: \x01 grants a window, \x04 means the board ended the paste.
      while (this.inbox.length > 0) {
        const b = this.inbox.take(1)[0]!;
        if (b === CTRL_A) {
          credit += window;
        } else if (b === CTRL_D) {
          await this.write(Buffer.from([CTRL_D])); // acknowledge, as the protocol asks
          this.log('debug', `the board ended the raw paste after ${sent} of ${code.length} bytes`);
          return true;
        } else {
          throw new RawReplProtocolError(`unexpected byte 0x${b.toString(16)} from the board during raw paste`);
        }
      }
      if (credit === 0) {
        const before = Date.now();
        await this.inbox.next(timeoutMs);
        if (this.inbox.length === 0 && Date.now() - before >= timeoutMs)
          throw new RawReplTimeoutError(`no flow-control credit from the board within ${timeoutMs} ms`);
        continue;
      }
      const n = Math.min(credit, code.length - sent);
      await this.write(code.subarray(sent, sent + n));
      sent += n;
      credit -= n;
      options.onSend?.(sent, code.length);
    }
    await this.write(Buffer.from([CTRL_D]));
    return false;
  }

  /** Plain raw mode: the code in 256-byte writes 10 ms apart (the board reads as it goes), then Ctrl-D. */
  private async sendRaw(code: Buffer, options: ExecOptions): Promise<void> {
    for (let sent = 0; sent < code.length;) {
      const n = Math.min(RAW_WRITE_CHUNK, code.length - sent);
      await this.write(code.subarray(sent, sent + n));
      sent += n;
      options.onSend?.(sent, code.length);
      if (sent < code.length) await new Promise((resolve) => setTimeout(resolve, RAW_WRITE_PAUSE_MS));
    }
    await this.write(Buffer.from([CTRL_D]));
  }

  /** stdout up to \x04, stderr up to \x04, then the raw prompt `>`. */
  private async readOutput(timeoutMs: number): Promise<ExecResult> {
    const eot = Buffer.from([CTRL_D]);
    const stdout = (await this.inbox.until(eot, timeoutMs, 'output')).subarray(0, -1);
    const stderr = (await this.inbox.until(eot, timeoutMs, 'error output')).subarray(0, -1);
    await this.inbox.until(Buffer.from('>'), timeoutMs, 'raw REPL prompt');
    return { stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8') };
  }

  /** A raw-paste request sent ahead is answered: end that paste with no code. */
  private async cancelPasteRequest(timeoutMs: number): Promise<void> {
    if (!this.pasteRequested) return;
    this.pasteRequested = false;
    if (await this.pasteAnswer(timeoutMs)) {
      await this.inbox.bytes(2, timeoutMs, 'raw-paste window size');
      await this.write(Buffer.from([CTRL_D]));
      await this.inbox.until(Buffer.from([CTRL_D]), timeoutMs, 'end-of-code acknowledgement');
      await this.readOutput(timeoutMs);
    }
  }

  private async leaveRaw(timeoutMs: number): Promise<void> {
    this.inbox.discard();
    await this.write(Buffer.from([0x0d, CTRL_B]));
    this.inRaw = false;
    await this.inbox.until(FRIENDLY_PROMPT, timeoutMs, 'friendly REPL prompt');
  }

  /** After a failure: stop what runs, leave the raw REPL; best effort, never throws. */
  private async abandon(): Promise<void> {
    this.pasteRequested = false;
    if (this.inbox.isClosed) {
      this.inRaw = false;
      return;
    }
    try {
      // Ctrl-C ends a raw paste or interrupts running code; a second clears the raw buffer.
      await this.write(Buffer.from([CTRL_C]));
      await this.settle(500);
      await this.write(Buffer.from([CTRL_C]));
      await this.leaveRaw(1000);
      this.log('debug', 'left the raw REPL after a failure');
    } catch (error) {
      this.inRaw = false;
      this.log('warn', `could not leave the raw REPL after a failure: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Waits until the board has been quiet for a moment (or a prompt ends the output). */
  private async settle(maxMs: number): Promise<void> {
    const deadline = Date.now() + maxMs;
    const started = Date.now();
    for (;;) {
      const tail = this.inbox.peek().subarray(-4).toString('latin1');
      if (tail.endsWith('>>> ') && Date.now() - this.inbox.lastDataAt >= 20) return;
      const quietFor = Date.now() - Math.max(this.inbox.lastDataAt, started);
      if (quietFor >= SETTLE_QUIET_MS || Date.now() >= deadline) return;
      await this.inbox.next(Math.min(SETTLE_QUIET_MS - quietFor, deadline - Date.now()));
    }
  }

  private requireRaw(): void {
    if (!this.inRaw) throw new RawReplProtocolError('not in the raw REPL: call enter() first');
  }

  private write(data: Buffer): Promise<void> {
    if (this.inbox.isClosed) return Promise.reject(new RawReplClosedError('the serial port closed'));
    return new Promise<void>((resolve, reject) => {
      try {
        this.port.write(data, (error) => (error ? reject(new RawReplClosedError(`writing to the serial port failed: ${error.message}`)) : resolve()));
      } catch (error) {
        reject(new RawReplClosedError(`writing to the serial port failed: ${error instanceof Error ? error.message : String(error)}`));
      }
    });
  }

  private log(level: LogLevel, message: string): void {
    try {
      this.onLog?.(level, message);
    } catch {
      // a failing logger must not break the protocol
    }
  }
}

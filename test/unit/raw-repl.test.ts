/**
 * RawRepl against a scripted board on a fake port (RawRepl takes its port as an option):
 * a slow consumer that checks the host never has more raw-paste bytes in flight than the
 * credit granted, a board from before raw-paste mode, a board that ends a paste early,
 * and a port that closes.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { RawRepl, type ReplPort } from '../../electron/manager/usb/raw-repl.js';
import { RawReplClosedError, RawReplProtocolError, RawReplTimeoutError } from '../../electron/manager/usb/raw-repl-errors.js';

const RAW_BANNER = 'raw REPL; CTRL-B to exit\r\n>';

/** A board's raw REPL in a few lines: `exec` code answers `ran <length>`. */
class ScriptedBoard extends EventEmitter implements ReplPort {
  mode: 'friendly' | 'raw' | 'paste' | 'paste-ended' = 'friendly';
  code: number[] = [];
  /** Raw-paste bytes received but not consumed yet (the board's stdin buffer). */
  buffered = 0;
  received = 0;
  allowed = 0;
  remain = 0;
  maxOverCredit = 0;
  timer: NodeJS.Timeout | undefined;
  writes = 0;

  constructor(
    readonly window: number,
    readonly kind: 'raw-paste' | 'legacy' | 'aborts' = 'raw-paste',
    readonly consumePerTick = 16,
  ) {
    super();
  }

  write(data: Buffer, callback?: (error?: Error | null) => void): boolean {
    this.writes++;
    for (const b of data) this.byte(b);
    setImmediate(() => callback?.());
    return true;
  }

  private send(text: string | number[]): void {
    const data = typeof text === 'string' ? Buffer.from(text, 'latin1') : Buffer.from(text);
    setImmediate(() => this.emit('data', data));
  }

  private byte(b: number): void {
    if (this.mode === 'paste-ended') {
      // pyexec.c's reader, closed early: drops input until the host's \x04 (or Ctrl-C), then the error.
      if (b !== 3 && b !== 4) return;
      this.mode = 'raw';
      this.send('\x04Traceback (most recent call last):\r\nSyntaxError: invalid syntax\r\n\x04>');
      return;
    }
    if (this.mode === 'paste') {
      if (b === 4) {
        clearInterval(this.timer);
        this.mode = 'raw';
        this.send(`\x04ran ${this.code.length + this.buffered}\r\n\x04\x04>`);
        this.code = [];
        this.buffered = 0;
        return;
      }
      this.received++;
      this.maxOverCredit = Math.max(this.maxOverCredit, this.received - this.allowed);
      this.buffered++;
      if (this.kind === 'aborts' && this.received === 10) {
        clearInterval(this.timer);
        this.send('\x04');
        this.mode = 'paste-ended';
        this.buffered = 0;
      }
      return;
    }
    if (b === 3) {
      if (this.mode === 'friendly') this.send('\r\n>>> ');
      this.code = [];
    } else if (b === 1) {
      if (this.mode === 'raw' && this.code.length === 2 && this.code[0] === 5 && this.kind !== 'legacy') return this.startPaste();
      if (this.mode === 'friendly') this.send('\r\n');
      this.mode = 'raw';
      this.code = [];
      this.send(RAW_BANNER);
    } else if (b === 2) {
      this.mode = 'friendly';
      this.send('\r\nMicroPython\r\n>>> ');
    } else if (b === 4 && this.mode === 'raw') {
      this.send(`OKran ${this.code.length}\r\n\x04\x04>`);
      this.code = [];
    } else if (this.mode === 'raw') {
      this.code.push(b);
    }
  }

  private startPaste(): void {
    this.code = [];
    this.mode = 'paste';
    this.received = 0;
    this.allowed = 2 * this.window;
    this.remain = this.window;
    this.send([0x52, 0x01, this.window & 0xff, this.window >> 8, 0x01]);
    // Consumes slowly, granting a window for each window consumed.
    this.timer = setInterval(() => {
      for (let i = 0; i < this.consumePerTick && this.buffered > 0; i++) {
        this.buffered--;
        this.code.push(0);
        if (--this.remain === 0) {
          this.remain = this.window;
          this.allowed += this.window;
          this.send([0x01]);
        }
      }
    }, 1);
  }

  close(): void {
    clearInterval(this.timer);
    this.emit('close');
  }
}

describe('RawRepl', () => {
  it('raw-paste: never more in flight than the credit, whatever the window', async () => {
    for (const window of [16, 128, 1000]) {
      const board = new ScriptedBoard(window);
      const repl = new RawRepl({ port: board });
      await repl.enter({ timeoutMs: 2000 });
      const sent: number[] = [];
      const code = 'x'.repeat(5000);
      expect(await repl.exec(code, { onSend: (n) => sent.push(n) })).toEqual({ stdout: 'ran 5000\r\n', stderr: '' });
      expect(board.maxOverCredit).toBe(0);
      expect(sent.at(-1)).toBe(5000);
      expect(repl.rawPaste).toBe(true);
    }
  });

  it('pipelines the next raw-paste request, and cancels it cleanly before exit()', async () => {
    const board = new ScriptedBoard(128);
    const repl = new RawRepl({ port: board });
    await repl.enter({ timeoutMs: 2000 });
    expect((await repl.exec('a', { pipelineNext: true })).stdout).toBe('ran 1\r\n');
    expect((await repl.exec('bb', { pipelineNext: true })).stdout).toBe('ran 2\r\n');
    await repl.exit();
    expect(board.mode).toBe('friendly');
    expect(repl.inRawRepl).toBe(false);
  });

  it('falls back to plain raw mode on a board that predates raw-paste', async () => {
    const board = new ScriptedBoard(128, 'legacy');
    const repl = new RawRepl({ port: board });
    await repl.enter({ timeoutMs: 2000 });
    expect(await repl.exec('y'.repeat(600))).toEqual({ stdout: 'ran 600\r\n', stderr: '' });
    expect(repl.rawPaste).toBe(false);
    expect(await repl.exec('z')).toEqual({ stdout: 'ran 1\r\n', stderr: '' });
  });

  it('a board that ends the paste early (a syntax error while compiling): acknowledged, its error returned', async () => {
    const board = new ScriptedBoard(128, 'aborts');
    const repl = new RawRepl({ port: board, exitOnError: true });
    await repl.enter({ timeoutMs: 2000 });
    expect(await repl.exec('q'.repeat(3000))).toEqual({ stdout: '', stderr: 'Traceback (most recent call last):\r\nSyntaxError: invalid syntax\r\n' });
    expect(board.received).toBeLessThan(3000);
    expect(repl.inRawRepl).toBe(true);
    // Exactly one \x04 acknowledged the early end: the board is back at its raw prompt, in step.
    expect(board.mode).toBe('raw');
  });

  it('exitOnError leaves the raw REPL after a failure', async () => {
    const board = new ScriptedBoard(128, 'aborts');
    const repl = new RawRepl({ port: board, exitOnError: true });
    await repl.enter({ timeoutMs: 2000 });
    await expect(repl.execChecked('q'.repeat(3000))).rejects.toMatchObject({ name: 'RawReplError', message: 'SyntaxError: invalid syntax' });
    expect(repl.inRawRepl).toBe(false);
    expect(board.mode).toBe('friendly');
  });

  it('times out on a silent board; a closed port is RawReplClosedError', async () => {
    const silent = new EventEmitter() as EventEmitter & ReplPort;
    (silent as { write: ReplPort['write'] }).write = (_data, callback) => {
      setImmediate(() => callback?.());
      return true;
    };
    await expect(new RawRepl({ port: silent }).enter({ timeoutMs: 300 })).rejects.toBeInstanceOf(RawReplTimeoutError);
    const board = new ScriptedBoard(128);
    const repl = new RawRepl({ port: board });
    await repl.enter({ timeoutMs: 2000 });
    board.close();
    await expect(repl.exec('print(1)')).rejects.toBeInstanceOf(RawReplClosedError);
    await expect(repl.exec('print(1)')).rejects.toBeInstanceOf(RawReplClosedError);
  });

  it('refuses to exec outside the raw REPL and to run two operations at once', async () => {
    const board = new ScriptedBoard(128);
    const repl = new RawRepl({ port: board });
    await expect(repl.exec('1')).rejects.toBeInstanceOf(RawReplProtocolError);
    await repl.enter({ timeoutMs: 2000 });
    const first = repl.exec('x'.repeat(1000));
    await expect(repl.exec('y')).rejects.toBeInstanceOf(RawReplProtocolError);
    expect((await first).stdout).toBe('ran 1000\r\n');
  });
});

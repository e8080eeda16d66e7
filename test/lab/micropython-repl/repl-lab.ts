/**
 * Test helpers for the REPL simulator: a board + pty + simulator, and a host-side serial
 * port (the real `serialport` package on the pty) that collects what the board sends.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { closeNodeSerialPort, openNodeSerialPort, type NodeSerialPort } from '../../../electron/manager/usb/web-serial-port.js';
import { PtyLink } from '../pty-link.js';
import { MicroPythonBoard, type MicroPythonBoardOptions } from '../../../electron/manager/virtual/micropython-board.js';
import { MicroPythonReplSimulator } from './micropython-repl-simulator.js';
import type { MicroPythonReplOptions } from './repl-simulator-types.js';

/** The host's end of the line: writes bytes, keeps everything received. */
export class HostTerminal {
  private received = Buffer.alloc(0);
  /** Everything received so far is before this offset (see take()). */
  private mark = 0;

  constructor(readonly port: NodeSerialPort) {
    port.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
    });
  }

  static async open(link: PtyLink): Promise<HostTerminal> {
    return new HostTerminal(await openNodeSerialPort(link.path, { baudRate: link.lineRate || 115_200 }));
  }

  write(data: string | Buffer): void {
    this.port.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** All text received (latin1) since the last take(). */
  get text(): string {
    return this.received.subarray(this.mark).toString('latin1');
  }

  /** Waits until the text since the last take() contains `expected`; returns it and moves the mark past it. */
  async take(expected: string | RegExp, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.text;
      const match =
        typeof expected === 'string'
          ? text.includes(expected)
            ? { index: text.indexOf(expected), length: expected.length }
            : undefined
          : (() => {
              const m = expected.exec(text);
              return m ? { index: m.index, length: m[0].length } : undefined;
            })();
      if (match) {
        const upTo = match.index + match.length;
        this.mark += Buffer.byteLength(text.slice(0, upTo), 'latin1');
        return text.slice(0, upTo);
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${JSON.stringify(String(expected))}; received ${JSON.stringify(text)}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Waits until nothing has arrived for `quietMs`; returns what arrived since the last take(). */
  async settle(quietMs = 150): Promise<string> {
    let length = -1;
    while (length !== this.received.length) {
      length = this.received.length;
      await new Promise((resolve) => setTimeout(resolve, quietMs));
    }
    const text = this.text;
    this.mark = this.received.length;
    return text;
  }

  async close(): Promise<void> {
    await closeNodeSerialPort(this.port);
  }
}

export interface ReplLab {
  folder: string;
  link: PtyLink;
  board: MicroPythonBoard;
  repl: MicroPythonReplSimulator;
  logs: string[];
  close(): Promise<void>;
}

/** A board with `files` in its flash, behind a REPL simulator on a fresh pty (not started). */
export async function makeReplLab(
  files: Record<string, string | Buffer> = {},
  options: { board?: Partial<MicroPythonBoardOptions>; repl?: Partial<MicroPythonReplOptions>; folder?: string } = {},
): Promise<ReplLab> {
  const folder = options.folder ?? (await mkdtemp(path.join(os.tmpdir(), 'cm-repl-')));
  for (const [name, data] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(folder, name)), { recursive: true });
    await writeFile(path.join(folder, name), data);
  }
  const logs: string[] = [];
  const link = await PtyLink.open({ baud: 115_200 });
  const board = new MicroPythonBoard({ folder, onLog: (level, message) => logs.push(`${level}: ${message}`), ...options.board });
  const repl = new MicroPythonReplSimulator({ link, board, onLog: (level, message) => logs.push(`repl ${level}: ${message}`), ...options.repl });
  return {
    folder,
    link,
    board,
    repl,
    logs,
    async close() {
      repl.close();
      await board.powerOff();
      await link.close();
      if (!options.folder) await rm(folder, { recursive: true, force: true });
    },
  };
}

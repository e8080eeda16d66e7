/**
 * A pseudo-terminal for simulated serial hardware. `socat` creates a pty (the device the
 * host opens, linked at a path like a /dev/ttyUSB0) whose other side is socat's stdio,
 * which the simulator reads and writes. A pty carries no modem lines: DTR/RTS requests
 * fail on it, as on an adapter without reset lines.
 *
 * Baud-rate emulation: the simulator receives bytes no faster than the configured line
 * rate (10 bits a byte) and sends its own output at that rate too, so transfer times in
 * the lab match a real UART at that speed (PacedLine, shared with Rfc2217Link). Change the
 * rate with `setBaud` when the simulated device does (e.g. the flasher stub's CHANGE_BAUDRATE).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PacedLink } from './paced-line.js';

export class PtyUnavailableError extends Error {
  override name = 'PtyUnavailableError';
}

export interface PtyLinkOptions {
  /** Where to link the pty (default: a temp folder's `tty`). */
  link?: string;
  /** Line rate in baud (default 115200); 0 disables pacing. */
  baud?: number;
}

export interface PtyLinkEvents {
  /** Bytes from the host, delivered at the line rate. */
  data: [chunk: Buffer];
  close: [];
  /**
   * The host changed its modem control lines (true = asserted, as serialport's set() takes
   * them). A pty has none and never emits this; a link with modem lines (RFC 2217) does.
   */
  lines: [state: { dtr: boolean; rts: boolean }];
}

/**
 * The board's side of a serial link, as the simulators use it: a pty (PtyLink) or a link
 * with modem lines. Bytes are paced at `lineRate` in both directions.
 */
export interface SerialLink extends EventEmitter<PtyLinkEvents> {
  /** What the host opens: a device path, or an rfc2217:// URL. */
  readonly path: string;
  readonly lineRate: number;
  setBaud(baud: number): void;
  write(data: Buffer | Uint8Array | string): void;
  lineMs(bytes: number): number;
  drain(): Promise<void>;
  discardInput(): void;
  close(): Promise<void>;
}

export class PtyLink extends PacedLink implements SerialLink {
  readonly path: string;
  private readonly socat: ChildProcess;

  /** The temp folder open() made for the link (removed when socat ends). */
  private readonly ownDir: string | undefined;

  /** Settles once socat has ended and the link's own folder is gone (close() waits for it). */
  private readonly ended: Promise<void>;

  private constructor(pathName: string, socat: ChildProcess, baud: number, ownDir: string | undefined) {
    super(baud);
    this.path = pathName;
    this.ownDir = ownDir;
    this.socat = socat;
    // A test process that ends with the link still open (a failed test, a forgotten
    // close) still leaves no folder behind.
    if (ownDir) {
      const removeAtExit = () => rmSync(ownDir, { recursive: true, force: true });
      process.once('exit', removeAtExit);
      socat.once('exit', () => process.off('exit', removeAtExit));
    }
    socat.stdout!.on('data', (chunk: Buffer) => this.rx.push(chunk));
    this.ended = new Promise((resolve) => {
      socat.on('exit', () => {
        this.closed = true;
        this.rx.stop();
        this.tx.stop();
        const removed = this.ownDir ? rm(this.ownDir, { recursive: true, force: true }) : Promise.resolve();
        void removed.catch(() => undefined).then(() => resolve());
        this.emit('close');
      });
    });
  }

  static async open(options: PtyLinkOptions = {}): Promise<PtyLink> {
    // A link placed in a folder a previous PtyLink made and removed when it ended (a board
    // re-plugged at the same path): the folder made again is this link's to remove.
    const ownDir = options.link ? await mkdir(path.dirname(options.link), { recursive: true }) : await mkdtemp(path.join(os.tmpdir(), 'cm-pty-'));
    const link = options.link ?? path.join(ownDir!, 'tty');
    // raw,echo=0: bytes pass untouched in both directions (no line discipline, no echo).
    const socat = spawn('socat', ['-d', `pty,raw,echo=0,link=${link}`, 'stdio'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const started = await new Promise<boolean>((resolve) => {
      socat.once('error', () => resolve(false));
      const deadline = Date.now() + 5_000;
      const check = () => {
        if (existsSync(link)) resolve(true);
        else if (Date.now() > deadline || socat.exitCode !== null) resolve(false);
        else setTimeout(check, 10);
      };
      check();
    });
    if (!started) {
      socat.kill();
      if (ownDir) await rm(ownDir, { recursive: true, force: true });
      throw new PtyUnavailableError('could not create a pty with socat (is socat installed? apt-get install socat)');
    }
    return new PtyLink(link, socat, options.baud ?? 115_200, ownDir);
  }

  /**
   * The rate the host's end of the pty is set to, read with `stty -F` (undefined when that
   * fails). A rate termios has no name for (set with BOTHER, as serialport sets 74880)
   * reads as 0 there; it is taken as 74880, the one such rate an ESP8266 host uses.
   */
  queryHostBaud(): number | undefined {
    if (this.closed) return undefined;
    try {
      const speed = Number(execFileSync('stty', ['-F', this.path, 'speed'], { encoding: 'utf8', timeout: 2_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      if (!Number.isFinite(speed)) return undefined;
      return speed === 0 ? 74_880 : speed;
    } catch {
      return undefined;
    }
  }

  protected sendToHost(chunk: Buffer): void {
    this.socat.stdin!.write(chunk);
  }

  async close(): Promise<void> {
    this.rx.stop();
    this.tx.stop();
    if (!this.closed) this.socat.kill('SIGTERM');
    await this.ended;
  }
}

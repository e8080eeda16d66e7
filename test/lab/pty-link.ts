/**
 * A pseudo-terminal for simulated serial hardware. `socat` creates a pty (the device the
 * host opens, linked at a path like a /dev/ttyUSB0) whose other side is socat's stdio,
 * which the simulator reads and writes. A pty carries no modem lines: DTR/RTS requests
 * fail on it, as on an adapter without reset lines.
 *
 * Baud-rate emulation: the simulator receives bytes no faster than the configured line
 * rate (10 bits a byte) and sends its own output at that rate too, so transfer times in
 * the lab match a real UART at that speed. Change the rate with `setBaud` when the
 * simulated device does (e.g. the flasher stub's CHANGE_BAUDRATE).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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
}

/** Bytes per pacing tick; small enough that timing stays smooth at 115200. */
const SLICE = 64;

export class PtyLink extends EventEmitter<PtyLinkEvents> {
  readonly path: string;
  private baud: number;
  private readonly socat: ChildProcess;
  private readonly inbox: Buffer[] = [];
  private inboxBytes = 0;
  private readonly outbox: Buffer[] = [];
  private rxBusyUntil = 0;
  private txBusyUntil = 0;
  private rxTimer: NodeJS.Timeout | undefined;
  private txTimer: NodeJS.Timeout | undefined;
  private closed = false;

  /** The temp folder open() made for the link (removed when socat ends). */
  private readonly ownDir: string | undefined;

  private constructor(pathName: string, socat: ChildProcess, baud: number, ownDir: string | undefined) {
    super();
    this.path = pathName;
    this.ownDir = ownDir;
    this.socat = socat;
    this.baud = baud;
    socat.stdout!.on('data', (chunk: Buffer) => {
      this.inbox.push(chunk);
      this.inboxBytes += chunk.length;
      this.pumpRx();
    });
    socat.on('exit', () => {
      this.closed = true;
      if (this.ownDir) void rm(this.ownDir, { recursive: true, force: true });
      this.emit('close');
    });
  }

  static async open(options: PtyLinkOptions = {}): Promise<PtyLink> {
    const ownDir = options.link ? undefined : await mkdtemp(path.join(os.tmpdir(), 'cm-pty-'));
    const link = options.link ?? path.join(ownDir!, 'tty');
    // A link placed in a folder a previous PtyLink made (and removed when it ended).
    if (options.link) await mkdir(path.dirname(link), { recursive: true });
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

  get lineRate(): number {
    return this.baud;
  }

  /** Changes the line rate of both directions from now on. */
  setBaud(baud: number): void {
    this.baud = baud;
  }

  /** Sends bytes to the host, paced at the line rate. */
  write(data: Buffer | Uint8Array | string): void {
    if (this.closed) return;
    this.outbox.push(Buffer.from(data));
    this.pumpTx();
  }

  /** Milliseconds that `bytes` take on the line at the current rate. */
  lineMs(bytes: number): number {
    return this.baud > 0 ? (bytes * 10 * 1000) / this.baud : 0;
  }

  /** Resolves once everything written so far has left at the line rate. */
  async drain(): Promise<void> {
    while ((this.outbox.length > 0 || Date.now() < this.txBusyUntil) && !this.closed) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  /** Drops bytes received but not yet delivered (e.g. what a reset would lose). */
  discardInput(): void {
    this.inbox.length = 0;
    this.inboxBytes = 0;
  }

  async close(): Promise<void> {
    clearTimeout(this.rxTimer);
    clearTimeout(this.txTimer);
    if (this.closed) return;
    const exited = new Promise<void>((resolve) => this.socat.once('exit', () => resolve()));
    this.socat.kill('SIGTERM');
    await exited;
  }

  /**
   * `continuing`: bytes were waiting, so the next slice starts where the previous one ended
   * even if the timer fired late (timers have ~1 ms granularity; restarting from "now"
   * would lose that time on every slice and run the line 10-50 % slow). After an idle
   * line the schedule restarts from now.
   */
  private pumpRx(continuing = false): void {
    if (this.rxTimer || this.inboxBytes === 0) return;
    const now = Date.now();
    if (now < this.rxBusyUntil) {
      this.rxTimer = setTimeout(() => {
        this.rxTimer = undefined;
        this.pumpRx(true);
      }, this.rxBusyUntil - now);
      return;
    }
    const chunk = this.take(this.inbox, this.baud > 0 ? SLICE : this.inboxBytes);
    this.inboxBytes -= chunk.length;
    this.rxBusyUntil = (continuing ? this.rxBusyUntil : Math.max(now, this.rxBusyUntil)) + this.lineMs(chunk.length);
    this.emit('data', chunk);
    this.pumpRx(true);
  }

  private pumpTx(continuing = false): void {
    if (this.txTimer || this.outbox.length === 0 || this.closed) return;
    const now = Date.now();
    if (now < this.txBusyUntil) {
      this.txTimer = setTimeout(() => {
        this.txTimer = undefined;
        this.pumpTx(true);
      }, this.txBusyUntil - now);
      return;
    }
    const total = this.outbox.reduce((sum, part) => sum + part.length, 0);
    const chunk = this.take(this.outbox, this.baud > 0 ? SLICE : total);
    this.txBusyUntil = (continuing ? this.txBusyUntil : Math.max(now, this.txBusyUntil)) + this.lineMs(chunk.length);
    this.socat.stdin!.write(chunk);
    this.pumpTx(true);
  }

  /** Removes up to `max` bytes from the front of a queue of buffers. */
  private take(queue: Buffer[], max: number): Buffer {
    const parts: Buffer[] = [];
    let size = 0;
    while (queue.length > 0 && size < max) {
      const head = queue[0]!;
      const room = max - size;
      if (head.length <= room) {
        parts.push(head);
        size += head.length;
        queue.shift();
      } else {
        parts.push(head.subarray(0, room));
        queue[0] = head.subarray(room);
        size += room;
      }
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
  }
}

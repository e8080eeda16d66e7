/**
 * One direction of a simulated UART line: bytes pushed here are delivered no faster than
 * the line rate (10 bits a byte), in slices of SLICE bytes, so transfer times in the lab
 * match a real UART at that speed. A rate of 0 delivers at once. PtyLink and Rfc2217Link
 * use one for each direction, through PacedLink.
 */
import { EventEmitter } from 'node:events';
import type { PtyLinkEvents } from './pty-link.js';

/** Bytes per pacing tick; small enough that timing stays smooth at 115200. */
const SLICE = 64;

export class PacedLine {
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private busyUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly drainWaiters: (() => void)[] = [];
  private stopped = false;

  /** `rate`: the current line rate in baud; `deliver`: where each slice goes, on time. */
  constructor(
    private readonly rate: () => number,
    private readonly deliver: (chunk: Buffer) => void,
  ) {}

  /** Bytes waiting to be delivered. */
  get pendingBytes(): number {
    return this.queued;
  }

  /** Milliseconds that `bytes` take on the line at the current rate. */
  lineMs(bytes: number): number {
    const baud = this.rate();
    return baud > 0 ? (bytes * 10 * 1000) / baud : 0;
  }

  push(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    this.queue.push(chunk);
    this.queued += chunk.length;
    this.pump();
  }

  /** Drops the bytes not delivered yet (the line time already used stays used). */
  discard(): void {
    this.queue.length = 0;
    this.queued = 0;
    this.settle();
  }

  /** Resolves once everything pushed so far has left at the line rate (or the line stopped). */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      this.drainWaiters.push(resolve);
      this.settle();
    });
  }

  /** Stops delivering for good: queued bytes are dropped, drained() resolves. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.idleTimer);
    this.timer = undefined;
    this.idleTimer = undefined;
    this.queue.length = 0;
    this.queued = 0;
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }

  /**
   * `continuing`: bytes were waiting, so the next slice starts where the previous one ended
   * even if the timer fired late (timers have ~1 ms granularity; restarting from "now"
   * would lose that time on every slice and run the line 10-50 % slow). After an idle
   * line the schedule restarts from now.
   */
  private pump(continuing = false): void {
    if (this.timer || this.queued === 0 || this.stopped) {
      this.settle();
      return;
    }
    const now = Date.now();
    if (now < this.busyUntil) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump(true);
      }, this.busyUntil - now);
      return;
    }
    const chunk = take(this.queue, this.rate() > 0 ? SLICE : this.queued);
    this.queued -= chunk.length;
    this.busyUntil = (continuing ? this.busyUntil : Math.max(now, this.busyUntil)) + this.lineMs(chunk.length);
    this.deliver(chunk);
    this.pump(true);
  }

  /** Wakes drained() waiters once the queue is empty and its last slice has left. */
  private settle(): void {
    if (this.drainWaiters.length === 0 || this.idleTimer) return;
    if (!this.stopped && (this.queued > 0 || this.timer)) return; // pump() settles again
    const wait = this.stopped ? 0 : this.busyUntil - Date.now();
    if (wait > 0) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = undefined;
        this.settle();
      }, wait);
      return;
    }
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }
}

/** Removes up to `max` bytes from the front of a queue of buffers. */
function take(queue: Buffer[], max: number): Buffer {
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

/**
 * The paced part of a simulated serial link (PtyLink, Rfc2217Link): bytes from the host
 * become 'data' events at the line rate, bytes for the host leave at it through
 * `sendToHost`. Subclasses own the transport and set `closed`.
 */
export abstract class PacedLink extends EventEmitter<PtyLinkEvents> {
  protected baud: number;
  protected closed = false;
  /** Host → simulator ('data' events) and simulator → host, both paced. */
  protected readonly rx: PacedLine;
  protected readonly tx: PacedLine;

  protected constructor(baud: number) {
    super();
    this.baud = baud;
    this.rx = new PacedLine(
      () => this.baud,
      (chunk) => this.emit('data', chunk),
    );
    this.tx = new PacedLine(
      () => this.baud,
      (chunk) => this.sendToHost(chunk),
    );
  }

  /** Hands one paced slice to the host's side of the transport. */
  protected abstract sendToHost(chunk: Buffer): void;

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
    this.tx.push(Buffer.from(data));
  }

  /** Milliseconds that `bytes` take on the line at the current rate. */
  lineMs(bytes: number): number {
    return this.tx.lineMs(bytes);
  }

  /** Resolves once everything written so far has left at the line rate. */
  drain(): Promise<void> {
    return this.tx.drained();
  }

  /** Drops bytes received but not yet delivered (e.g. what a reset would lose). */
  discardInput(): void {
    this.rx.discard();
  }
}

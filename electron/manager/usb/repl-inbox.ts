/**
 * What the raw REPL client (raw-repl.ts) has received from the board's serial port and not
 * yet consumed, read by waiting for a pattern or a number of bytes.
 */
import { RawReplClosedError, RawReplTimeoutError } from './raw-repl-errors.js';

/** Bytes received and not yet consumed, with one waiter at a time. */
export class Inbox {
  private data: Buffer = Buffer.alloc(0);
  private closed = false;
  private wake: (() => void) | undefined;
  /** Set by push(): when bytes last arrived (enter() waits for the line to go quiet). */
  lastDataAt = 0;

  push(chunk: Buffer): void {
    this.data = this.data.length === 0 ? chunk : Buffer.concat([this.data, chunk]);
    this.lastDataAt = Date.now();
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  get isClosed(): boolean {
    return this.closed;
  }
  get length(): number {
    return this.data.length;
  }
  peek(): Buffer {
    return this.data;
  }

  take(n: number): Buffer {
    const head = this.data.subarray(0, n);
    this.data = this.data.subarray(n);
    return head;
  }

  discard(): void {
    this.data = Buffer.alloc(0);
  }

  /** Resolves when more bytes arrive (or the port closes), or after `ms`. */
  async next(ms: number): Promise<void> {
    if (this.closed) throw new RawReplClosedError('the serial port closed');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
    this.wake = undefined;
    if (this.closed) throw new RawReplClosedError('the serial port closed');
  }

  /** Waits for `pattern`; returns (and consumes) everything up to and including it. */
  async until(pattern: Buffer, timeoutMs: number, what: string): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.data.indexOf(pattern);
      if (at >= 0) return this.take(at + pattern.length);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new RawReplTimeoutError(
          `no ${what} from the board within ${timeoutMs} ms (received ${JSON.stringify(this.data.subarray(-80).toString('latin1'))})`,
        );
      await this.next(left);
    }
  }

  async bytes(n: number, timeoutMs: number, what: string): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.data.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new RawReplTimeoutError(`no ${what} from the board within ${timeoutMs} ms`);
      await this.next(left);
    }
    return this.take(n);
  }
}

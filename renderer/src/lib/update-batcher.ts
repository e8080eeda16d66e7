/**
 * Collects many small updates and applies them together, at most `perSecond` times a
 * second: a fleet of 10,000 boards sends thousands of events a second, and re-rendering
 * for each would freeze the page. The first update after a quiet spell is applied at once.
 */
export class UpdateBatcher<T> {
  private pending: T[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastFlush = -Infinity;
  private readonly intervalMs: number;

  constructor(
    private readonly apply: (batch: T[]) => void,
    perSecond = 4,
    private readonly now: () => number = () => performance.now(),
    private readonly setTimer: (callback: () => void, ms: number) => ReturnType<typeof setTimeout> = (callback, ms) => setTimeout(callback, ms),
  ) {
    this.intervalMs = 1000 / perSecond;
  }

  push(update: T): void {
    this.pending.push(update);
    if (this.timer !== null) return;
    const wait = Math.max(0, this.lastFlush + this.intervalMs - this.now());
    this.timer = this.setTimer(() => this.flush(), wait);
  }

  /** Applies whatever is pending now (also used before a full re-sync). */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.lastFlush = this.now();
    this.apply(batch);
  }

  /** Forgets pending updates (a re-sync is about to replace everything). */
  clear(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.pending = [];
  }
}

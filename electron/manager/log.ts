/**
 * Logging for library code: modules never print, they call the Logger they were given.
 * The CLI (foreground service) and the Electron shell decide where lines go.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

export const silentLogger: Logger = () => {};

/**
 * Limits how often one source (e.g. one misbehaving board) can log: at most `burst` lines
 * per `windowMs`, then a single "suppressed" note, so nobody can flood the log.
 */
export class LogRateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly burst = 10,
    private readonly windowMs = 60_000,
  ) {}

  allow(source: string, now = Date.now()): 'log' | 'note-suppressed' | 'drop' {
    let window = this.windows.get(source);
    if (!window || now - window.start >= this.windowMs) {
      window = { start: now, count: 0 };
      this.windows.set(source, window);
      if (this.windows.size > 10_000) this.windows.clear();
    }
    window.count++;
    if (window.count <= this.burst) return 'log';
    return window.count === this.burst + 1 ? 'note-suppressed' : 'drop';
  }
}

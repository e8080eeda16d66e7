/** Formatters for what the UI shows: ages, sizes, durations, speeds. Pure functions. */

/** "just now", "3 s ago", "5 min ago", "2 h ago", "4 days ago"; "never" for null. */
export function formatAgo(time: number | null, now: number): string {
  if (time === null) return 'never';
  const seconds = Math.max(0, Math.floor((now - time) / 1000));
  if (seconds < 2) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.floor(hours / 24)} days ago`;
}

/** 512 B, 1.5 KB, 30.2 KB, 4.0 MB (powers of 1024, as MicroPython reports memory). */
export function formatBytes(bytes: number | null): string {
  if (bytes === null || !Number.isFinite(bytes)) return '–';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

/** 850 ms, 2.4 s, 1 min 05 s. */
export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes} min ${String(seconds).padStart(2, '0')} s`;
}

/** Bytes per second as "12.3 KB/s". */
export function formatSpeed(bytesPerSecond: number): string {
  return `${formatBytes(Math.round(bytesPerSecond))}/s`;
}

/** A percentage 0–100 of done/total, clamped; null when total is unknown. */
export function percent(done: number | undefined, total: number | undefined): number | null {
  if (done === undefined || !total) return null;
  return Math.max(0, Math.min(100, Math.round((done / total) * 100)));
}

export function plural(count: number, one: string, many = `${one}s`): string {
  return `${count.toLocaleString('en')} ${count === 1 ? one : many}`;
}

/** Text formatting for the CLI's human-readable output. */
import { escapeControlCharacters } from '../manager/printable-text.js';

export function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h${String(minutes % 60).padStart(2, '0')}m`;
  return `${Math.floor(hours / 24)}d`;
}

/** "12s ago", "3h05m ago", or "never". */
export function formatAgo(timestamp: number | null, now = Date.now()): string {
  return timestamp === null ? 'never' : `${formatDuration(now - timestamp)} ago`;
}

/** A plain text table: columns padded to their widest cell. A cell is one line: its control characters, line breaks too, are escaped. */
export function table(header: string[], rawRows: string[][]): string {
  const rows = rawRows.map((row) => row.map((cell) => escapeControlCharacters(cell)));
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

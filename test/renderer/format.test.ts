import { describe, expect, it } from 'vitest';
import { formatAgo, formatBytes, formatDuration, formatSpeed, percent, plural } from '../../renderer/src/lib/format.js';

describe('formatters', () => {
  it('ages', () => {
    const now = 1_000_000_000;
    expect(formatAgo(null, now)).toBe('never');
    expect(formatAgo(now - 500, now)).toBe('just now');
    expect(formatAgo(now - 3_400, now)).toBe('3 s ago');
    expect(formatAgo(now - 5 * 60_000, now)).toBe('5 min ago');
    expect(formatAgo(now - 3 * 3_600_000, now)).toBe('3 h ago');
    expect(formatAgo(now - 4 * 86_400_000, now)).toBe('4 days ago');
    expect(formatAgo(now + 5_000, now)).toBe('just now');
  });

  it('sizes, durations, speeds, percentages, plurals', () => {
    expect([formatBytes(null), formatBytes(512), formatBytes(1536), formatBytes(30_925), formatBytes(4 * 1024 * 1024)]).toEqual([
      '–',
      '512 B',
      '1.5 KB',
      '30.2 KB',
      '4.0 MB',
    ]);
    expect(formatBytes(300 * 1024)).toBe('300 KB');
    expect([formatDuration(850), formatDuration(2_400), formatDuration(65_000), formatDuration(null)]).toEqual(['850 ms', '2.4 s', '1 min 05 s', '–']);
    expect(formatSpeed(44_000)).toBe('43.0 KB/s');
    expect([percent(1, 3), percent(5, 0), percent(undefined, 5), percent(7, 5)]).toEqual([33, null, null, 100]);
    expect([plural(1, 'board'), plural(10_000, 'board')]).toEqual(['1 board', '10,000 boards']);
  });
});

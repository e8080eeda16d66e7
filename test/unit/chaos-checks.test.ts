/** The chaos run's memory verdict: growth after warm-up is a violation, warm-up is not. */
import { describe, expect, it } from 'vitest';
// A plain script module (scripts/ is not type-checked): imported by a path TypeScript does not follow.
const checks = '../../scripts/chaos-checks.mjs';
const { rssSummary } = (await import(checks)) as { rssSummary: (lifetimes: unknown[]) => { violations: string[] } };

const lifetime = (mbAt: (seconds: number) => number, seconds: number) => ({
  pid: 1,
  samples: Array.from({ length: seconds / 3 + 1 }, (_, index) => ({ t: index * 3_000, mb: mbAt(index * 3) })),
});

describe('chaos memory check', () => {
  it('does not count the first half minute of a manager, when it warms up', () => {
    // Steep at the start, then flat: judged from its start, the first third's median
    // (at 20 s) would be 89 MB against 118 MB.
    const warmsUpThenFlat = lifetime((s) => (s < 30 ? 30 + s * 2.93 : 118), 120);
    expect(rssSummary([warmsUpThenFlat]).violations).toEqual([]);
  });

  it('flags memory that keeps growing after warm-up', () => {
    const leaks = lifetime((s) => 90 + s / 2, 150);
    expect(rssSummary([leaks]).violations).toHaveLength(1);
  });
});

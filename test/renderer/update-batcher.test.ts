import { describe, expect, it } from 'vitest';
import { UpdateBatcher } from '../../renderer/src/lib/update-batcher.js';

describe('update batcher', () => {
  it('applies the first update at once, then at most `perSecond` batches a second', () => {
    let now = 0;
    const timers: Array<{ at: number; run: () => void }> = [];
    const batches: number[][] = [];
    const batcher = new UpdateBatcher<number>(
      (batch) => batches.push(batch),
      4,
      () => now,
      (run, ms) => {
        timers.push({ at: now + ms, run });
        return 0 as unknown as ReturnType<typeof setTimeout>;
      },
    );
    const advance = (to: number) => {
      now = to;
      const due = timers.filter((item) => item.at <= to);
      timers.splice(0, timers.length, ...timers.filter((item) => item.at > to));
      for (const timer of due) timer.run();
    };
    batcher.push(1);
    advance(0);
    expect(batches).toEqual([[1]]);
    for (let index = 2; index <= 1_000; index++) batcher.push(index);
    advance(100);
    expect(batches).toHaveLength(1);
    advance(250);
    expect(batches).toHaveLength(2);
    expect(batches[1]).toHaveLength(999);
    batcher.push(5);
    batcher.clear();
    advance(1_000);
    expect(batches).toHaveLength(2);
  });
});

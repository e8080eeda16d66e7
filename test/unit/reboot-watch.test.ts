import { describe, expect, it } from 'vitest';
import { RebootWatch } from '../../electron/manager/fleet/reboot-watch.js';
import type { BoardEvent } from '../../electron/manager/fleet/fleet.js';

const event = (type: 'board.online' | 'board.offline', id: string) => ({ type, board: { id } }) as unknown as BoardEvent;

describe('reboot watch', () => {
  it('a board is back once it went offline and came online again', async () => {
    const watch = new RebootWatch({ graceMs: () => 60_000, needsReset: () => false });
    const outcome = watch.expect('b1');
    watch.onBoard(event('board.online', 'b1')); // still the old session: not yet
    expect(watch.size).toBe(1);
    watch.onBoard(event('board.offline', 'b1'));
    watch.onBoard(event('board.online', 'b1'));
    expect(await outcome).toEqual({ back: true });
    expect(watch.size).toBe(0);
  });

  it('a board flashed by hand that does not come back is reported with what to do', async () => {
    let now = 0;
    const watch = new RebootWatch({ graceMs: () => 60_000, needsReset: (id) => id === 'latched', now: () => now });
    const latched = watch.expect('latched');
    const plain = watch.expect('plain');
    watch.onBoard(event('board.offline', 'latched'));
    now = 59_000;
    watch.sweep();
    expect(watch.size).toBe(2);
    now = 60_000;
    watch.sweep();
    expect(await latched).toEqual({ back: false, message: expect.stringMatching(/restarted into its bootloader\. Press RESET/) });
    expect(await plain).toEqual({ back: false, message: expect.stringMatching(/did not come back online within 60 s/) });
  });
});

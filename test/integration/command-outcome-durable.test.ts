/**
 * A command is pending or in its board's history, never neither: a manager that dies
 * after withdrawing a command from the queue but before recording why finds it again at
 * its next start (PROTOCOL.md §4.3; what `npm run chaos` could hit when it kills the
 * manager at an expiry).
 */
import { rm } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { FleetStore } from '../../electron/manager/redis/fleet-store.js';
import { startManager } from '../helpers/lab.js';

describe('a withdrawn command whose outcome was never recorded', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('is found again after a restart and ends cancelled, in the history', async () => {
    const first = await startManager({ heartbeatS: 1 });
    const { dataDir, redisPort } = first;
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const [board] = await first.api.call('boards.enrollMany', { names: ['idle'] });
    const { commands } = await first.api.call('commands.send', { boards: 'idle', request: { op: 'exec', code: 'print(1)' }, expireMs: 600_000 });
    const cid = commands[0]!.cid;
    // The first half of a cancellation, as a manager killed right after it leaves it.
    const store = (first.manager.fleet as unknown as { store: FleetStore }).store;
    const eid = String((await store.pendingCommands(board!.id)).get(cid)!.e);
    expect(await store.cancel(board!.id, cid, eid)).toBe('cancelled');
    await first.manager.stop();

    const second = await startManager({ heartbeatS: 1, dataDir, redisPort });
    cleanups.push(() => second.close());
    expect((await second.api.call('commands.get', { cid })).status).toBe('queued');
    expect((await second.api.call('commands.cancel', { cid })).status).toBe('cancelled');
    const history = await second.api.call('boards.history', { board: 'idle' });
    expect(history.find((entry) => entry.cid === cid)).toMatchObject({ status: 'cancelled' });
  });
});

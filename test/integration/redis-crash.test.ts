/**
 * kill -9 of the embedded redis-server in the middle of a 500-command burst: the manager
 * restarts it, everyone reconnects, and every command runs exactly once — checked
 * against the boards' own execution logs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';

describe('redis-server killed during a command burst', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ boards: 5, heartbeatS: 1 });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('keeps a command queued for an offline board across a Redis crash', async () => {
    // Regression: Redis 7.0 dropped the MULTI/EXEC blocks of our functions from the
    // append-only file on load while the default user had no permissions.
    const board = lab.fleet.byName('sim-5')!;
    await board.powerOff();
    const { commands } = await lab.api.call('commands.send', { boards: 'sim-5', request: { op: 'exec', code: 'print("survived")' } });
    const before = (await lab.api.call('status', {})).redis;
    process.kill(before.pid!, 'SIGKILL');
    await waitFor(async () => (await lab.api.call('status', {})).redis.restarts > before.restarts, 10_000, 'redis restarted');
    board.start();
    const [done] = await lab.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 10_000 });
    expect(done!.status).toBe('ok');
    expect(done!.output).toEqual([{ stream: 'stdout', text: 'survived\n' }]);
    await waitFor(async () => (await lab.api.call('status', {})).boards.online === 5, 10_000, 'all boards back online');
  });

  it('restarts Redis and runs every command exactly once', { timeout: 90_000 }, async () => {
    const redisPid = (await lab.api.call('status', {})).redis.pid!;
    const boards = ['sim-1', 'sim-2', 'sim-3', 'sim-4', 'sim-5'];
    const cids: string[] = [];
    let killedAt = -1;
    const sends: Array<Promise<void>> = [];
    for (let i = 0; i < 500; i++) {
      if (i === 150) {
        process.kill(redisPid, 'SIGKILL');
        killedAt = i;
      }
      sends.push(
        lab.api
          .call('commands.send', { boards: boards[i % 5]!, request: { op: 'exec', code: `n = ${i}` } })
          .then(({ commands }) => void cids.push(commands[0]!.cid)),
      );
      // A burst, not one batch: let some commands run before the kill lands.
      if (i % 25 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await Promise.all(sends);
    expect(killedAt).toBe(150);
    expect(cids).toHaveLength(500);

    const results = await lab.api.call('commands.wait', { cids, timeoutMs: 60_000 });
    const statuses = results.reduce<Record<string, number>>((count, view) => ({ ...count, [view.status]: (count[view.status] ?? 0) + 1 }), {});
    expect(statuses).toEqual({ ok: 500 });

    const executed = lab.fleet.boards.flatMap((board) => board.executed);
    const runs = new Map<string, number>();
    for (const cid of executed) runs.set(cid, (runs.get(cid) ?? 0) + 1);
    expect(cids.filter((cid) => runs.get(cid) !== 1)).toEqual([]);

    const status = await lab.api.call('status', {});
    expect(status.redis.pid).not.toBe(redisPid);
    expect(status.redis.restarts).toBeGreaterThanOrEqual(1);
    await waitFor(async () => (await lab.api.call('status', {})).boards.online === 5, 10_000, 'all boards back online');
  });
});

/**
 * Finished commands go into their board's history in batches (history-writer.ts): whoever
 * reads the history sees every command finished so far, none stays pending, and a manager
 * stopped right after a burst of results loses none of them (real redis-server, virtual boards).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import type { FleetStore } from '../../electron/manager/redis/fleet-store.js';
import { startVirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';

type Service = Awaited<ReturnType<typeof startManager>>;
const storeOf = (service: Service) => (service.manager.fleet as unknown as { store: FleetStore }).store;

describe('command history', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function serviceWithBoards(count: number, prefix: string) {
    const service = await startManager({ heartbeatS: 1 });
    cleanups.push(() => rm(service.dataDir, { recursive: true, force: true }));
    const fleet = await startVirtualFleet({ api: service.api, count, prefix, board: { reconnectMinMs: 100, bootDelayMs: 200 } });
    await waitFor(async () => (await service.api.call('status', {})).boards.online === count, 10_000, 'boards online');
    return { service, fleet };
  }

  it('holds a finished command as soon as it has finished, and it is no longer pending', async () => {
    const { service, fleet } = await serviceWithBoards(1, 'hist');
    cleanups.push(async () => {
      await fleet.close();
      await service.manager.stop();
    });
    const { commands } = await service.api.call('commands.send', { boards: 'hist-1', request: { op: 'exec', code: 'print(6 * 7)' } });
    const cid = commands[0]!.cid;
    const [view] = await service.api.call('commands.wait', { cids: [cid], timeoutMs: 10_000 });
    expect(view!.status).toBe('ok');
    // Asked at once: no waiting for the batch to go out.
    const history = await service.api.call('boards.history', { board: 'hist-1' });
    expect(history.find((entry) => entry.cid === cid)).toMatchObject({ status: 'ok', op: 'exec', output: '42\n' });
    expect((await storeOf(service).pendingCommands(fleet.byName('hist-1')!.id)).has(cid)).toBe(false);
  });

  it('keeps output that its length limit cuts inside a character', async () => {
    const { service, fleet } = await serviceWithBoards(1, 'cut');
    cleanups.push(async () => {
      await fleet.close();
      await service.manager.stop();
    });
    // 4,095 characters, then one that JavaScript holds as two: the history's 4,096 end inside it.
    const { commands } = await service.api.call('commands.send', { boards: 'cut-1', request: { op: 'exec', code: "print('a' * 4095 + '\\U0001F600')" } });
    const [view] = await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 10_000 });
    expect(view!.status).toBe('ok');
    const [entry] = await service.api.call('boards.history', { board: 'cut-1' });
    expect(entry).toMatchObject({ cid: view!.cid, status: 'ok', output: 'a'.repeat(4095) + '\uFFFD…' });
  });

  it('loses no history when the manager stops right after a burst of results', async () => {
    const boards = 4;
    const perBoard = 15;
    const first = await serviceWithBoards(boards, 'burst');
    const { service, fleet } = first;
    const cids: string[] = [];
    for (let round = 0; round < perBoard; round++) {
      const { commands } = await service.api.call('commands.send', { boards: 'burst-*', request: { op: 'exec', code: `print(${round})` } });
      cids.push(...commands.map((command) => command.cid));
    }
    const views = await service.manager.fleet.dispatcher.wait(cids, 60_000);
    expect(views.filter((view) => view.status === 'ok')).toHaveLength(boards * perBoard);
    // Stopped in the same turn as the last result arrived: nothing has had time to go out on its own.
    const stopped = service.manager.stop();
    await fleet.close();
    await stopped;

    const second = await startManager({ heartbeatS: 1, dataDir: service.dataDir, redisPort: service.redisPort });
    cleanups.push(() => second.manager.stop());
    const recorded = new Set<string>();
    for (let n = 1; n <= boards; n++) {
      for (const entry of await second.api.call('boards.history', { board: `burst-${n}`, count: 200 })) recorded.add(entry.cid!);
      const id = (await second.api.call('boards.get', { board: `burst-${n}` })).id;
      expect((await storeOf(second).pendingCommands(id)).size).toBe(0);
    }
    expect(cids.filter((cid) => !recorded.has(cid))).toEqual([]);
  });
});

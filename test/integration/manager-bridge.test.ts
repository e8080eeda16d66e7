/**
 * The manager bridge's edges on a real redis-server (manager-bridge.ts): what a standby
 * does with frames it cannot trust or missed, and what the active manager does with
 * requests it must not run. The two managers' halves here are the bridge's own classes,
 * without the rest of a manager.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { startPlainRedis, type PlainRedis } from '../helpers/plain-redis.js';
import { waitFor } from '../helpers/lab.js';
import { createRedisClient, parseRedisUrl } from '../../electron/manager/redis/redis-connection.js';
import { FleetStore } from '../../electron/manager/redis/fleet-store.js';
import { ManagerBridgeStore } from '../../electron/manager/redis/manager-bridge-store.js';
import { ActiveBridge, StandbyBridge } from '../../electron/manager/manager-bridge.js';
import { managerKeys } from '../../electron/manager/redis/keys.js';
import { RequestError } from '../../electron/manager/api/api-errors.js';
import type { ApiEvent, RouteName } from '../../electron/manager/api/contract.js';

const silent = () => undefined;

describe('the manager bridge', () => {
  let redis: PlainRedis;
  let client: Redis;
  let store: ManagerBridgeStore;
  const stops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    redis = await startPlainRedis();
    client = createRedisClient(parseRedisUrl(redis.url()), 'bridge-test');
    const fleetStore = new FleetStore(client);
    await fleetStore.loadFunctions();
    store = new ManagerBridgeStore(client, () => fleetStore.loadFunctions());
  });
  afterEach(async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  });
  afterAll(() => {
    client?.disconnect();
    redis?.kill();
  });

  async function standby(id: string): Promise<{ bridge: StandbyBridge; events: ApiEvent[] }> {
    const events: ApiEvent[] = [];
    const bridge = new StandbyBridge({ store, id, broadcast: (event) => events.push(event), activeName: () => 'test-host, pid 1', log: silent });
    await bridge.start();
    stops.push(() => bridge.stop());
    return { bridge, events };
  }

  async function active(epoch: number, run: (route: RouteName, input: unknown) => Promise<unknown>): Promise<ActiveBridge> {
    await client.set(managerKeys.epoch, String(epoch));
    const superseded: string[] = [];
    const bridge = new ActiveBridge({
      store,
      id: `active-${epoch}`,
      epoch,
      run,
      stage: async () => 'sunused',
      superseded: (reason) => superseded.push(reason),
      log: silent,
    });
    await bridge.start();
    stops.push(() => bridge.stop());
    return bridge;
  }

  it('shows frames in order; a frame it missed (trimmed) or a new epoch makes its clients load everything again', async () => {
    const { events } = await standby('standby-gap');
    await client.set(managerKeys.epoch, '7');
    const frame = (seq: number) => JSON.stringify([{ type: 'board', event: 'updated', seq }]);
    expect(await store.publishEvents(7, 1, frame(1))).toBe(true);
    expect(await store.publishEvents(7, 2, frame(2))).toBe(true);
    await waitFor(() => events.length === 2, 5_000, 'two frames');
    expect(events.map((event) => event.type)).toEqual(['board', 'board']);
    // Frame 3 never reached this standby.
    expect(await store.publishEvents(7, 4, frame(4))).toBe(true);
    await waitFor(() => events.length === 4, 5_000, 'a resync and the frame');
    expect(events.slice(2).map((event) => event.type)).toEqual(['resync', 'board']);
    // Another active manager (epoch 8) starts its own numbering.
    await client.set(managerKeys.epoch, '8');
    expect(await store.publishEvents(8, 1, frame(1))).toBe(true);
    await waitFor(() => events.length === 6, 5_000, 'a resync for the new epoch');
    expect(events.slice(4).map((event) => event.type)).toEqual(['resync', 'board']);
    // A superseded manager (epoch 7) is refused: nothing reaches anyone.
    expect(await store.publishEvents(7, 5, frame(5))).toBe(false);
  });

  it('drops a frame that is not a JSON array of events, and whatever in it is not an event', async () => {
    const { events } = await standby('standby-bad');
    await client.set(managerKeys.epoch, '9');
    await store.publishEvents(9, 1, '{"type":"board"}');
    await store.publishEvents(9, 2, JSON.stringify([null, 42, { type: 7 }, { type: 'job', id: 'j1' }]));
    await waitFor(() => events.length === 1, 5_000, 'the one event');
    expect(events).toEqual([{ type: 'job', id: 'j1' }]);
  });

  it("answers with the route's own error status, refuses routes it does not run for others, and answers once", async () => {
    const runs: string[] = [];
    await active(11, async (route, input) => {
      runs.push(route);
      if (route === 'boards.get') throw new RequestError(404, 'not_found', 'no board named "x"');
      if (route === 'commands.send') return { echoed: (input as { request: { dataBase64: string } }).request.dataBase64.length };
      if (route === 'boards.history') return { long: 'x'.repeat(300_000) };
      return { fine: true };
    });
    const { bridge } = await standby('standby-routes');
    expect(await bridge.forward('boards.list', {})).toEqual({ fine: true });
    await expect(bridge.forward('boards.get', { board: 'x' })).rejects.toMatchObject({ status: 404, code: 'not_found', message: 'no board named "x"' });
    // Routes of the active computer's own (shutdown, USB) are not run for a standby, whatever it sends.
    await expect(bridge.forward('service.shutdown', {})).rejects.toMatchObject({ status: 400, message: /is not answered for another manager/ });
    await expect(bridge.forward('usb.ports', {})).rejects.toMatchObject({ status: 400 });
    // Input is validated again by the active manager.
    await expect(bridge.forward('boards.get', { board: 42 })).rejects.toMatchObject({ status: 400, code: 'bad_request' });
    // Bodies past a stream entry's size travel under keys of their own, both ways, and are not left behind.
    const data = Buffer.alloc(600_000, 7).toString('base64');
    expect(await bridge.forward('commands.send', { boards: 'b', request: { op: 'put', path: '/big.bin', dataBase64: data } })).toEqual({ echoed: data.length });
    expect(await bridge.forward('boards.history', { board: 'b' })).toEqual({ long: 'x'.repeat(300_000) });
    expect(await client.keys('cm:{mgr}:body:*')).toEqual([]);
    expect(runs).toEqual(['boards.list', 'boards.get', 'commands.send', 'boards.history']);
  });

  it('drops a request whose standby stopped waiting, and an upload whose files are not there', async () => {
    const runs: string[] = [];
    const { bridge } = await standby('standby-late');
    // Queued while no manager was active; its deadline passes before one is.
    const late = bridge.forward('boards.list', {}, 300).catch((error: unknown) => error);
    expect(await late).toMatchObject({ status: 503, message: /did not answer within 300 ms/ });
    await active(12, async (route) => {
      runs.push(route);
      return [];
    });
    expect(await bridge.forward('boards.list', {})).toEqual([]);
    expect(runs).toEqual(['boards.list']);
    // An upload job whose files did not come along, and a request whose body expired before it was read: refused, not run.
    const forge = async (id: string, body: string | null) => {
      const fields = [
        'id',
        id,
        'from',
        'nobody-tails',
        'route',
        'jobs.start',
        'deadline',
        String(Date.now() + 10_000),
        ...(body === null ? [] : ['body', body]),
      ];
      await client.xadd(managerKeys.requests, '*', ...fields);
    };
    await forge('forged-1', JSON.stringify({ input: { kind: 'upload', boards: 'b', files: [{ file: 'sAAAAAAAAAAAAAAAA', path: '/a' }] }, files: {} }));
    await forge('forged-2', null);
    const replies = 'cm:{mgr}:replies:nobody-tails';
    await waitFor(async () => (await client.xlen(replies)) === 2, 5_000, 'two answers');
    const answers = ((await client.xrange(replies, '-', '+')) as Array<[string, string[]]>)
      .map(([, fields]) => fields)
      .sort((a, b) => a[1]!.localeCompare(b[1]!));
    expect(answers).toEqual([
      ['id', 'forged-1', 'status', '400', 'body', expect.stringMatching(/a file of the upload was not sent along/)],
      ['id', 'forged-2', 'status', '400', 'body', expect.stringMatching(/the request was gone before the active manager could read it/)],
    ]);
    expect(runs).toEqual(['boards.list']);
  });
});

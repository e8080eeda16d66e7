/**
 * The service's reserved connection slots (redis/slot-reserve.ts) on a real redis-server:
 * spares logged in as the guard's user, refilled when taken or lost, handed to an ioredis
 * client that reconnects while no other connection can get in, and closed on stop.
 */
import net from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { createRedisClient, defaultRetryDelay } from '../../electron/manager/redis/redis-connection.js';
import { parseClientList } from '../../electron/manager/redis/connection-guard.js';
import { SlotReserve, SPARE_CONNECTION_NAME, reservedClientOptions } from '../../electron/manager/redis/slot-reserve.js';
import { startPlainRedis, type PlainRedis } from '../helpers/plain-redis.js';
import { waitFor } from '../helpers/lab.js';

const GUARD = { username: 'cm-guard', password: 'guard-secret' };
const ADMIN = { username: 'admin', password: 'admin-secret' };

describe('reserved connection slots', () => {
  let redis: PlainRedis;
  let admin: RespConnection;
  let reserve: SlotReserve | undefined;
  let client: Redis | undefined;
  const logs: string[] = [];

  /** CLIENT LIST entries with their names (parseClientList leaves names out). */
  const clients = async () =>
    String(await admin.call('CLIENT', 'LIST', 'TYPE', 'normal'))
      .split('\n')
      .flatMap((line) => parseClientList(line).map((entry) => ({ ...entry, name: /(?:^| )name=(\S*)/.exec(line)?.[1] ?? '' })));
  const rejectedConnections = async () => Number(/rejected_connections:(\d+)/.exec(String(await admin.call('INFO', 'stats')))?.[1]);
  /** What Redis says to a new connection before closing it. */
  const refusal = () =>
    new Promise<string>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: redis.port });
      let text = '';
      socket.on('data', (chunk) => (text += chunk.toString()));
      socket.on('error', () => {});
      socket.on('close', () => resolve(text));
    });
  const spares = async () => (await clients()).filter((entry) => entry.name === SPARE_CONNECTION_NAME);
  const newReserve = () => new SlotReserve({ host: '127.0.0.1', port: redis.port, ...GUARD, log: (_level, message) => logs.push(message) });

  beforeAll(async () => {
    redis = await startPlainRedis();
    admin = await RespConnection.connect({ host: '127.0.0.1', port: redis.port });
    await admin.call('AUTH', ADMIN.username, ADMIN.password);
    // The guard's user as the embedded Redis has it (acl.ts): no key, only what a spare and the guard need.
    await admin.call(
      'ACL',
      'SETUSER',
      GUARD.username,
      'on',
      `>${GUARD.password}`,
      'resetchannels',
      '-@all',
      '+ping',
      '+info',
      '+client|setname',
      '+client|list',
    );
  });
  beforeEach(async () => {
    logs.length = 0;
    await admin.call('CONFIG', 'SET', 'maxclients', '100');
  });
  afterEach(async () => {
    client?.disconnect();
    client = undefined;
    await reserve?.stop();
    reserve = undefined;
  });
  afterAll(() => {
    admin?.destroy();
    redis?.kill();
  });

  it("holds its spares open, logged in as the guard's user and named cm-spare", async () => {
    reserve = newReserve();
    reserve.start();
    await reserve.full();
    expect(reserve.available).toBe(3);
    const held = await spares();
    expect(held).toHaveLength(3);
    expect(held.every((entry) => entry.user === GUARD.username)).toBe(true);
    // Clients of another endpoint (an external Redis) never get one.
    expect(reserve.serves('127.0.0.1', redis.port)).toBe(true);
    expect(reserve.serves('127.0.0.1', redis.port + 1)).toBe(false);
    expect(reserve.serves('redis.example', redis.port)).toBe(false);
  });

  it('a taken spare is replaced, and a spare Redis closes is replaced', async () => {
    reserve = newReserve();
    reserve.start();
    await reserve.full();
    const taken = reserve.take();
    expect(taken?.connecting).toBe(false);
    await waitFor(() => reserve!.available === 3, 10_000, 'the reserve refilled after a take');
    // The taken one is still open (its new owner's now) beside three spares.
    expect((await spares()).length).toBe(4);
    taken!.destroy();
    await waitFor(async () => (await spares()).length === 3, 10_000, 'the taken connection gone');

    const [victim] = (await spares()).map((entry) => entry.id);
    expect(Number(await admin.call('CLIENT', 'KILL', 'ID', victim!))).toBe(1);
    await waitFor(
      async () => {
        const ids = (await spares()).map((entry) => entry.id);
        return ids.length === 3 && !ids.includes(victim!) && reserve!.available === 3;
      },
      10_000,
      'the killed spare replaced',
    );
  });

  it('an ioredis client connects over a spare, and reconnects over one while Redis refuses every new connection', async () => {
    reserve = newReserve();
    reserve.start();
    await reserve.full();
    const spareIds = (await spares()).map((entry) => entry.id);
    client = createRedisClient({ host: '127.0.0.1', port: redis.port, ...ADMIN }, 'test-client', reservedClientOptions(reserve, defaultRetryDelay));
    client.on('error', () => {});
    await client.ping();
    const first = (await clients()).find((entry) => entry.name === 'test-client');
    // The spare's connection, now logged in as the client's user and named by ioredis.
    expect(first).toMatchObject({ user: ADMIN.username });
    expect(spareIds).toContain(first!.id);
    await waitFor(() => reserve!.available === 3, 10_000, 'the reserve refilled');

    // One slot fewer than open connections: Redis refuses every new one, even once the client's connection is closed.
    const open = (await clients()).length;
    await admin.call('CONFIG', 'SET', 'maxclients', String(open - 1));
    expect(await refusal()).toMatch(/max number of clients reached/);

    const spareIdsNow = (await spares()).map((entry) => entry.id);
    const refusedBefore = await rejectedConnections();
    expect(Number(await admin.call('CLIENT', 'KILL', 'ID', first!.id))).toBe(1);
    const back = await waitFor(
      async () => (await clients()).find((entry) => entry.name === 'test-client' && entry.id !== first!.id),
      10_000,
      'the client back',
    );
    expect(spareIdsNow).toContain(back.id);
    expect(await client.ping()).toBe('PONG');
    // The reserve tries again (every 50 ms) while refused, and logs that once, not at every try.
    await waitFor(async () => (await rejectedConnections()) >= refusedBefore + 5, 10_000, 'the reserve trying again');
    expect(reserve.available).toBe(2);
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.length).toBeLessThanOrEqual(3);

    // A slot frees: the reserve is full again.
    await admin.call('CONFIG', 'SET', 'maxclients', '100');
    await waitFor(() => reserve!.available === 3, 10_000, 'the reserve full again');
  });

  it('a login Redis refuses (a wrong password) is logged, once, and no spare is held', async () => {
    reserve = new SlotReserve({
      host: '127.0.0.1',
      port: redis.port,
      username: GUARD.username,
      password: 'wrong',
      log: (_level, message) => logs.push(message),
    });
    reserve.start();
    await waitFor(() => logs.some((message) => message.includes('WRONGPASS')), 10_000, 'the refusal logged');
    expect(reserve.available).toBe(0);
    expect(await spares()).toHaveLength(0);
    expect(logs).toHaveLength(1);
  });

  it('stop closes every spare', async () => {
    reserve = newReserve();
    reserve.start();
    await reserve.full();
    await reserve.stop();
    expect(reserve.available).toBe(0);
    expect(reserve.take()).toBeUndefined();
    await waitFor(async () => (await spares()).length === 0, 10_000, 'no spare left');
  });
});

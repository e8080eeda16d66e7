/**
 * Board telemetry in a real Redis (the manager's embedded one): the ring stays 1,920
 * bytes, a new recorder reads what an earlier one wrote, garbage is survived and
 * repaired, boards cannot touch the key, and a removed board's key goes away.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TELEMETRY_BUCKET_MS, TelemetryRecorder } from '../../electron/manager/fleet/telemetry.js';
import { MANAGER_USER } from '../../electron/manager/redis/acl.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import { createRedisClient } from '../../electron/manager/redis/redis-connection.js';
import { TELEMETRY_TTL_MS, TelemetryStore } from '../../electron/manager/redis/telemetry-store.js';
import type { LogLevel } from '../../electron/manager/log.js';
import { startManager } from '../helpers/lab.js';

const MIN = 60_000;
const BUCKET = TELEMETRY_BUCKET_MS;
const T0 = Math.floor(Date.UTC(2025, 5, 1) / BUCKET) * BUCKET;

let service: Awaited<ReturnType<typeof startManager>>;
let redis: Redis;
const clients: Redis[] = [];
const logs: Array<{ level: LogLevel; message: string }> = [];

function recorder(now: () => number): TelemetryRecorder {
  return new TelemetryRecorder({ store: new TelemetryStore(redis), log: (level, message) => logs.push({ level, message }), now });
}

beforeAll(async () => {
  service = await startManager();
  const password = (await readFile(path.join(service.dataDir, 'secrets', 'redis-manager.password'), 'utf8')).trim();
  redis = createRedisClient({ host: '127.0.0.1', port: service.redisPort, username: MANAGER_USER, password }, 'cm-test-telemetry');
  clients.push(redis);
});

afterAll(async () => {
  for (const client of clients) client.disconnect();
  await service?.close();
});

describe('telemetry in Redis', () => {
  it('keeps a 1,920-byte ring that a new recorder reads back', async () => {
    const id = 'tm-restart';
    const key = boardKeys(id).telemetry;
    let now = T0;
    const first = recorder(() => now);
    first.online(id, T0);
    first.sample(id, 30_000, T0 + 1 * MIN);
    first.sample(id, 25_000, T0 + 2 * MIN);
    first.offline(id, T0 + 3 * MIN); // bucket 0: 3 of 6 minutes online
    first.online(id, T0 + BUCKET + 1 * MIN);
    first.sample(id, 28_000, T0 + BUCKET + 1 * MIN);
    now = T0 + BUCKET + 3 * MIN;
    // Nothing is written until a bucket is over (or the recorder stops).
    expect(await redis.exists(key)).toBe(0);
    await first.stop(); // bucket 0, and bucket 1 so far (2 of its 6 minutes online)

    const length = await redis.strlen(key);
    expect(length).toBe(1_920);
    expect(length).toBeLessThanOrEqual(2_048);
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(TELEMETRY_TTL_MS);

    const second = recorder(() => now);
    expect(await second.read(id)).toEqual({
      bucketMs: BUCKET,
      points: [
        { t: T0, memFree: 25_000, onlinePct: 50 },
        // The current bucket: 33 % of 6 minutes stored, over the 3 minutes elapsed.
        { t: T0 + BUCKET, memFree: 28_000, onlinePct: 66 },
      ],
    });
    // The board is still online for the new recorder; the bucket's two halves add up.
    second.online(id, T0 + BUCKET + 3 * MIN);
    second.sample(id, 29_000, T0 + BUCKET + 4 * MIN);
    now = T0 + 2 * BUCKET;
    await second.stop();
    expect(await redis.strlen(key)).toBe(1_920);
    const third = recorder(() => now);
    expect((await third.read(id)).points).toEqual([
      { t: T0, memFree: 25_000, onlinePct: 50 },
      { t: T0 + BUCKET, memFree: 28_000, onlinePct: 83 }, // 2 + 3 of 6 minutes
    ]);
    // A day later every slot is stale.
    expect((await third.read(id, T0 + 241 * BUCKET)).points).toEqual([]);
  });

  it('reads garbage as nothing and replaces it with a full ring on the next write', async () => {
    const id = 'tm-garbage';
    const key = boardKeys(id).telemetry;
    await redis.set(key, 'someone wrote this');
    const now = T0 + 10 * MIN;
    const telemetry = recorder(() => now);
    expect((await telemetry.read(id)).points).toEqual([]);
    telemetry.sample(id, 1_234, T0 + 7 * MIN);
    await telemetry.stop();
    expect(await redis.strlen(key)).toBe(1_920);
    expect((await recorder(() => now).read(id)).points).toEqual([{ t: T0 + BUCKET, memFree: 1_234, onlinePct: 0 }]);

    // Another type entirely: writing still works, nothing throws.
    await redis.del(key);
    await redis.hset(key, 'x', '1');
    expect((await recorder(() => now).read(id)).points).toEqual([]);
    const again = recorder(() => now);
    again.sample(id, 4_321, now);
    await again.stop();
    expect(await redis.type(key)).toBe('string');
    expect(await redis.strlen(key)).toBe(1_920);
    expect(logs.filter((line) => line.level === 'warn').length).toBeGreaterThan(0);
    logs.length = 0;
  });

  it('is out of reach of the boards, and goes when its board is removed', async () => {
    const credentials = await service.api.call('boards.enroll', { name: 'tm-acl' });
    const key = boardKeys(credentials.id).telemetry;
    const now = T0 + 5 * MIN;
    const telemetry = recorder(() => now);
    telemetry.sample(credentials.id, 9_999, now);
    await telemetry.stop();
    expect(await redis.exists(key)).toBe(1);

    const board = createRedisClient(
      { host: '127.0.0.1', port: service.redisPort, username: credentials.user, password: credentials.password },
      'cm-test-board',
      { maxRetriesPerRequest: 0, enableReadyCheck: false },
    );
    clients.push(board);
    await expect(board.get(key)).rejects.toThrow(/NOPERM/);
    await expect(board.setrange(key, 0, 'x')).rejects.toThrow(/NOPERM/);

    await telemetry.forget(credentials.id);
    expect(await redis.exists(key)).toBe(0);
    expect(logs.filter((line) => line.level !== 'debug')).toEqual([]);
  });
});

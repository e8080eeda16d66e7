/** `--redis-url`: the manager uses an existing Redis (here a plain redis-server with an admin user). */
import { startPlainRedis, type PlainRedis } from '../helpers/plain-redis.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { startVirtualFleet, type VirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';

describe('manager on an external Redis', () => {
  let redis: PlainRedis;
  let port: number;
  let service: Awaited<ReturnType<typeof startManager>>;
  let fleet: VirtualFleet;

  beforeAll(async () => {
    redis = await startPlainRedis();
    port = redis.port;
    service = await startManager({ redisUrl: redis.url(), redisPort: undefined });
  });
  afterAll(async () => {
    await fleet?.close();
    await service?.close();
    redis?.kill();
  });

  it('starts no Redis of its own and runs commands through the given one', async () => {
    const status = await service.api.call('status', {});
    expect(status.redis).toMatchObject({ external: true, port, restarts: 0 });
    fleet = await startVirtualFleet({ api: service.api, count: 1, prefix: 'ext', board: { reconnectMinMs: 100 } });
    await waitFor(async () => (await service.api.call('status', {})).boards.online === 1, 5_000, 'board online');
    const { commands } = await service.api.call('commands.send', { boards: 'ext-1', request: { op: 'exec', code: 'print(2**10)' } });
    const [done] = await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 5_000 });
    expect(done!.output).toEqual([{ stream: 'stdout', text: '1024\n' }]);
    const credentials = fleet.boards[0]!.config;
    expect(credentials.port).toBe(port);
  });

  it('turned on the keyspace notifications the uplink needs', async () => {
    const admin = await RespConnection.connect({ host: '127.0.0.1', port });
    await admin.call('AUTH', 'admin', 'admin-secret');
    const [, flags] = (await admin.call('CONFIG', 'GET', 'notify-keyspace-events')) as Buffer[];
    admin.destroy();
    expect(flags!.toString()).toMatch(/K/);
    expect(flags!.toString()).toMatch(/t|A/);
  });
});

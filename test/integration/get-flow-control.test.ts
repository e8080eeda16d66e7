/**
 * Flow control of a `get` (PROTOCOL.md §7.3): a manager that falls behind slows the board
 * down instead of losing file data to the uplink's MAXLEN trimming. The manager reaches
 * its (external) Redis through a fault proxy that holds back its uplink reads.
 */
import { createHash, randomBytes } from 'node:crypto';
import { startPlainRedis, type PlainRedis } from '../helpers/plain-redis.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVirtualFleet, type VirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';
import { RedisFaultProxy } from '../lab/redis-fault-proxy.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('a get while the manager lags', () => {
  let redis: PlainRedis;
  let proxy: RedisFaultProxy;
  let service: Awaited<ReturnType<typeof startManager>>;
  let fleet: VirtualFleet;

  beforeAll(async () => {
    redis = await startPlainRedis();
    const port = redis.port;
    proxy = await RedisFaultProxy.start({ port });
    service = await startManager({ redisUrl: redis.url(proxy.port), redisPort: undefined });
    // The board talks to Redis directly; only the manager's link is slow.
    fleet = await startVirtualFleet({ api: service.api, count: 1, prefix: 'lag', board: { reconnectMinMs: 100, port } });
    await waitFor(async () => (await service.api.call('status', {})).boards.online === 1, 10_000, 'board online');
  });
  afterAll(async () => {
    await fleet?.close();
    await service?.close();
    await proxy?.close();
    redis?.kill();
  });

  it('a 5 MiB file (1,280 entries, more than the uplink keeps) arrives whole', async () => {
    const data = randomBytes(5 * 1024 * 1024);
    const put = await service.api.call('commands.send', { boards: 'lag-1', request: { op: 'put', path: '/big.bin', dataBase64: data.toString('base64') } });
    expect((await service.api.call('commands.wait', { cids: [put.commands[0]!.cid], timeoutMs: 60_000 }))[0]!.status).toBe('ok');
    // The manager's next uplink read is answered 5 s late: meanwhile the board may only
    // run ahead by its window.
    // (The manager reads uplinks through the cm_uplink_read function.)
    const isUplinkRead = ({ request }: { request: string[] }) =>
      ['XREAD', 'FCALL'].includes(request[0]?.toUpperCase() ?? '') && request.some((arg) => arg.endsWith(':up'));
    const lag = proxy.delayReply(isUplinkRead, 5_000);
    const get = await service.api.call('commands.send', { boards: 'lag-1', request: { op: 'get', path: '/big.bin' } });
    await lag.hit;
    const [done] = await service.api.call('commands.wait', { cids: [get.commands[0]!.cid], timeoutMs: 60_000 });
    expect([done!.status, done!.error]).toEqual(['ok', null]);
    const file = await service.api.call('commands.file', { cid: done!.cid });
    expect(sha256(Buffer.from(file.dataBase64, 'base64'))).toBe(sha256(data));
  }, 120_000);
});

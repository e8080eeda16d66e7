/**
 * The MicroPython client keeps the result of a command whose acknowledgement was lost.
 * Found by `npm run chaos`: the manager was killed (its Redis with it) just as a board
 * sent the result of an exec; the board ran the code, but the result never arrived and
 * the board never took another command, while it kept reconnecting and saying hello.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startManager, waitFor } from '../helpers/lab.js';
import { RedisFaultProxy } from '../lab/redis-fault-proxy.js';
import { startMicroPythonFleet, type MicroPythonFleet } from '../../electron/manager/virtual/micropython-fleet.js';

describe('MicroPython client: the link drops as a result goes out', () => {
  let service: Awaited<ReturnType<typeof startManager>>;
  let proxy: RedisFaultProxy;
  let fleet: MicroPythonFleet;

  beforeAll(async () => {
    service = await startManager({ heartbeatS: 1 });
    proxy = await RedisFaultProxy.start({ port: service.redisPort });
    fleet = await startMicroPythonFleet({
      api: service.api,
      count: 1,
      prefix: 'cut',
      root: path.join(service.dataDir, 'boards'),
      server: { host: '127.0.0.1', port: proxy.port },
    });
    await waitFor(async () => (await service.api.call('status', {})).boards.online === 1, 30_000, 'the board online');
  });
  afterAll(async () => {
    await fleet?.close();
    await proxy?.close();
    await service?.close();
  });

  it('sends the result again after reconnecting, and takes the next command', async () => {
    // Silent code: the result is the first thing the board sends after running it.
    const {
      commands: [sent],
    } = await service.api.call('commands.send', { boards: 'cut-1', request: { op: 'exec', code: 'x = 6 * 7' } });
    const isResult = ({ request }: { request: string[] }) => request[0] === 'XADD' && request.includes('res') && request.includes(sent!.cid);
    const lost = proxy.dropReply(isResult);
    await lost.hit;
    const [done] = await service.api.call('commands.wait', { cids: [sent!.cid], timeoutMs: 30_000 });
    expect(done!.status).toBe('ok');
    const {
      commands: [next],
    } = await service.api.call('commands.send', { boards: 'cut-1', request: { op: 'exec', code: 'print(x)' } });
    const [answer] = await service.api.call('commands.wait', { cids: [next!.cid], timeoutMs: 30_000 });
    expect([answer!.status, answer!.output.map((chunk) => chunk.text).join('')]).toEqual(['ok', '42\n']);
  });
});

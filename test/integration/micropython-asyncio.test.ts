/**
 * The client as an asyncio task beside the user's own asyncio program (cm_async.task):
 * the board stays reachable while the user's program keeps running.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { LAB_WIFI, provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';

const USER_MAIN = `import asyncio
import cm_async

async def blink():
    n = 0
    while True:
        n += 1
        f = open('/ticks.txt', 'w')
        f.write(str(n))
        f.close()
        await asyncio.sleep_ms(50)

async def main():
    asyncio.create_task(cm_async.task())
    await blink()

asyncio.run(main())
`;

describe('MicroPython client beside a user asyncio program', () => {
  let service: Awaited<ReturnType<typeof startManager>>;
  let board: MicroPythonBoard;
  let folder: string;

  beforeAll(async () => {
    service = await startManager({ heartbeatS: 1 });
    const [credentials] = await service.api.call('boards.enrollMany', { names: ['async-1'] });
    folder = path.join(service.dataDir, 'boards', 'async-1');
    await provisionFolder(folder, credentials!, { host: '127.0.0.1', port: service.redisPort });
    await writeFile(path.join(folder, 'main.py'), USER_MAIN); // the user's program replaces main.py
    // No firmware module to step: the lab runs main.py as a board would.
    board = new MicroPythonBoard({ folder, wifi: LAB_WIFI, firmwareModule: 'not_stepped_by_the_lab' });
    await board.start();
  });
  afterAll(async () => {
    await board?.powerOff();
    await service?.close();
  });

  const ticks = async () => Number(await readFile(path.join(folder, 'ticks.txt'), 'utf8').catch(() => '0'));

  it('comes online and runs commands while the user program keeps ticking', async () => {
    await waitFor(async () => (await service.api.call('boards.get', { board: 'async-1' })).online, 20_000, 'online');
    const before = await ticks();
    const { commands } = await service.api.call('commands.send', { boards: 'async-1', request: { op: 'exec', code: 'print(6*7)' } });
    const [done] = await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 10_000 });
    expect([done!.status, done!.output[0]?.text]).toEqual(['ok', '42\n']);
    await waitFor(async () => (await ticks()) > before + 3, 5_000, 'the user program keeps running');
  });
});

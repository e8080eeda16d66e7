/**
 * A simulated MicroPython board reports like the ESP8266 it stands for, through the
 * unchanged client and the service: platform `esp8266`, `os.uname()` as the esp8266 port
 * answers it, free memory out of its 36 KB heap (not the WebAssembly port's 128 MiB);
 * and an upload that runs it out of memory ends as ENOMEM with a hint, the board still
 * running (not "lost: board restarted").
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiCommandRequest, CommandView } from '../../electron/manager/api/contract.js';
import { MACROS } from '../../electron/cli/board-macro-verb.js';
import { startMicroPythonFleet, type MicroPythonFleet } from '../../electron/manager/virtual/micropython-fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';

const HEAP = 36 * 1024;
const HOLD_ALL_BUT = (bytes: number) => `import gc
gc.collect()
hold = [None] * 200
i = 0
while gc.mem_free() > ${bytes} and i < 200:
    hold[i] = bytearray(200)
    i += 1`;

describe('a simulated MicroPython board reports as an ESP8266', () => {
  let service: Awaited<ReturnType<typeof startManager>>;
  let fleet: MicroPythonFleet;

  const run = async (board: string, request: ApiCommandRequest): Promise<CommandView> => {
    const { commands } = await service.api.call('commands.send', { boards: board, request });
    return (await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 20_000 }))[0]!;
  };
  const text = (view: CommandView) => view.output.map((chunk) => chunk.text).join('');

  beforeAll(async () => {
    service = await startManager({ heartbeatS: 1 });
    fleet = await startMicroPythonFleet({
      api: service.api,
      count: 2,
      prefix: 'esp',
      root: path.join(service.dataDir, 'boards'),
      server: { host: '127.0.0.1', port: service.redisPort },
      board: { heapBytes: HEAP },
    });
    await waitFor(async () => (await service.api.call('status', {})).boards.online === 2, 20_000, 'boards online');
  });
  afterAll(async () => {
    await fleet?.close();
    await service?.close();
  });

  it('answers the uname and mem_free macros as the esp8266 port does', async () => {
    const uname = await run('esp-1', MACROS.uname!.request(undefined));
    expect(uname.status).toBe('ok');
    expect(text(uname)).toMatch(
      /^\(sysname='esp8266', nodename='esp8266', release='2\.2\.0-dev\(9422289\)', version='v1\.27\.0 on \d{4}-\d\d-\d\d', machine='ESP module with ESP8266'\)\n$/,
    );
    const fields = await run('esp-1', { op: 'exec', code: 'import os\nu = os.uname()\nprint(u.sysname, u[4], len(u))\nimport sys\nprint(sys.platform)' });
    expect(text(fields)).toBe('esp8266 ESP module with ESP8266 5\nesp8266\n');

    const memFree = await run('esp-1', MACROS.mem_free!.request(undefined));
    const free = Number(text(memFree));
    expect(free).toBeGreaterThan(10_000);
    expect(free).toBeLessThan(HEAP);
    // As on a board: free and allocated make up the heap.
    const sum = await run('esp-1', { op: 'exec', code: 'import gc\ngc.collect()\nprint(gc.mem_free() + gc.mem_alloc())' });
    expect(Number(text(sum))).toBe((await fleet.byName('esp-1')!.board.heap()).total);
  });

  it('says esp8266 in its hello and reports free memory within its heap', async () => {
    const board = await service.api.call('boards.get', { board: 'esp-2' });
    expect(board.platform).toBe('esp8266');
    // Free memory comes with the heartbeats.
    const reported = await waitFor(async () => (await service.api.call('boards.get', { board: 'esp-2' })).memFree, 10_000, 'free memory reported');
    expect(reported).toBeGreaterThan(10_000);
    expect(reported).toBeLessThan(HEAP);
    const info = await run('esp-2', { op: 'info' });
    expect(info.result).toMatchObject({ p: 'esp8266' });
    expect((info.result as { mf: number }).mf).toBeLessThan(HEAP);
  });

  it('answers an upload that runs it out of memory with ENOMEM and a hint, and keeps running', async () => {
    const simulated = fleet.byName('esp-2')!;
    const bootBefore = (await run('esp-2', { op: 'info' })).result as { boot: string };
    // The user's program holds all but a few KB (in small pieces: the free heap is
    // fragmented): too little for the client's file code.
    const held = await run('esp-2', { op: 'exec', code: HOLD_ALL_BUT(3000) });
    expect(held.status).toBe('ok');
    const data = randomBytes(20 * 1024).toString('base64');
    const put = await run('esp-2', { op: 'put', path: '/data/big.bin', dataBase64: data });
    expect([put.status, put.errorCode]).toEqual(['error', 'ENOMEM']);
    expect(put.error).toMatch(/^MemoryError.*; the board ran out of memory: upload smaller files, or free memory on the board/);
    // Still the same boot, still online, and the upload works once the memory is free.
    expect(simulated.board.resets).toBe(0);
    expect((await service.api.call('boards.get', { board: 'esp-2' })).online).toBe(true);
    expect((await run('esp-2', { op: 'exec', code: 'hold = None' })).status).toBe('ok');
    const again = await run('esp-2', { op: 'put', path: '/data/big.bin', dataBase64: data });
    expect(again.status).toBe('ok');
    expect(((await run('esp-2', { op: 'info' })).result as { boot: string }).boot).toBe(bootBefore.boot);
  });
});

/**
 * The MicroPython client's memory budget and resilience, measured in the board lab:
 * held heap after start on a 36 KB board, no growth over 1,000 commands on a 40 KB board,
 * 50 queued uploads on a 36 KB board, a MemoryError in user code survived, and a Redis restart under a running board.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiCommandRequest } from '../../electron/manager/api/contract.js';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { LAB_WIFI, provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';

type Service = Awaited<ReturnType<typeof startManager>>;

/** Heap in use on a lab board with the same shims but no firmware: the baseline. */
async function baselineUsed(heapBytes: number): Promise<number> {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-baseline-'));
  await writeFile(path.join(folder, 'main.py'), '');
  const board = new MicroPythonBoard({ folder, heapBytes, firmwareModule: 'no_firmware_here' });
  await board.start();
  const { used } = await board.heap();
  await board.powerOff();
  await rm(folder, { recursive: true, force: true });
  return used;
}

async function bootBoard(service: Service, name: string, heapBytes: number): Promise<MicroPythonBoard> {
  const [credentials] = await service.api.call('boards.enrollMany', { names: [name], rotate: true });
  const folder = path.join(service.dataDir, 'boards', name);
  await provisionFolder(folder, credentials!, { host: '127.0.0.1', port: service.redisPort });
  const board = new MicroPythonBoard({ folder, heapBytes, wifi: LAB_WIFI, label: name });
  await board.start();
  await waitFor(async () => (await service.api.call('boards.get', { board: name })).online, 20_000, `${name} online`);
  return board;
}

async function exec(service: Service, board: string, code: string) {
  const { commands } = await service.api.call('commands.send', { boards: board, request: { op: 'exec', code } });
  return (await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 20_000 }))[0]!;
}

describe('MicroPython client memory (lab)', () => {
  let service: Service;
  const boards: MicroPythonBoard[] = [];

  beforeAll(async () => {
    service = await startManager({ heartbeatS: 1 });
  });
  afterAll(async () => {
    await Promise.all(boards.map((board) => board.powerOff()));
    await service?.close();
  });

  it('holds at most 8 KB of heap after it has started (36 KB board)', async () => {
    const base = await baselineUsed(36 * 1024);
    const board = await bootBoard(service, 'mem-36k', 36 * 1024);
    boards.push(board);
    await new Promise((resolve) => setTimeout(resolve, 300)); // connected, waiting for work
    const heap = await board.heap();
    const held = heap.used - base;
    console.log(`[memory] 36 KB board: heap total ${heap.total} B, held by the client after start ${held} B, free ${heap.free} B`);
    expect(heap.total).toBeLessThanOrEqual(36 * 1024);
    expect(held).toBeLessThanOrEqual(8 * 1024);
  });

  it('runs 1,000 commands on a 40 KB board without its held memory growing by more than 1 KB', { timeout: 120_000 }, async () => {
    const board = await bootBoard(service, 'mem-40k', 40 * 1024);
    boards.push(board);
    await exec(service, 'mem-40k', 'print(1)'); // the first exec creates the user namespace
    const before = await board.heap();
    const cids: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const { commands } = await service.api.call('commands.send', { boards: 'mem-40k', request: { op: 'exec', code: 'print(1)' } });
      cids.push(commands[0]!.cid);
    }
    const results = await service.api.call('commands.wait', { cids, timeoutMs: 100_000 });
    expect(results.filter((view) => view.status === 'ok' && view.output[0]?.text === '1\n')).toHaveLength(1000);
    const after = await board.heap();
    console.log(`[memory] 40 KB board: held before ${before.used} B, after 1,000 execs ${after.used} B; peak in a step ${after.peakUsed} B`);
    expect(after.used - before.used).toBeLessThanOrEqual(1024);
    expect(board.resets).toBe(0);
  });

  it('takes 50 small uploads queued at once into one folder and removes it (36 KB board), its held memory not growing', { timeout: 120_000 }, async () => {
    const board = await bootBoard(service, 'mem-put', 36 * 1024);
    boards.push(board);
    const send = async (request: ApiCommandRequest) => (await service.api.call('commands.send', { boards: 'mem-put', request })).commands[0]!.cid;
    // The first file command interns the names of the client's file code for good.
    await service.api.call('commands.wait', { cids: [await send({ op: 'put', path: '/first', dataBase64: '' })], timeoutMs: 20_000 });
    const before = await board.heap();
    // Queued together, each put is claimed in the step right after the previous one ended.
    const names = Array.from({ length: 50 }, (_, index) => `${String(index).padStart(3, '0')}${'n'.repeat(147)}`);
    const cids: string[] = [];
    for (const name of names) cids.push(await send({ op: 'put', path: `/many/${name}`, dataBase64: '' }));
    const results = await service.api.call('commands.wait', { cids, timeoutMs: 100_000 });
    expect(results.map((view) => view.error ?? view.status)).toEqual(names.map(() => 'ok'));
    const after = await board.heap();
    console.log(`[memory] 36 KB board: held before ${before.used} B, after 50 puts ${after.used} B; peak in a step ${after.peakUsed} B`);
    expect(after.used - before.used).toBeLessThanOrEqual(1024);
    const count = await exec(service, 'mem-put', 'import os\nprint(len(os.listdir("/many")))');
    expect(count.output[0]?.text).toBe('50\n');
    // Removing the folder takes its entries one at a time: their names need not fit in memory.
    const [removed] = await service.api.call('commands.wait', { cids: [await send({ op: 'rm', path: '/many', recursive: true })], timeoutMs: 20_000 });
    expect(removed!.error ?? removed!.status).toBe('ok');
    expect(board.resets).toBe(0);
  });

  it('survives a user command that raises MemoryError', async () => {
    const failed = await exec(service, 'mem-40k', 'big = bytearray(60000)');
    expect([failed.status, failed.errorCode]).toEqual(['error', 'ENOMEM']);
    const raised = await exec(service, 'mem-40k', 'raise MemoryError("out of cheese")');
    expect([raised.status, raised.errorCode, raised.error]).toEqual(['error', 'ENOMEM', 'MemoryError: out of cheese']);
    const after = await exec(service, 'mem-40k', 'print("still here")');
    expect(after.output).toEqual([{ stream: 'stdout', text: 'still here\n' }]);
  });

  it('reconnects after Redis is restarted under it, and the next command works', async () => {
    const status = await service.api.call('status', {});
    process.kill(status.redis.pid!, 'SIGKILL');
    await waitFor(async () => (await service.api.call('status', {})).redis.restarts > status.redis.restarts, 10_000, 'redis restarted');
    const after = await exec(service, 'mem-36k', 'print(6*7)');
    expect([after.status, after.output[0]?.text]).toEqual(['ok', '42\n']);
  });
});

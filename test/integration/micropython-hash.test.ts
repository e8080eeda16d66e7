/**
 * The MicroPython client's `hash` (PROTOCOL.md §7.4) on a 36 KB lab board: the most a
 * command may ask (32 paths, 4 KiB of JSON) is answered without running out of memory and
 * without the client holding more memory afterwards; a malformed `pl`, which the manager
 * never sends, is refused with EINVAL by the board itself.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiCommandRequest } from '../../electron/manager/api/contract.js';
import { MAX_HASH_LIST_BYTES } from '../../electron/manager/fleet/command-ops.js';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { LAB_WIFI, provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';

type Service = Awaited<ReturnType<typeof startManager>>;

describe('MicroPython client: hash (lab boards)', () => {
  let service: Service;
  const boards: MicroPythonBoard[] = [];

  const run = async (name: string, request: ApiCommandRequest) => {
    const { commands } = await service.api.call('commands.send', { boards: name, request });
    return (await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 30_000 }))[0]!;
  };

  async function bootBoard(name: string, heapBytes: number): Promise<MicroPythonBoard> {
    const [credentials] = await service.api.call('boards.enrollMany', { names: [name], rotate: true });
    const folder = path.join(service.dataDir, 'boards', name);
    await provisionFolder(folder, credentials!, { host: '127.0.0.1', port: service.redisPort });
    const board = new MicroPythonBoard({ folder, heapBytes, wifi: LAB_WIFI, label: name });
    boards.push(board);
    await board.start();
    await waitFor(async () => (await service.api.call('boards.get', { board: name })).online, 20_000, `${name} online`);
    return board;
  }

  beforeAll(async () => {
    service = await startManager({ heartbeatS: 1 });
  });
  afterAll(async () => {
    await Promise.all(boards.map((board) => board.powerOff()));
    await service?.close();
  });

  it('answers the largest list the manager sends (32 paths, 4 KiB of JSON), its held memory not growing', { timeout: 120_000 }, async () => {
    const board = await bootBoard('hash-36k', 36 * 1024);
    const send = (request: ApiCommandRequest) => run('hash-36k', request);
    // 32 paths of 124 bytes: 4,065 bytes of JSON. Half exist (2 KB each: two read steps), half do not.
    const paths = Array.from({ length: 32 }, (_, index) => `/h/${String(index).padStart(2, '0')}${'n'.repeat(119)}`);
    expect(Buffer.byteLength(JSON.stringify(paths))).toBeLessThanOrEqual(MAX_HASH_LIST_BYTES);
    const content = (index: number) => Buffer.alloc(2048, index);
    for (let index = 0; index < 32; index += 2) {
      expect((await send({ op: 'put', path: paths[index]!, dataBase64: content(index).toString('base64') })).error).toBeNull();
    }
    // The first hash interns the names of its code for good.
    expect((await send({ op: 'hash', paths: paths.slice(0, 1) })).status).toBe('ok');
    const before = await board.heap();
    const done = await send({ op: 'hash', paths });
    const after = await board.heap();
    console.log(`[memory] 36 KB board: held before ${before.used} B, after hashing 32 paths (4 KiB) ${after.used} B; peak in a step ${after.peakUsed} B`);
    expect([done.status, done.error]).toEqual(['ok', null]);
    expect(done.result).toEqual(
      Object.fromEntries(paths.map((path, index) => [path, index % 2 ? null : createHash('sha256').update(content(index)).digest('hex')])),
    );
    expect(after.used - before.used).toBeLessThanOrEqual(1024);
    expect(board.resets).toBe(0);
  });

  it('refuses a malformed path list with EINVAL', async () => {
    // The manager refuses these before queueing, so the client's own checks are driven
    // through its entry point for operations, as a foreign sender's entry would reach it;
    // from user code, whose one step the lab cannot collect garbage in: a larger board.
    await bootBoard('hash-96k', 96 * 1024);
    const malformed = [
      '',
      'not json',
      '"/a.py"',
      '[]',
      '[1]',
      JSON.stringify(['relative.py']),
      JSON.stringify(['/ok.py', '/a/../b.py']),
      JSON.stringify(Array.from({ length: 33 }, (_, index) => `/${index}.py`)),
    ];
    const code = [
      'import cm_ops',
      'from cm import Fail',
      'def hash(pl):',
      '    g = cm_ops.run(None, b"hash", {b"pl": pl})',
      '    try:',
      '        while True:',
      '            next(g)',
      '    except StopIteration as r:',
      '        return bytes(r.value).decode()',
      '    except Fail as e:',
      '        return e.args[0].decode()',
      `for pl in ${JSON.stringify(malformed)}:`,
      '    print(hash(pl.encode()))',
      'print(hash(b\'["/missing.py"]\'))',
    ].join('\n');
    const done = await run('hash-96k', { op: 'exec', code });
    expect([done.status, done.error]).toEqual(['ok', null]);
    const lines = done.output.map((chunk) => chunk.text).join('');
    expect(lines).toBe(`${malformed.map(() => 'EINVAL\n').join('')}{"/missing.py":null}\n`);
  });
});

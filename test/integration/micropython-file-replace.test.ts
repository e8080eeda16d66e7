/**
 * The MicroPython client never loses a file it replaces (PROTOCOL.md §7.2), on a lab board
 * whose filesystem area holds FAT (formatted by an older MicroPython release): there an
 * os.rename onto an existing file removes the destination first, then renames. The power
 * is cut right after each file change of a `put`, an `mv` and a configuration save; after
 * the board has started again the file holds its old content or its new one, and nothing
 * of the replacement is left behind.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MicroPythonBoard, type BoardResetReason } from '../../electron/manager/virtual/micropython-board.js';
import { labUniqueId, MemoryBoardFlash } from '../../electron/manager/virtual/micropython-board-flash.js';
import { LAB_WIFI, provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import type { ApiCommandRequest } from '../../electron/manager/api/contract.js';
import { startManager, waitFor } from '../helpers/lab.js';

type Service = Awaited<ReturnType<typeof startManager>>;
const NAME = 'fat-board';

describe('MicroPython client: a reset in the middle of a file replacement (FAT lab board)', () => {
  let service: Service;
  let board: MicroPythonBoard;
  let folder: string;
  const resets: BoardResetReason[] = [];
  let boots = 0;
  /** What the board printed to stderr since the last power cut (a traceback if its client could not start). */
  let stderr = '';

  async function send(request: ApiCommandRequest) {
    const { commands } = await service.api.call('commands.send', { boards: NAME, request });
    return (await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 30_000 }))[0]!;
  }

  async function online(): Promise<void> {
    await waitFor(async () => (await service.api.call('boards.get', { board: NAME })).online, 30_000, `${NAME} online`);
  }

  /** Runs `request` with the power cut after the `count`-th change of a path beginning with `prefix`; waits until the board is back. */
  async function cutDuring(request: ApiCommandRequest, prefix: string, count: number): Promise<void> {
    const before = resets.length;
    const bootsBefore = boots;
    await board.cutPowerAfter({ path: prefix, count });
    stderr = '';
    const { commands } = await service.api.call('commands.send', { boards: NAME, request });
    await waitFor(() => resets.length > before, 30_000, `a power cut during ${request.op} (change ${count})`);
    // Booted: the client started again; halted at the REPL: it could not (its traceback on stderr).
    await waitFor(() => boots > bootsBefore || board.mode === 'idle', 30_000, 'the board booted again');
    expect(board.mode, `the client did not start again after the power cut:\n${stderr}`).toBe('firmware');
    const result = (await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 30_000 }))[0]!;
    expect(result.status).not.toBe('ok'); // the board restarted while it ran
    expect(resets.slice(before)).toEqual(['power-cut']);
    await online();
  }

  /** Files left in a board folder, without the client's own. */
  async function leftovers(dir: string): Promise<string[]> {
    return (await readdir(path.join(folder, dir))).filter((name) => /\.(part|tmp|cm-old)$/.test(name) || name === 'cm_journal').sort();
  }

  beforeAll(async () => {
    service = await startManager({ heartbeatS: 1 });
    const [credentials] = await service.api.call('boards.enrollMany', { names: [NAME], rotate: true });
    folder = path.join(service.dataDir, 'boards', NAME);
    await provisionFolder(folder, credentials!, { host: '127.0.0.1', port: service.redisPort });
    board = new MicroPythonBoard({
      folder,
      wifi: LAB_WIFI,
      label: NAME,
      timing: 'fast',
      flash: new MemoryBoardFlash(labUniqueId(folder), 'fat'),
    });
    board.on('reset', (reason) => resets.push(reason));
    board.on('boot', () => boots++);
    board.on('stderr', (text) => {
      stderr += text;
    });
    await board.start();
    await online();
  }, 60_000);

  afterAll(async () => {
    await board?.powerOff();
    await service?.close();
  });

  it('put: old or new content after a reset at any step, never no file', { timeout: 180_000 }, async () => {
    const seen: string[] = [];
    for (const count of [1, 2, 3]) {
      const old = `old content ${count}\n`;
      const next = `new content ${count}, longer than the old\n`;
      expect((await send({ op: 'put', path: '/data/app.py', dataBase64: Buffer.from(old).toString('base64') })).status).toBe('ok');
      await cutDuring({ op: 'put', path: '/data/app.py', dataBase64: Buffer.from(next).toString('base64') }, '/data/app.py', count);
      const content = await readFile(path.join(folder, 'data', 'app.py'), 'utf8').catch(() => '(missing)');
      expect([old, next], `after a power cut at change ${count}`).toContain(content);
      seen.push(content === old ? 'old' : 'new');
      expect(await leftovers('data')).toEqual([]);
      expect(await leftovers('.')).toEqual([]);
    }
    // The cut fell before the new file was in place, then after.
    expect(seen).toEqual(['old', 'new', 'new']);
  });

  it('mv onto an existing file: the destination keeps one of the two files, the other stays where it was', { timeout: 120_000 }, async () => {
    for (const count of [1, 2]) {
      expect((await send({ op: 'put', path: '/b.txt', dataBase64: Buffer.from('the old b\n').toString('base64') })).status).toBe('ok');
      expect((await send({ op: 'put', path: '/a.txt', dataBase64: Buffer.from('the new a\n').toString('base64') })).status).toBe('ok');
      await cutDuring({ op: 'mv', path: '/a.txt', to: '/b.txt' }, '/b.txt', count);
      const b = await readFile(path.join(folder, 'b.txt'), 'utf8').catch(() => '(missing)');
      const a = await readFile(path.join(folder, 'a.txt'), 'utf8').catch(() => '(missing)');
      // Before the move took effect: both as they were; after: the new a in b's place.
      expect(
        [
          ['the old b\n', 'the new a\n'],
          ['the new a\n', '(missing)'],
        ],
        `after a power cut at change ${count}`,
      ).toContainEqual([b, a]);
      expect(await leftovers('.')).toEqual([]);
    }
  });

  it('a reset while the board saves its configuration leaves it a configuration to start with', { timeout: 60_000 }, async () => {
    expect((await send({ op: 'cfg_set', key: 'note', value: 'before' })).status).toBe('ok');
    await cutDuring({ op: 'cfg_set', key: 'note', value: 'after' }, '/cm_config.json', 1);
    const settings = await send({ op: 'cfg_get' });
    expect(settings.status).toBe('ok');
    expect(['before', 'after']).toContain((settings.result as { note: string }).note);
    expect(await leftovers('.')).toEqual([]);
  });
});

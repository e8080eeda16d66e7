/**
 * The reference board's file systems never lose a file they move or replace (PROTOCOL.md
 * §7.2, §7.4): a move that cannot happen leaves both names as they were, in memory and in
 * a host folder alike.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HostFolderFs, MemoryFs, type BoardFs } from '../../electron/manager/virtual/board-fs.js';

const folders: string[] = [];
afterEach(async () => {
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

const kinds: Array<[string, () => Promise<BoardFs>]> = [
  ['in memory', async () => new MemoryFs()],
  [
    'in a host folder',
    async () => {
      const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-board-fs-'));
      folders.push(folder);
      return new HostFolderFs(folder);
    },
  ],
];

describe.each(kinds)('board file system %s: rename', (_kind, make) => {
  it('replaces an existing file', async () => {
    const fs = await make();
    await fs.writeFile('/a.txt', Buffer.from('new'));
    await fs.writeFile('/b.txt', Buffer.from('old'));
    await fs.rename('/a.txt', '/b.txt');
    expect((await fs.readFile('/b.txt')).toString()).toBe('new');
    await expect(fs.stat('/a.txt')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('into a missing directory: ENOENT, and the file stays where it was', async () => {
    const fs = await make();
    await fs.writeFile('/a.txt', Buffer.from('keep me'));
    await expect(fs.rename('/a.txt', '/missing/b.txt')).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await fs.readFile('/a.txt')).toString()).toBe('keep me');
  });

  it('onto a directory: refused, and the file stays where it was', async () => {
    const fs = await make();
    await fs.writeFile('/a.txt', Buffer.from('keep me'));
    await fs.mkdir('/dir/sub');
    await expect(fs.rename('/a.txt', '/dir')).rejects.toMatchObject({ code: expect.stringMatching(/^(EISDIR|ENOTEMPTY|EEXIST)$/) });
    expect((await fs.readFile('/a.txt')).toString()).toBe('keep me');
    expect(await fs.list('/dir')).toEqual([['sub', 'd', 0]]);
  });
});

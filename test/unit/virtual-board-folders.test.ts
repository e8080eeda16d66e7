/**
 * Which folders `mbm sim` may use for a virtual board's flash: only those it made (its
 * marker file naming the board), decided before anything is written.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { planBoardFolders, prepareBoardFolder, VIRTUAL_BOARD_MARKER, VirtualBoardFolderError } from '../../electron/manager/virtual/virtual-board-folders.js';

describe('virtual board folders', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'cm-vbf-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const marked = async (name: string, id: string, files: Record<string, string> = {}) => {
    await mkdir(path.join(root, name));
    await writeFile(path.join(root, name, VIRTUAL_BOARD_MARKER), `${id}\n`);
    for (const [file, text] of Object.entries(files)) await writeFile(path.join(root, name, file), text);
  };

  it('makes a missing folder with its marker, and reuses a folder marked for the same board with its files', async () => {
    await marked('b-2', 'b000000002', { 'data.txt': 'kept' });
    const plans = await planBoardFolders(root, [
      { name: 'b-1', id: null },
      { name: 'b-2', id: 'b000000002' },
    ]);
    expect(plans.map((plan) => plan.action)).toEqual(['create', 'reuse']);
    await prepareBoardFolder(plans[0]!, 'b000000001');
    await prepareBoardFolder(plans[1]!, 'b000000002');
    expect(await readFile(path.join(root, 'b-1', VIRTUAL_BOARD_MARKER), 'utf8')).toBe('b000000001\n');
    expect(await readFile(path.join(root, 'b-2', 'data.txt'), 'utf8')).toBe('kept');
  });

  it('refuses, writing nothing, a folder without the marker, a symbolic link, and a folder of another board (unless --fresh)', async () => {
    await mkdir(path.join(root, 'mine-1'));
    await writeFile(path.join(root, 'mine-1', 'own.txt'), 'mine');
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'cm-vbf-target-'));
    try {
      await writeFile(path.join(elsewhere, VIRTUAL_BOARD_MARKER), 'b000000003\n');
      await symlink(elsewhere, path.join(root, 'link-1'));
      await marked('old-1', 'b0000000aa', { 'data.txt': 'old' });
      const attempt = planBoardFolders(root, [
        { name: 'mine-1', id: null },
        { name: 'link-1', id: 'b000000003' },
        { name: 'old-1', id: 'b0000000bb' },
      ]);
      await expect(attempt).rejects.toThrow(VirtualBoardFolderError);
      const message = await attempt.catch((error: Error) => error.message);
      expect(message).toContain(`${path.join(root, 'mine-1')} exists and was not made by mbm sim`);
      expect(message).toContain(`${path.join(root, 'link-1')} is a symbolic link`);
      expect(message).toContain(`"${path.join(root, 'old-1')}" holds the flash of another virtual board`);
      expect(message).toContain('--fresh');
      // --fresh starts over only what sim made: the user's folder and the link still refuse.
      await expect(planBoardFolders(root, [{ name: 'mine-1', id: null }], { fresh: true })).rejects.toThrow('was not made by mbm sim');
      await expect(planBoardFolders(root, [{ name: 'link-1', id: 'b000000003' }], { fresh: true })).rejects.toThrow('symbolic link');
      const [wipe] = await planBoardFolders(root, [{ name: 'old-1', id: 'b0000000bb' }], { fresh: true });
      expect(wipe!.action).toBe('wipe');
      await prepareBoardFolder(wipe!, 'b0000000bb');
      expect(await readdir(path.join(root, 'old-1'))).toEqual([VIRTUAL_BOARD_MARKER]);
      expect(await readdir(path.join(root, 'mine-1'))).toEqual(['own.txt']);
      expect(await readdir(elsewhere)).toEqual([VIRTUAL_BOARD_MARKER]);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('names at most 10 folders in a refusal and counts the rest', async () => {
    const names = Array.from({ length: 25 }, (_, index) => `u-${index + 1}`);
    for (const name of names) await mkdir(path.join(root, name));
    const message = await planBoardFolders(
      root,
      names.map((name) => ({ name, id: null })),
    ).catch((error: Error) => error.message);
    expect(message).toContain('and 15 more');
    expect(message).not.toContain(path.join(root, 'u-11 '));
  });
});

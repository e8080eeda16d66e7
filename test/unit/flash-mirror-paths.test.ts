/**
 * A MicroPython lab board's flash mirror (micropython-board-worker-flash.mjs) writes the
 * files that code on the board made back to the board's host folder. Their names are the
 * board's to choose, so they go through the reference board's host-folder rule
 * (board-host-path.mjs): a name the host would read as a path of its own (a backslash, a
 * drive, a device on Windows) is not written back, and logged once (issue 11 point 8).
 */
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boardHostPath } from '../../electron/manager/virtual/board-host-path.mjs';
import { MicroPythonInterpreter } from '../../electron/manager/virtual/micropython-interpreter.js';

/** Names MicroPython code can give a file (MEMFS takes any character but `/` and NUL). */
const ESCAPES = ['..\\..\\escape.txt', 'lib\\..\\..\\x.py', '\\\\server\\share\\x'];

describe('the host path of a name a board wrote', () => {
  it.each([
    ['Windows', path.win32, 'C:\\Users\\me\\boards\\sim-1'],
    ['POSIX', path.posix, '/home/me/boards/sim-1'],
  ])('never leaves the board folder by %s rules', (_name, hostPath, root) => {
    for (const name of ESCAPES) expect(boardHostPath(root, `/${name}`, hostPath).problem, name).toBeDefined();
    expect(boardHostPath(root, '/lib/main.py', hostPath)).toEqual({ host: hostPath.join(root, 'lib', 'main.py') });
  });

  it('refuses on Windows a drive, a stream, a device or a name Windows would change', () => {
    for (const name of ['C:', 'C:x', 'boot.py:stream', 'NUL', 'lib/com1.py', 'x.', 'x ']) {
      expect(boardHostPath('C:\\boards\\sim-1', `/${name}`, path.win32).problem, name).toBeDefined();
      expect(boardHostPath('/boards/sim-1', `/${name}`, path.posix).problem, name).toBeUndefined();
    }
  });
});

describe('a board whose code writes such names', () => {
  let parent: string;
  let folder: string;
  let interpreter: MicroPythonInterpreter;
  const warnings: string[] = [];

  beforeAll(async () => {
    parent = await mkdtemp(path.join(os.tmpdir(), 'cm-flash-paths-'));
    folder = path.join(parent, 'board');
    await mkdir(folder);
    interpreter = new MicroPythonInterpreter({
      filesDir: folder,
      onLog: (level, message) => {
        if (level === 'warn') warnings.push(message);
      },
    });
  });
  afterAll(async () => {
    await interpreter?.close();
    await rm(parent, { recursive: true, force: true });
  });

  it('keeps its ordinary files and writes none of the others, in its folder or beside it, saying so once per name', async () => {
    const code = [
      'import os',
      ...[...ESCAPES, 'lib\\main.py'].map((name) => `f = open(${JSON.stringify(name)}, "w"); f.write("x"); f.close()`),
      'os.mkdir("a\\\\b")',
      'f = open("ok.txt", "w"); f.write("kept"); f.close()',
    ].join('\n');
    expect(await interpreter.exec('board', code)).toEqual({ status: 'ok' });
    expect(await readdir(folder)).toEqual(['ok.txt']);
    expect(await readdir(parent)).toEqual(['board']);
    // The folder is read in again before each run: the refused names are gone, and made again.
    expect(await interpreter.exec('board', code)).toEqual({ status: 'ok' });
    expect(await readdir(folder)).toEqual(['ok.txt']);
    const refused = [...ESCAPES, 'lib\\main.py', 'a\\b'];
    for (const name of refused) {
      expect(
        warnings.filter((message) => message.includes(JSON.stringify(`/${name}`))),
        name,
      ).toHaveLength(1);
    }
    expect(warnings).toHaveLength(refused.length);
  });
});

/**
 * Board paths are POSIX board paths on every platform (issue 11 point 8): a backslash is
 * refused wherever a board path enters (the API's command validation, the CLI, the virtual
 * boards' file systems), and a host-folder file system never leaves its root, by Windows'
 * path rules (`path.win32`) as well as POSIX ones, whatever platform runs the test.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validateBoardPath, validateCommandRequest, type CommandRequest } from '../../electron/manager/fleet/command-ops.js';
import { InvalidCommandError } from '../../electron/manager/errors.js';
import { boardPath } from '../../electron/cli/board-verbs.js';
import { CliError } from '../../electron/cli/cli-framework.js';
import { HostFolderFs, MemoryFs, hostPathOf } from '../../electron/manager/virtual/board-fs.js';

const ESCAPE = '/a\\..\\..\\x';

const folders: string[] = [];
afterEach(async () => {
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

describe('board paths entering the manager', () => {
  it('refuse a backslash with a message that says what to use', () => {
    expect(() => validateBoardPath(ESCAPE)).toThrow(InvalidCommandError);
    expect(() => validateBoardPath(ESCAPE, 'DEST')).toThrow(/^DEST "\/a\\\\\.\.\\\\\.\.\\\\x" contains a backslash: paths on a board are separated by \//);
    expect(() => validateBoardPath('/lib\\main.py')).toThrow(/backslash/);
    expect(validateBoardPath('/lib//main.py')).toBe('/lib/main.py');
  });

  it('refuse it in every operation that takes a path, before anything is queued', () => {
    const requests: CommandRequest[] = [
      { op: 'put', path: ESCAPE, data: Buffer.from('x') },
      { op: 'get', path: ESCAPE },
      { op: 'ls', path: ESCAPE },
      { op: 'stat', path: ESCAPE },
      { op: 'rm', path: ESCAPE, recursive: true },
      { op: 'mkdir', path: ESCAPE },
      { op: 'mv', path: '/a.txt', to: ESCAPE },
      { op: 'mv', path: ESCAPE, to: '/a.txt' },
    ];
    for (const request of requests) expect(() => validateCommandRequest(request), JSON.stringify(request)).toThrow(/backslash/);
  });

  it('refuse it in the CLI with the usage exit code', () => {
    let error: unknown;
    try {
      boardPath(ESCAPE, 'SRC');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(CliError);
    expect(error).toMatchObject({ exitCode: 2, message: expect.stringContaining('SRC') });
  });
});

describe('a host folder mapped as a board\'s "/"', () => {
  const cases: Array<[string, path.PlatformPath, string]> = [
    ['Windows', path.win32, 'C:\\Users\\me\\boards\\sim-1'],
    ['POSIX', path.posix, '/home/me/boards/sim-1'],
  ];

  it.each(cases)('maps board paths inside the folder by %s rules', (_name, hostPath, root) => {
    expect(hostPathOf(root, '/', hostPath)).toBe(root);
    expect(hostPathOf(root, '/lib/main.py', hostPath)).toBe(hostPath.join(root, 'lib', 'main.py'));
    expect(hostPathOf(root, '//lib///main.py/', hostPath)).toBe(hostPath.join(root, 'lib', 'main.py'));
  });

  it.each(cases)('never leaves the folder by %s rules', (_name, hostPath, root) => {
    // path.win32.join(root, 'a\\..\\..\\x') is C:\Users\me\boards\x: outside the board's folder.
    for (const escape of [ESCAPE, '/a\\..\\..\\..\\..\\..\\x', '/..', '/lib/../../x', '/\\\\server\\share\\x', '/./x']) {
      expect(() => hostPathOf(root, escape, hostPath), escape).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    }
  });

  it('refuses on Windows what Windows reads as a drive, a stream, a device, or a name it would change', () => {
    const root = 'C:\\boards\\sim-1';
    for (const bad of [
      '/C:/x',
      '/C:x',
      '/a.txt:stream',
      '/CON',
      '/lib/nul.txt',
      '/COM1',
      '/lpt9.py',
      '/a.',
      '/a ',
      '/...',
      '/a<b',
      '/a"b',
      '/a|b',
      '/a*',
      '/a?',
    ]) {
      expect(() => hostPathOf(root, bad, path.win32), bad).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    }
    // The same names are ordinary files on a POSIX host, and stay inside the folder.
    expect(hostPathOf('/boards/sim-1', '/CON', path.posix)).toBe('/boards/sim-1/CON');
    expect(hostPathOf('/boards/sim-1', '/a.txt:stream', path.posix)).toBe('/boards/sim-1/a.txt:stream');
    expect(hostPathOf(root, '/console.py', path.win32)).toBe('C:\\boards\\sim-1\\console.py');
  });

  it('on this machine, refuses a backslash path and writes nothing, inside or beside the folder', async () => {
    const parent = await mkdtemp(path.join(os.tmpdir(), 'cm-board-paths-'));
    folders.push(parent);
    const root = path.join(parent, 'board');
    const fs = new HostFolderFs(root);
    await fs.mkdir('/a');
    await fs.writeFile('/a/f.txt', Buffer.from('kept'));
    await expect(fs.writeFile(ESCAPE, Buffer.from('escaped'))).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(fs.mkdir('/a\\b')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(fs.rename('/a/f.txt', '/a\\..\\..\\f.txt')).rejects.toMatchObject({ code: 'EINVAL' });
    expect(await readdir(root)).toEqual(['a']);
    expect(await readdir(path.join(root, 'a'))).toEqual(['f.txt']);
    expect(await readdir(parent)).toEqual(['board']);
  });

  it('the in-memory file system of the reference board refuses it too', async () => {
    await expect(new MemoryFs().writeFile(ESCAPE, Buffer.from('x'))).rejects.toMatchObject({ code: 'EINVAL' });
  });
});

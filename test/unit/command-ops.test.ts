import { describe, expect, it } from 'vitest';
import {
  describeCommand,
  encodeCommandFields,
  hashBatches,
  InvalidCommandError,
  parseHashResult,
  redactConfig,
  validateBoardPath,
} from '../../electron/manager/fleet/command-ops.js';

describe('board paths', () => {
  it('accepts absolute paths and normalises slashes', () => {
    expect(validateBoardPath('/lib/x.py')).toBe('/lib/x.py');
    expect(validateBoardPath('/a//b/')).toBe('/a/b');
    expect(validateBoardPath('/')).toBe('/');
  });

  it.each(['relative.py', '/a/../b', '/..', '/./x', '/a\0b', '', '/' + 'x'.repeat(300)])('refuses %j', (path) => {
    expect(() => validateBoardPath(path)).toThrow(InvalidCommandError);
  });
});

describe('command encoding', () => {
  it('refuses code over 64 KiB and credential keys', () => {
    expect(() => encodeCommandFields({ op: 'exec', code: 'x'.repeat(65 * 1024) }, 1000)).toThrow(/64 KiB/);
    expect(() => encodeCommandFields({ op: 'cfg_set', key: 'password', value: 'x' }, 1000)).toThrow(/credentials/);
    expect(() => encodeCommandFields({ op: 'cfg_set', key: 'dk', value: 'ab'.repeat(32) }, 1000)).toThrow(/credentials/);
  });

  it('takes a discovery port (dp) from 1 to 65535 only', () => {
    expect(encodeCommandFields({ op: 'cfg_set', key: 'dp', value: 18268 }, 1000).map(String)).toEqual(['o', 'cfg_set', 'key', 'dp', 'v', '18268']);
    for (const value of [0, 65536, '18268', 1.5]) expect(() => encodeCommandFields({ op: 'cfg_set', key: 'dp', value }, 1000)).toThrow(/discovery port/);
  });

  it('encodes exec with its timeout', () => {
    const fields = encodeCommandFields({ op: 'exec', code: 'print(1)' }, 1500);
    expect(fields.map(String)).toEqual(['o', 'exec', 'c', 'print(1)', 't', '1500']);
  });

  it('redacts secrets of a board config', () => {
    expect(redactConfig({ name: 'a', wifi_password: 'hunter2', password: 'p' })).toEqual({ name: 'a', wifi_password: '********', password: '********' });
    expect(redactConfig({ name: 'a', dk: 'ab'.repeat(32), dp: 18268 })).toEqual({ name: 'a', dk: '********', dp: 18268 });
  });
});

describe('hash', () => {
  const sha = 'ab'.repeat(32);

  it('sends its paths, normalised, as one JSON array', () => {
    const fields = encodeCommandFields({ op: 'hash', paths: ['/lib/a.mpy', '/lib//b.py/'] }, 1000).map(String);
    expect(fields).toEqual(['o', 'hash', 'pl', '["/lib/a.mpy","/lib/b.py"]']);
    expect(describeCommand({ op: 'hash', paths: ['/lib/a.mpy', '/lib/b.py', '/c'] })).toBe('hash /lib/a.mpy (+2 more)');
  });

  it('refuses no paths, more than 32, a bad path and the same path twice', () => {
    expect(() => encodeCommandFields({ op: 'hash', paths: [] }, 1000)).toThrow(/at least one path/);
    const many = Array.from({ length: 33 }, (_, i) => `/f${i}`);
    expect(() => encodeCommandFields({ op: 'hash', paths: many }, 1000)).toThrow(/at most 32 paths/);
    expect(encodeCommandFields({ op: 'hash', paths: many.slice(0, 32) }, 1000)).toHaveLength(4);
    expect(() => encodeCommandFields({ op: 'hash', paths: ['/ok', '/a/../b'] }, 1000)).toThrow(InvalidCommandError);
    expect(() => encodeCommandFields({ op: 'hash', paths: ['relative.py'] }, 1000)).toThrow(/absolute/);
    expect(() => encodeCommandFields({ op: 'hash', paths: ['/a/b', '/a//b'] }, 1000)).toThrow(/"\/a\/b" twice/);
  });

  it('keeps the path list within 4 KiB of JSON, and splits longer lists into commands that fit', () => {
    // 32 paths of 200 bytes: 6.5 KB of JSON, more than a 36 KB board can answer.
    const long = Array.from({ length: 40 }, (_, i) => `/lib/${String(i).padStart(2, '0')}${'n'.repeat(193)}`);
    expect(() => encodeCommandFields({ op: 'hash', paths: long.slice(0, 32) }, 1000)).toThrow(/at most 4096 bytes of paths/);
    const batches = hashBatches([...long, long[0]!, '/lib//short.py']);
    expect(batches.flat()).toEqual([...long, '/lib/short.py']);
    for (const batch of batches) expect(() => encodeCommandFields({ op: 'hash', paths: batch }, 1000)).not.toThrow();
    expect(batches.map((batch) => batch.length)).toEqual([20, 21]);
    const short = Array.from({ length: 70 }, (_, i) => `/lib/m${i}.mpy`);
    expect(hashBatches(short).map((batch) => batch.length)).toEqual([32, 32, 6]);
    expect(hashBatches([])).toEqual([]);
  });

  it("checks a board's answer against the paths asked", () => {
    expect(parseHashResult(['/a', '/d'], { '/a': sha, '/d': null })).toEqual({ '/a': sha, '/d': null });
    expect(() => parseHashResult(['/a', '/d'], { '/a': sha })).toThrow(/"\/d" is not a SHA-256 or null/);
    expect(() => parseHashResult(['/a'], { '/a': 'AB'.repeat(32) })).toThrow(/not a SHA-256/);
    expect(() => parseHashResult(['/a'], [sha])).toThrow(/object of hashes/);
  });
});

import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { PackageArchiveError, readTarGz, UnsafeArchiveEntryError } from '../../electron/manager/packages/package-archive.js';
import { boardFiles, compareVersions, InvalidInstallTargetError, latestVersion } from '../../electron/manager/packages/package-files.js';
import { makeTar, makeTarGz } from '../helpers/package-index-lab.js';

// Fixtures are built by the test index lab's ustar writer rather than shipped as binaries.
const tar = makeTar;
const tarGz = makeTarGz;

describe('package archives', () => {
  it('a PyPI sdist installs exactly its code files under /lib, without README, setup files or egg-info', () => {
    const sdist = tarGz([
      { name: 'micropython-foo-1.0/', type: 'dir' },
      { name: 'micropython-foo-1.0/PKG-INFO', data: 'Metadata-Version: 1.0' },
      { name: 'micropython-foo-1.0/README.md', data: '# foo' },
      { name: 'micropython-foo-1.0/LICENSE', data: 'MIT' },
      { name: 'micropython-foo-1.0/setup.py', data: 'from setuptools import setup' },
      { name: 'micropython-foo-1.0/setup.cfg', data: '[egg_info]' },
      { name: 'micropython-foo-1.0/micropython_foo.egg-info/PKG-INFO', data: 'x' },
      { name: 'micropython-foo-1.0/micropython_foo.egg-info/requires.txt', data: 'micropython-bar' },
      { name: 'micropython-foo-1.0/foo/__init__.py', data: 'from .core import go' },
      { name: 'micropython-foo-1.0/foo/core.py', data: 'def go(): return 1' },
      { name: 'micropython-foo-1.0/foo/table.bin', data: Buffer.from([1, 2, 3]) },
      { name: 'micropython-foo-1.0/foo/README.txt', data: 'docs' },
      { name: 'micropython-foo-1.0/foo_util.py', data: 'X = 1' },
      { name: 'micropython-foo-1.0/tests/test_foo.py', data: 'import foo' },
      { name: 'micropython-foo-1.0/examples/demo.py', data: 'import foo' },
      { name: 'micropython-foo-1.0/docs/index.py', data: '' },
    ]);
    const files = boardFiles(readTarGz(sdist));
    expect(files.map((f) => f.boardPath)).toEqual(['/lib/foo/__init__.py', '/lib/foo/core.py', '/lib/foo/table.bin', '/lib/foo_util.py']);
    expect(files.find((f) => f.boardPath === '/lib/foo/core.py')?.data.toString()).toBe('def go(): return 1');
    expect(boardFiles(readTarGz(sdist), '/flash/pkgs/').map((f) => f.boardPath)[0]).toBe('/flash/pkgs/foo/__init__.py');
  });

  it('a lone .py maps to /lib/<file>, and a package folder without an sdist root is kept as it is', () => {
    expect(boardFiles([{ path: 'blink.py', data: Buffer.from('') }]).map((f) => f.boardPath)).toEqual(['/lib/blink.py']);
    expect(boardFiles([{ path: 'foo/__init__.py', data: Buffer.from('') }]).map((f) => f.boardPath)).toEqual(['/lib/foo/__init__.py']);
  });

  it('refuses a target folder that is not an absolute board path', () => {
    for (const target of ['lib', '/lib/../boot', 'C:\\lib']) expect(() => boardFiles([], target)).toThrow(InvalidInstallTargetError);
  });

  it.each(['../x.py', '/etc/x', 'a\\..\\x', 'pkg/../../x.py', 'C:/x.py'])('refuses the entry %s, naming it', (name) => {
    const archive = tarGz([
      { name: 'pkg/ok.py', data: 'ok' },
      { name, data: 'evil' },
    ]);
    expect(() => readTarGz(archive)).toThrow(UnsafeArchiveEntryError);
    expect(() => readTarGz(archive)).toThrow(JSON.stringify(name));
  });

  it('refuses symlinks and hard links instead of skipping them', () => {
    expect(() => readTarGz(tarGz([{ name: 'pkg/link.py', type: 'symlink', linkname: '/etc/passwd' }]))).toThrow(/"pkg\/link.py" refused: symbolic links/);
    expect(() => readTarGz(tarGz([{ name: 'pkg/hard.py', type: 'hardlink', linkname: 'pkg/a.py' }]))).toThrow(/"pkg\/hard.py" refused: hard links/);
  });

  it('refuses a decompression bomb at the output limit without unpacking it all', () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    expect(bomb.length).toBeLessThan(200 * 1024);
    expect(() => readTarGz(bomb)).toThrow(/more than 16777216 bytes: refused/);
    expect(() => readTarGz(tarGz([{ name: 'a.py', data: 'x'.repeat(4096) }]), { maxBytes: 2048 })).toThrow(PackageArchiveError);
  });

  it('refuses too many entries, a corrupt header and something that is not gzip', () => {
    const many = tarGz(Array.from({ length: 11 }, (_, i) => ({ name: `m${i}.py`, data: '' })));
    expect(() => readTarGz(many, { maxEntries: 10 })).toThrow(/more than 10 entries/);
    const corrupt = tar([{ name: 'a.py', data: 'x' }]);
    corrupt[0] = 'b'.charCodeAt(0);
    expect(() => readTarGz(gzipSync(corrupt))).toThrow(/checksum mismatch/);
    expect(() => readTarGz(Buffer.from('not an archive'))).toThrow(/not a valid \.tar\.gz/);
  });

  it('reads pax long paths', () => {
    const long = `pkg/${'d'.repeat(120)}/mod.py`;
    const record = ` path=${long}\n`;
    let size = record.length + 3;
    size = `${size}${record}`.length;
    const archive = tarGz([
      { name: 'PaxHeader', type: 'pax', data: `${size}${record}` },
      { name: 'truncated-name', data: 'print(1)' },
    ]);
    expect(readTarGz(archive)).toEqual([{ path: long, data: Buffer.from('print(1)') }]);
  });
});

describe('versions', () => {
  it.each([
    ['1.0', '1.0.0', 0],
    ['1.0', '1.1', -1],
    ['1.10', '1.9', 1],
    ['2.0', '10.0', -1],
    ['1.0a1', '1.0', -1],
    ['1.0b1', '1.0a2', 1],
    ['1.0rc1', '1.0b9', 1],
    ['1.0rc1', '1.0', -1],
    ['1.0.dev1', '1.0a1', -1],
    ['1.0', '1.0.post1', -1],
    ['1.0.post1', '1.1a1', -1],
    ['v0.3.2', '0.3.2', 0],
    ['0.3-1', '0.3.post1', 0],
  ])('compareVersions(%s, %s) = %i', (a, b, expected) => {
    expect(compareVersions(a, b)).toBe(expected);
    expect(compareVersions(b, a)).toBe(-expected || 0);
  });

  it('refuses versions it cannot order', () => {
    expect(() => compareVersions('latest', '1.0')).toThrow(/"latest" is not a dotted number/);
    expect(latestVersion(['0.9', '1.1rc1', '1.0'])).toBe('1.0');
    expect(latestVersion(['1.1rc1', '1.1a1'])).toBe('1.1rc1');
  });
});

import { describe, expect, it } from 'vitest';
import { PackageSpecError, parsePackageSpec, type PackageSpec } from '../../electron/manager/packages/package-spec.js';

const GH = 'https://raw.githubusercontent.com';
const GL = 'https://gitlab.com';

describe('parsePackageSpec', () => {
  const table: [string, PackageSpec][] = [
    ['aioble', { kind: 'index', name: 'aioble' }],
    ['umqtt.simple', { kind: 'index', name: 'umqtt.simple' }],
    ['aioble-core@0.3.0', { kind: 'index', name: 'aioble-core', version: '0.3.0' }],
    ['requests==0.10.1', { kind: 'index', name: 'requests', version: '0.10.1' }],
    ['requests@latest', { kind: 'index', name: 'requests' }],
    ['  base64  ', { kind: 'index', name: 'base64' }],
    ['github:org/repo', { kind: 'url', url: `${GH}/org/repo/HEAD/package.json`, file: false, via: 'github', ref: 'HEAD', shorthand: 'github:org/repo@HEAD' }],
    [
      'github:org/repo@v1.2',
      { kind: 'url', url: `${GH}/org/repo/v1.2/package.json`, file: false, via: 'github', ref: 'v1.2', shorthand: 'github:org/repo@v1.2' },
    ],
    [
      'github:org/repo/pkgs/thing@main',
      {
        kind: 'url',
        url: `${GH}/org/repo/main/pkgs/thing/package.json`,
        file: false,
        via: 'github',
        ref: 'main',
        shorthand: 'github:org/repo/pkgs/thing@main',
      },
    ],
    [
      'github:org/repo/lib/tool.py',
      { kind: 'url', url: `${GH}/org/repo/HEAD/lib/tool.py`, file: true, via: 'github', ref: 'HEAD', shorthand: 'github:org/repo/lib/tool.py@HEAD' },
    ],
    [
      'gitlab:org/repo/sub@dev',
      { kind: 'url', url: `${GL}/org/repo/-/raw/dev/sub/package.json`, file: false, via: 'gitlab', ref: 'dev', shorthand: 'gitlab:org/repo/sub@dev' },
    ],
    [
      'gitlab:org/repo/one.py',
      { kind: 'url', url: `${GL}/org/repo/-/raw/HEAD/one.py`, file: true, via: 'gitlab', ref: 'HEAD', shorthand: 'gitlab:org/repo/one.py@HEAD' },
    ],
    ['https://example.com/pkg/package.json', { kind: 'url', url: 'https://example.com/pkg/package.json', file: false, via: 'url' }],
    ['https://example.com/pkg/', { kind: 'url', url: 'https://example.com/pkg/package.json', file: false, via: 'url' }],
    ['http://example.com/x/tool.py', { kind: 'url', url: 'http://example.com/x/tool.py', file: true, via: 'url' }],
    ['./mypkg', { kind: 'local', path: './mypkg', form: 'folder' }],
    ['/home/me/pkg', { kind: 'local', path: '/home/me/pkg', form: 'folder' }],
    ['C:\\work\\pkg', { kind: 'local', path: 'C:\\work\\pkg', form: 'folder' }],
    ['tool.py', { kind: 'local', path: 'tool.py', form: 'py' }],
    ['dist/micropython-foo-1.0.tar.gz', { kind: 'local', path: 'dist/micropython-foo-1.0.tar.gz', form: 'tar.gz' }],
  ];
  it.each(table)('%s', (input, expected) => {
    expect(parsePackageSpec(input)).toEqual(expected);
  });

  const bad: [string, RegExp][] = [
    ['', /empty package spec/],
    ['   ', /empty package spec/],
    ['two words', /contains spaces/],
    ['pkg@', /"" is not a version/],
    ['pkg==1.0!', /"1.0!" is not a version/],
    ['pkg@>=1.0', /is not a version/],
    ['@1.0', /is not a package name/],
    ['-pkg', /is not a package name/],
    ['github:org', /names no repository/],
    ['github:org/repo@', /is not a branch, tag or commit/],
    ['github:org/../etc', /not a valid path part/],
    ['ftp://example.com/p', /must use http/],
  ];
  it.each(bad)('refuses %j with a clear message', (input, message) => {
    expect(() => parsePackageSpec(input)).toThrow(PackageSpecError);
    expect(() => parsePackageSpec(input)).toThrow(message);
  });

  it('is a bad request for the API', () => {
    try {
      parsePackageSpec('');
    } catch (err) {
      expect((err as PackageSpecError).kind).toBe('bad_request');
    }
    expect.assertions(1);
  });
});

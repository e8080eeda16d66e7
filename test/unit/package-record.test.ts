import { describe, expect, it } from 'vitest';
import {
  MAX_PACKAGE_RECORD_BYTES,
  emptyPackageRecord,
  installedPackages,
  parsePackageRecord,
  recordInstall,
  recordUninstall,
  sameRecord,
  serializePackageRecord,
  type PackageInstalled,
} from '../../electron/manager/fleet/package-record.js';
import { compilePayload, formatKilobytes, installMessage } from '../../electron/manager/fleet/package-install-job.js';
import { createHash } from 'node:crypto';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

function pkg(name: string, files: Record<string, string>, version = '1.0'): PackageInstalled {
  return { name, version, target: '/lib', source: 'index http://127.0.0.1/pi/v2', at: 1_764_633_600_000, files };
}

describe('the board package record', () => {
  it('reads nothing as empty and round-trips what it wrote', () => {
    expect(parsePackageRecord(null)).toEqual({ record: emptyPackageRecord(), warning: null });
    const { record } = recordInstall(emptyPackageRecord(), [pkg('logging', { '/lib/logging.mpy': A })]);
    const bytes = serializePackageRecord(record);
    expect(JSON.parse(bytes.toString())).toEqual({
      v: 1,
      packages: {
        logging: { version: '1.0', target: '/lib', source: 'index http://127.0.0.1/pi/v2', at: 1_764_633_600_000, files: { '/lib/logging.mpy': A } },
      },
    });
    expect(parsePackageRecord(bytes)).toEqual({ record, warning: null });
    expect(installedPackages(record)).toEqual([
      {
        name: 'logging',
        version: '1.0',
        target: '/lib',
        source: 'index http://127.0.0.1/pi/v2',
        installedAt: 1_764_633_600_000,
        files: [{ path: '/lib/logging.mpy', sha256: A }],
      },
    ]);
  });

  it.each([
    ['not JSON', Buffer.from('{"v":1,')],
    ['another shape', Buffer.from('{"v":2,"packages":{}}')],
    [
      'a file that is not a board path',
      Buffer.from(JSON.stringify({ v: 1, packages: { x: { version: '1', target: '/lib', source: 's', at: 1, files: { '../x': A } } } })),
    ],
    ['too large', Buffer.alloc(MAX_PACKAGE_RECORD_BYTES + 1, 0x20)],
  ])('treats a record that is %s as empty, with a warning', (_what, bytes) => {
    const parsed = parsePackageRecord(bytes);
    expect(parsed.record).toEqual(emptyPackageRecord());
    expect(parsed.warning).toMatch(/\/\.cm_packages\.json was unreadable/);
  });

  it('a reinstall removes the files the new version no longer has (x.py once x.mpy replaces it), not ones another package owns', () => {
    let { record } = recordInstall(emptyPackageRecord(), [
      pkg('a', { '/lib/a.py': A, '/lib/shared.py': B, '/lib/old.py': C }),
      pkg('b', { '/lib/b.py': B, '/lib/shared.py': B }),
    ]);
    const next = recordInstall(record, [pkg('a', { '/lib/a.mpy': A }, '2.0')]);
    expect(next.remove).toEqual(['/lib/a.py', '/lib/old.py']);
    record = next.record;
    expect(Object.keys(record.packages.a!.files)).toEqual(['/lib/a.mpy']);
    expect(Object.keys(record.packages.b!.files).sort()).toEqual(['/lib/b.py', '/lib/shared.py']);
  });

  it('a file taken over by another package is recorded once, under its new owner', () => {
    const { record } = recordInstall(emptyPackageRecord(), [pkg('a', { '/lib/x.py': A, '/lib/a.py': A })]);
    const next = recordInstall(record, [pkg('b', { '/lib/x.py': B })]);
    expect(next.remove).toEqual([]);
    expect(next.record.packages.a!.files).toEqual({ '/lib/a.py': A });
    expect(next.record.packages.b!.files).toEqual({ '/lib/x.py': B });
  });

  it('uninstall removes exactly the packages files, keeps those another package lists, and names what was not installed', () => {
    const { record } = recordInstall(emptyPackageRecord(), [
      pkg('a', { '/lib/a.py': A, '/lib/shared.py': B }),
      pkg('b', { '/lib/b.py': B, '/lib/shared.py': B }),
    ]);
    const out = recordUninstall(record, ['a', 'nope']);
    expect(out.remove).toEqual(['/lib/a.py']);
    expect(out.missing).toEqual(['nope']);
    expect(Object.keys(out.record.packages)).toEqual(['b']);
  });

  it('an install of the same files at another time is the same record (it is not written again)', () => {
    const first = recordInstall(emptyPackageRecord(), [pkg('a', { '/lib/a.py': A })]).record;
    const again = recordInstall(first, [{ ...pkg('a', { '/lib/a.py': A }), at: 2 }]).record;
    expect(sameRecord(first, again)).toBe(true);
    expect(sameRecord(first, recordInstall(first, [pkg('a', { '/lib/a.py': B })]).record)).toBe(false);
  });

  it('refuses to write a record over 64 KiB', () => {
    const files = Object.fromEntries(Array.from({ length: 900 }, (_, i) => [`/lib/pkg/module_${i}.py`, A]));
    const { record } = recordInstall(emptyPackageRecord(), [pkg('huge', files)]);
    expect(() => serializePackageRecord(record)).toThrow(/over the 64 KiB limit/);
  });
});

describe('install payload and messages', () => {
  const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  const file = (pkgName: string, boardPath: string, text: string) => {
    const data = Buffer.from(text);
    return { package: pkgName, boardPath, data, sha256: sha(data) };
  };

  it('compiles each .py but boot.py/main.py to .mpy, keeps data files, and compiles one source once', async () => {
    const prepared = {
      target: '/lib',
      packages: [
        {
          name: 'a',
          version: '1',
          source: 's',
          files: [file('a', '/lib/a.py', 'X = 1\n'), file('a', '/lib/a/data.txt', 'hello'), file('a', '/lib/main.py', 'print(1)\n')],
        },
      ],
    };
    const payload = await compilePayload(prepared, { source: false });
    const compiled = payload.packages[0]!.compiled!;
    expect(compiled.map((f) => f.boardPath)).toEqual(['/lib/a.mpy', '/lib/a/data.txt', '/lib/main.py']);
    expect(compiled[0]!.data[0]).toBe(0x4d); // 'M', the .mpy header
    expect(compiled[0]!.sha256).toBe(sha(compiled[0]!.data));
    expect((await compilePayload(prepared, { source: true })).packages[0]!.compiled).toBeNull();
  });

  it('a file that does not compile fails the whole job, naming the file and --source', async () => {
    const prepared = { target: '/lib', packages: [{ name: 'bad', version: '1', source: 's', files: [file('bad', '/lib/bad.py', 'def (:\n')] }] };
    await expect(compilePayload(prepared, { source: false })).rejects.toThrow(/bad: \/lib\/bad\.py does not compile to \.mpy: .*SyntaxError.*--source/);
  });

  it('says what was done in the words of the CLI', () => {
    expect(formatKilobytes(12_800)).toBe('12.5 KB');
    expect(formatKilobytes(300)).toBe('300 B');
    expect(formatKilobytes(0)).toBe('0 B');
    expect(installMessage({ uploadedFiles: 3, skippedFiles: 2, removedFiles: 0, bytes: 12_800 })).toBe('3 uploaded, 2 skipped, 12.5 KB sent');
    expect(installMessage({ uploadedFiles: 0, skippedFiles: 5, removedFiles: 1, bytes: 0 }, ['w'])).toBe('0 uploaded, 5 skipped, 0 B sent, 1 old removed; w');
  });
});

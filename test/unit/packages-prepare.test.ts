import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PackageHashMismatchError, PackageNetworkError } from '../../electron/manager/packages/package-http.js';
import { preparePackages, type PrepareOptions, type PrepareProgress } from '../../electron/manager/packages/package-prepare.js';
import { MissingDependencyError, PackageConflictError } from '../../electron/manager/packages/package-resolver.js';
import { startPackageIndexLab, type FixturePackage, type PackageIndexLab } from '../helpers/package-index-lab.js';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

const fixtures: FixturePackage[] = [
  {
    name: 'app',
    version: '1.0',
    files: { 'app/__init__.py': 'from util import add\nimport log\n', 'app/main.py': 'print("app")\n' },
    deps: [
      ['util', ''],
      ['log', 'latest'],
    ],
  },
  { name: 'log', version: '0.2', files: { 'log.py': 'def info(m):\n    print(m)\n' }, deps: [['util', '1.0']] },
  { name: 'util', version: '1.0', files: { 'util/__init__.py': 'def add(a, b):\n    return a + b\n', 'util/core.py': 'X = 1\n' } },
  { name: 'util', version: '1.1', files: { 'util/__init__.py': 'def add(a, b):\n    return b + a\n', 'util/core.py': 'X = 2\n' } },
  { name: 'needs-ghost', version: '1.0', files: { 'ng.py': 'pass\n' }, deps: [['ghost', '']] },
  { name: 'c1', version: '1.0', files: { 'c1.py': '1\n' }, deps: [['util', '1.0']] },
  { name: 'c2', version: '1.0', files: { 'c2.py': '2\n' }, deps: [['util', '1.1']] },
];

let lab: PackageIndexLab;
let cacheDir: string;
let progress: PrepareProgress[];

beforeAll(async () => {
  lab = await startPackageIndexLab(fixtures);
});

afterAll(async () => {
  await lab.stop();
});

beforeEach(async () => {
  cacheDir = path.join(await mkdtemp(path.join(tmpdir(), 'cm-packages-')), 'packages');
  progress = [];
  lab.requests.length = 0;
  lab.offline(false);
  lab.failWith(undefined);
});

afterEach(async () => {
  await rm(path.dirname(cacheDir), { recursive: true, force: true });
});

const options = (extra: Partial<PrepareOptions> = {}): PrepareOptions => ({
  indexUrl: lab.url,
  pypiUrl: '',
  cacheDir,
  onProgress: (p) => progress.push(p),
  ...extra,
});
const fileRequests = () => lab.requests.filter((r) => r.includes('/file/'));

describe('preparePackages from the index', () => {
  it('resolves a package with two dependencies and downloads every file, checked, dependencies first', async () => {
    const prepared = await preparePackages(['app'], options());
    expect(prepared.target).toBe('/lib');
    expect(prepared.packages.map((p) => [p.name, p.version, p.source, p.requiredBy])).toEqual([
      ['util', '1.0', `index ${lab.url}`, ['app@1.0', 'log@0.2']],
      ['log', '0.2', `index ${lab.url}`, ['app@1.0']],
      ['app', '1.0', `index ${lab.url}`, ['the command line']],
    ]);
    const files = prepared.packages.flatMap((p) => p.files);
    expect(files.map((f) => [f.package, f.boardPath, f.data.toString()])).toEqual([
      ['util', '/lib/util/__init__.py', 'def add(a, b):\n    return a + b\n'],
      ['util', '/lib/util/core.py', 'X = 1\n'],
      ['log', '/lib/log.py', 'def info(m):\n    print(m)\n'],
      ['app', '/lib/app/__init__.py', 'from util import add\nimport log\n'],
      ['app', '/lib/app/main.py', 'print("app")\n'],
    ]);
    for (const f of files) expect(f.sha256).toBe(sha256(f.data));
    // mip's source form: the service compiles .mpy itself.
    expect(lab.requests.filter((r) => r.includes('/package/')).every((r) => r.includes('/package/py/'))).toBe(true);
    expect(fileRequests()).toHaveLength(5);
    expect(progress.at(-1)).toMatchObject({ phase: 'download', done: 5, total: 5 });
    expect((await stat(cacheDir)).mode & 0o777).toBe(0o700);
  });

  it('takes pins as name==version and name@version, into another target folder', async () => {
    for (const spec of ['util==1.1', 'util@1.1']) {
      const prepared = await preparePackages([spec], options({ target: '/flash/pylib' }));
      expect(prepared.packages.map((p) => [p.name, p.version, p.files.map((f) => `${f.boardPath}=${f.data.toString()}`)])).toEqual([
        ['util', '1.1', ['/flash/pylib/util/__init__.py=def add(a, b):\n    return b + a\n', '/flash/pylib/util/core.py=X = 2\n']],
      ]);
    }
  });

  it('downloads no file a second time: files are cached by content', async () => {
    await preparePackages(['app'], options());
    lab.requests.length = 0;
    const again = await preparePackages(['app'], options());
    expect(again.packages.flatMap((p) => p.files)).toHaveLength(5);
    expect(fileRequests()).toEqual([]);
    // The descriptions are asked again (latest may have moved), and that refreshes the cache.
    expect(lab.requests.filter((r) => r.includes('/package/')).length).toBeGreaterThan(0);
  });

  it('works offline from the cache after one online install, giving the same result and saying it is offline', async () => {
    const online = await preparePackages(['app'], options());
    lab.offline(true);
    lab.requests.length = 0;
    const offline = await preparePackages(['app'], options());
    expect(offline).toEqual(online);
    expect(lab.requests.length).toBeGreaterThan(0); // it did try the network
    expect(progress.some((p) => /^offline: using the copy of the description of app cached \d{4}-/.test(p.message))).toBe(true);
    // A failing index (5xx) is the same as no network.
    lab.offline(false);
    lab.failWith(503);
    expect(await preparePackages(['app'], options())).toEqual(online);
  });

  it('says "offline and not in the cache" (a 502 kind) when the network is down and nothing is cached', async () => {
    lab.offline(true);
    const attempt = preparePackages(['app'], options());
    await expect(attempt).rejects.toThrow(PackageNetworkError);
    await expect(attempt).rejects.toThrow(/cannot reach the package index at .*; the description of app is offline and not in the cache/);
    await expect(attempt).rejects.toMatchObject({ kind: 'device' });
    // A description cached but a file not: the file's message says so too.
    lab.offline(false);
    await preparePackages(['util@1.0'], options());
    lab.offline(true);
    await expect(preparePackages(['util@1.1'], options())).rejects.toThrow(/offline and not in the cache/);
  });

  it('fetches a damaged cached file again', async () => {
    await preparePackages(['log'], options({ target: '/lib' }));
    const names = await readdir(path.join(cacheDir, 'files'));
    const logHash = sha256('def info(m):\n    print(m)\n');
    expect(names).toContain(logHash);
    await writeFile(path.join(cacheDir, 'files', logHash), 'damaged');
    lab.requests.length = 0;
    const prepared = await preparePackages(['log'], options());
    expect(prepared.packages.find((p) => p.name === 'log')?.files[0]?.data.toString()).toBe('def info(m):\n    print(m)\n');
    expect(fileRequests()).toEqual([`/pi/v2/file/${logHash.slice(0, 2)}/${logHash.slice(0, 8)}`]);
  });

  it('aborts on a hash mismatch naming the file, returning nothing and caching nothing of it', async () => {
    lab.add({ name: 'tampered', version: '1.0', files: { 'tampered.py': 'good\n' } });
    lab.corruptFile('tampered', '1.0', 'tampered.py');
    const attempt = preparePackages(['tampered'], options());
    await expect(attempt).rejects.toThrow(PackageHashMismatchError);
    await expect(attempt).rejects.toThrow(/file \/lib\/tampered.py does not match its hash in the index/);
    expect(await readdir(path.join(cacheDir, 'files'))).not.toContain(sha256('good\n# tampered\n'));
  });

  it('names a missing dependency and who needs it, and conflicting pins with both requirers, before any file download', async () => {
    const missing = preparePackages(['needs-ghost'], options());
    await expect(missing).rejects.toThrow(MissingDependencyError);
    await expect(missing).rejects.toThrow(`no package ghost (version latest) in ${lab.url}, needed by needs-ghost@1.0`);
    const conflict = preparePackages(['c1', 'c2'], options());
    await expect(conflict).rejects.toThrow(PackageConflictError);
    await expect(conflict).rejects.toThrow('version conflict for util: c1@1.0 needs util==1.0 but c2@1.0 needs util==1.1');
    expect(fileRequests()).toEqual([]);
  });

  it('refuses bad requests with what to do', async () => {
    await expect(preparePackages([], options())).rejects.toThrow(/name at least one package/);
    await expect(preparePackages(['util'], options({ cacheDir: 'relative/cache' }))).rejects.toThrow(/must be an absolute path/);
    await expect(preparePackages(['util'], options({ target: 'lib' }))).rejects.toThrow(/must be an absolute board path/);
    await expect(preparePackages(['util'], options({ pypiUrl: 'ftp://x' }))).rejects.toMatchObject({ kind: 'bad_request' });
  });
});

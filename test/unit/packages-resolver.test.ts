import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  MAX_INDEX_JSON_BYTES,
  MAX_PACKAGE_FILE_BYTES,
  PackageHashMismatchError,
  PackageIndex,
  PackageIndexError,
  PackageNotFoundError,
} from '../../electron/manager/packages/package-index.js';
import {
  MissingDependencyError,
  PackageConflictError,
  PackageSourceNotSupportedError,
  resolveInstallPlan,
} from '../../electron/manager/packages/package-resolver.js';

/** A fixture package of the local index: files by path, deps as mip lists them. */
interface Fixture {
  name: string;
  version: string;
  latest?: boolean;
  files?: Record<string, string>;
  deps?: [string, string][];
}

const shortHash = (data: string | Buffer) => createHash('sha256').update(data).digest('hex').slice(0, 8);

const fixtures: Fixture[] = [
  {
    name: 'app',
    version: '1.0',
    latest: true,
    files: { 'app/__init__.py': 'from util import add\nimport log\n', 'app/main.py': 'print("app")\n' },
    deps: [
      ['util', ''],
      ['log', 'latest'],
    ],
  },
  { name: 'log', version: '0.2', latest: true, files: { 'log.py': 'def info(m):\n    print(m)\n' }, deps: [['util', '1.0']] },
  { name: 'util', version: '1.0', files: { 'util/__init__.py': 'def add(a, b):\n    return a + b\n', 'util/core.py': 'X = 1\n' } },
  { name: 'util', version: '1.1', latest: true, files: { 'util/__init__.py': 'def add(a, b):\n    return b + a\n', 'util/core.py': 'X = 2\n' } },
  { name: 'needs-ghost', version: '1.0', latest: true, files: { 'ng.py': 'pass\n' }, deps: [['ghost', '']] },
  { name: 'c1', version: '1.0', latest: true, files: { 'c1.py': '1\n' }, deps: [['util', '1.0']] },
  { name: 'c2', version: '1.0', latest: true, files: { 'c2.py': '2\n' }, deps: [['util', '1.1']] },
  { name: 'ca', version: '1.0', latest: true, files: { 'ca.py': 'a\n' }, deps: [['cb', '']] },
  { name: 'cb', version: '1.0', latest: true, files: { 'cb.py': 'b\n' }, deps: [['ca', '']] },
  { name: 'from-github', version: '1.0', latest: true, deps: [['github:org/repo', '']] },
  { name: 'shadow-log', version: '1.0', latest: true, files: { 'log.py': 'other\n' } },
  {
    name: 'with-docs',
    version: '1.0',
    latest: true,
    files: { 'wd.py': 'W = 1\n', 'README.md': '# docs\n', LICENSE: 'MIT\n', 'setup.py': 'pass\n', 'wd/data.json': '{}\n' },
  },
];

let server: Server;
let indexUrl: string;
/** Paths requested, to show resolution downloads descriptions only. */
const requests: string[] = [];
/** Extra answers by path, set by single tests (tampered files, oversized bodies). */
const overrides = new Map<string, { body: Buffer | string; chunked?: boolean; type?: string }>();
const files = new Map<string, string>();
const descriptions = new Map<string, string>();

beforeAll(async () => {
  for (const f of fixtures) {
    const hashes = Object.entries(f.files ?? {}).map(([path, content]) => {
      files.set(shortHash(content), content);
      return [path, shortHash(content)];
    });
    const json = JSON.stringify({ v: 1, version: f.version, hashes, deps: f.deps ?? [] });
    descriptions.set(`/package/6/${f.name}/${f.version}.json`, json);
    if (f.latest) descriptions.set(`/package/6/${f.name}/latest.json`, json);
  }
  server = createServer((req, res) => {
    const path = req.url ?? '';
    requests.push(path);
    const override = overrides.get(path);
    if (override) {
      res.writeHead(
        200,
        override.chunked ? { 'content-type': override.type ?? 'application/octet-stream' } : { 'content-length': Buffer.byteLength(override.body) },
      );
      res.end(override.body);
      return;
    }
    const description = descriptions.get(path);
    const file = /^\/file\/([0-9a-f]{2})\/([0-9a-f]+)$/.exec(path);
    const content = file && file[2]?.startsWith(file[1] ?? '') ? files.get(file[2]) : undefined;
    if (description !== undefined) res.writeHead(200, { 'content-type': 'application/json' }).end(description);
    else if (content !== undefined) res.writeHead(200).end(content);
    else res.writeHead(404).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  indexUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  requests.length = 0;
  overrides.clear();
});

const index = () => new PackageIndex({ indexUrl });
const plainIndex = () => indexUrl.replace(/\/$/, '');

describe('resolveInstallPlan', () => {
  it('plans a package with two dependencies: dependencies first, pins honoured, files under /lib with their hashes', async () => {
    const plan = await resolveInstallPlan(['app'], { index: index() });
    expect(plan.target).toBe('/lib');
    // log pins util to 1.0, app takes any: 1.0 is installed, not the latest 1.1.
    expect(plan.packages.map((p) => `${p.name}@${p.version}`)).toEqual(['util@1.0', 'log@0.2', 'app@1.0']);
    expect(plan.packages[0]?.requiredBy).toEqual(['app@1.0', 'log@0.2']);
    expect(plan.packages[2]?.requiredBy).toEqual(['the command line']);
    expect(plan.packages[0]?.files).toEqual([
      { path: 'util/__init__.py', boardPath: '/lib/util/__init__.py', hash: shortHash('def add(a, b):\n    return a + b\n') },
      { path: 'util/core.py', boardPath: '/lib/util/core.py', hash: shortHash('X = 1\n') },
    ]);
    expect(requests.filter((r) => r.startsWith('/file/'))).toEqual([]);

    const files = plan.packages.flatMap((p) => p.files);
    const fetched = await Promise.all(files.map(async (f) => [f.boardPath, (await index().getFile(f.boardPath, f.hash as string)).toString()]));
    expect(fetched).toEqual([
      ['/lib/util/__init__.py', 'def add(a, b):\n    return a + b\n'],
      ['/lib/util/core.py', 'X = 1\n'],
      ['/lib/log.py', 'def info(m):\n    print(m)\n'],
      ['/lib/app/__init__.py', 'from util import add\nimport log\n'],
      ['/lib/app/main.py', 'print("app")\n'],
    ]);
  });

  it('leaves a README, licence and setup file on the host even when the index lists them', async () => {
    const plan = await resolveInstallPlan(['with-docs'], { index: index() });
    expect(plan.packages[0]!.files.map((file) => file.boardPath)).toEqual(['/lib/wd.py', '/lib/wd/data.json']);
  });

  it('installs under another target folder and takes a pinned version from the command line', async () => {
    const plan = await resolveInstallPlan(['util==1.1'], { index: index(), target: '/flash/pylib/' });
    expect(plan.packages.map((p) => [p.name, p.version, p.files.map((f) => f.boardPath)])).toEqual([
      ['util', '1.1', ['/flash/pylib/util/__init__.py', '/flash/pylib/util/core.py']],
    ]);
  });

  it('names a missing package and a missing dependency, with who needs it', async () => {
    await expect(resolveInstallPlan(['ghost@2.0'], { index: index() })).rejects.toThrow(new PackageNotFoundError('ghost', '2.0', plainIndex()));
    await expect(resolveInstallPlan(['ghost@2.0'], { index: index() })).rejects.toThrow(`no package ghost (version 2.0) in ${plainIndex()}`);
    const missing = resolveInstallPlan(['needs-ghost'], { index: index() });
    await expect(missing).rejects.toThrow(MissingDependencyError);
    await expect(missing).rejects.toThrow(`no package ghost (version latest) in ${plainIndex()}, needed by needs-ghost@1.0`);
  });

  it('reports a version conflict naming both requirers, before any file is downloaded', async () => {
    const conflict = resolveInstallPlan(['c1', 'c2'], { index: index() });
    await expect(conflict).rejects.toThrow(PackageConflictError);
    await expect(conflict).rejects.toThrow('version conflict for util: c1@1.0 needs util==1.0 but c2@1.0 needs util==1.1');
    await expect(resolveInstallPlan(['util@1.1', 'log'], { index: index() })).rejects.toThrow(
      'version conflict for util: the command line needs util==1.1 but log@0.2 needs util==1.0',
    );
    expect(requests.filter((r) => r.startsWith('/file/'))).toEqual([]);
  });

  it('names a dependency cycle', async () => {
    await expect(resolveInstallPlan(['ca'], { index: index() })).rejects.toThrow('dependency cycle: ca@1.0 → cb@1.0 → ca@1.0');
  });

  it('refuses two packages that install the same file', async () => {
    await expect(resolveInstallPlan(['log', 'shadow-log'], { index: index() })).rejects.toThrow('log and shadow-log both install /lib/log.py');
  });

  it('says other sources are not supported yet, also as a dependency', async () => {
    await expect(resolveInstallPlan(['github:org/repo'], { index: index() })).rejects.toThrow(PackageSourceNotSupportedError);
    await expect(resolveInstallPlan(['./folder'], { index: index() })).rejects.toThrow(/is a local folder: installing from that source is not supported yet/);
    await expect(resolveInstallPlan(['from-github'], { index: index() })).rejects.toThrow(/needed by from-github@1.0\) is a github: package/);
  });

  it('refuses a bad target folder', async () => {
    await expect(resolveInstallPlan(['util'], { index: index(), target: 'lib' })).rejects.toThrow(/must be an absolute board path/);
    await expect(resolveInstallPlan(['util'], { index: index(), target: '/lib/../boot' })).rejects.toThrow(/must be an absolute board path/);
  });
});

describe('PackageIndex', () => {
  it('refuses a file whose content does not match its hash, naming the file, and returns nothing', async () => {
    const plan = await resolveInstallPlan(['util@1.0'], { index: index() });
    const core = plan.packages[0]?.files.find((f) => f.path === 'util/core.py');
    const hash = core?.hash as string;
    overrides.set(`/file/${hash.slice(0, 2)}/${hash}`, { body: 'X = 666\n' });
    const download = index().getFile(core?.boardPath as string, hash);
    await expect(download).rejects.toThrow(PackageHashMismatchError);
    await expect(download).rejects.toThrow(/file \/lib\/util\/core.py does not match its hash in the index/);
  });

  it('refuses an oversized description or file, declared or streamed', async () => {
    overrides.set('/package/6/big/latest.json', { body: Buffer.alloc(MAX_INDEX_JSON_BYTES + 1, 32) });
    await expect(index().getPackage('big')).rejects.toThrow(/larger than 1048576 bytes: refused/);
    overrides.set('/file/ab/abcdef01', { body: Buffer.alloc(MAX_PACKAGE_FILE_BYTES + 1), chunked: true });
    await expect(index().getFile('huge.py', 'abcdef01')).rejects.toThrow(/file huge.py .* is larger than 4194304 bytes: refused/);
  });

  it('refuses a malformed description with what is wrong', async () => {
    overrides.set('/package/6/bad/latest.json', { body: JSON.stringify({ version: '1', hashes: [['../../boot.py', 'abcdef01']] }), chunked: true });
    await expect(index().getPackage('bad')).rejects.toThrow(/description of bad .* is malformed: hashes.0.0/);
    overrides.set('/package/6/notjson/latest.json', { body: '<html>', chunked: true });
    await expect(index().getPackage('notjson')).rejects.toThrow(PackageIndexError);
  });

  it('says when the index cannot be reached', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await expect(new PackageIndex({ indexUrl: `http://127.0.0.1:${port}` }).getPackage('app')).rejects.toThrow(
      /cannot reach the package index .* check the index URL/,
    );
    expect(() => new PackageIndex({ indexUrl: 'file:///etc' })).toThrow(/must use http/);
  });
});

import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTarGz } from '../../electron/manager/packages/package-archive.js';
import { PackageHashMismatchError, PackageIndex } from '../../electron/manager/packages/package-index.js';
import { makeTarGz, startPackageIndexLab, type PackageIndexLab } from '../helpers/package-index-lab.js';

let lab: PackageIndexLab;

beforeAll(async () => {
  lab = await startPackageIndexLab([
    { name: 'util', version: '1.0', files: { 'util.py': 'X = 1\n' } },
    { name: 'util', version: '1.10', files: { 'util.py': 'X = 10\n' }, deps: [['log', 'latest']] },
    { name: 'util', version: '1.9', files: { 'util.py': 'X = 9\n' } },
  ]);
});

afterAll(async () => {
  await lab.stop();
});

describe('package index lab', () => {
  it('serves micropython-lib shaped descriptions, latest by version order, files by short hash, under py and 6', async () => {
    const latest = (await (await fetch(`${lab.url}/package/py/util/latest.json`)).json()) as { hashes: [string, string][]; version: string };
    const hash = createHash('sha256').update('X = 10\n').digest('hex').slice(0, 8);
    expect(latest).toEqual({ hashes: [['util.py', hash]], deps: [['log', 'latest']], version: '1.10' });
    expect(await (await fetch(`${lab.url}/package/6/util/1.0.json`)).json()).toMatchObject({ version: '1.0' });
    expect(await (await fetch(`${lab.url}/file/${hash.slice(0, 2)}/${hash}`)).text()).toBe('X = 10\n');
    expect((await fetch(`${lab.url}/package/py/nothing/latest.json`)).status).toBe(404);
    expect(lab.requests.slice(-4)).toEqual([
      '/pi/v2/package/py/util/latest.json',
      '/pi/v2/package/6/util/1.0.json',
      `/pi/v2/file/${hash.slice(0, 2)}/${hash}`,
      '/pi/v2/package/py/nothing/latest.json',
    ]);
  });

  it('serves a corrupted file that the index client refuses', async () => {
    lab.add({ name: 'bad', version: '2.0', files: { 'bad.py': 'ok\n' } });
    lab.corruptFile('bad', '2.0', 'bad.py');
    const index = new PackageIndex({ indexUrl: lab.url, format: 'py' });
    const meta = await index.getPackage('bad');
    await expect(index.getFile('bad.py', meta.hashes[0]?.[1] ?? '')).rejects.toThrow(PackageHashMismatchError);
  });

  it('serves PyPI JSON and sdists, and static files', async () => {
    const tar = makeTarGz([
      { name: 'micropython-foo-1.2/setup.py', data: 'setup()\n' },
      { name: 'micropython-foo-1.2/foo.py', data: 'FOO = 1\n' },
    ]);
    lab.addSdist('micropython-foo', '1.2', tar, { requiresDist: ['micropython-util (>=1.0)'] });
    const json = (await (await fetch(`${lab.pypiUrl}/pypi/micropython-foo/json`)).json()) as {
      info: { version: string; requires_dist: string[] };
      releases: Record<string, Array<{ url: string; packagetype: string; digests: { sha256: string } }>>;
    };
    expect(json.info).toMatchObject({ version: '1.2', requires_dist: ['micropython-util (>=1.0)'] });
    const release = json.releases['1.2']?.[0];
    expect(release?.packagetype).toBe('sdist');
    const body = Buffer.from(await (await fetch(release?.url ?? '')).arrayBuffer());
    expect(createHash('sha256').update(body).digest('hex')).toBe(release?.digests.sha256);
    expect(readTarGz(body).map((f) => f.path)).toEqual(['micropython-foo-1.2/setup.py', 'micropython-foo-1.2/foo.py']);
    const url = lab.addStatic('/repo/pkg/package.json', '{"urls":[]}');
    expect(await (await fetch(url)).text()).toBe('{"urls":[]}');
  });

  it('goes offline (requests fail at the socket) and can answer 5xx', async () => {
    lab.offline(true);
    await expect(fetch(`${lab.url}/package/py/util/latest.json`)).rejects.toThrow();
    lab.offline(false);
    lab.failWith(503);
    expect((await fetch(`${lab.url}/package/py/util/latest.json`)).status).toBe(503);
    lab.failWith(undefined);
    expect((await fetch(`${lab.url}/package/py/util/latest.json`)).status).toBe(200);
  });

  it('writes tarballs with long names, links and unsafe names for the refusal tests', () => {
    const long = `${'d'.repeat(80)}/${'e'.repeat(60)}/file.py`;
    expect(readTarGz(makeTarGz([{ name: long, data: 'x' }])).map((f) => f.path)).toEqual([long]);
    expect(() => readTarGz(makeTarGz([{ name: 'pkg/link.py', data: '/etc/passwd', type: 'symlink' }]))).toThrow(/symbolic links/);
    expect(() => readTarGz(makeTarGz([{ name: '../evil.py', data: 'x' }]))).toThrow(/"\.\." segments/);
    expect(() => readTarGz(makeTarGz([{ name: '/abs.py', data: 'x' }]))).toThrow(/absolute paths/);
  });
});

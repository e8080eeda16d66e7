import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { satisfies } from '../../electron/manager/packages/package-files.js';
import { PackageHashMismatchError } from '../../electron/manager/packages/package-http.js';
import { preparePackages, type PreparedInstall, type PrepareOptions } from '../../electron/manager/packages/package-prepare.js';
import { makeTarGz, startPackageIndexLab, type PackageIndexLab } from '../helpers/package-index-lab.js';

let lab: PackageIndexLab;
let temp: string;
let cacheDir: string;

beforeAll(async () => {
  lab = await startPackageIndexLab([
    { name: 'util', version: '1.0', files: { 'util.py': 'U = 1\n' } },
    { name: 'util', version: '2.0', files: { 'util.py': 'U = 2\n' } },
  ]);
});

afterAll(async () => {
  await lab.stop();
});

beforeEach(async () => {
  temp = await mkdtemp(path.join(tmpdir(), 'cm-sources-'));
  cacheDir = path.join(temp, 'cache');
  lab.requests.length = 0;
  lab.offline(false);
});

afterEach(async () => {
  await rm(temp, { recursive: true, force: true });
});

const origin = () => new URL(lab.url).origin;
/** Maps GitHub's and GitLab's raw hosts onto the lab server, so github:/gitlab: specs are tested over real HTTP without the internet. */
const labFetch: PrepareOptions['fetch'] = (url, init) =>
  fetch(url.replace('https://raw.githubusercontent.com/', `${origin()}/gh/`).replace('https://gitlab.com/', `${origin()}/gl/`), init);
const options = (extra: Partial<PrepareOptions> = {}): PrepareOptions => ({ indexUrl: lab.url, pypiUrl: '', cacheDir, fetch: labFetch, ...extra });
const summary = (prepared: PreparedInstall) =>
  prepared.packages.map((p) => ({
    name: p.name,
    version: p.version,
    source: p.source,
    files: Object.fromEntries(p.files.map((f) => [f.boardPath, f.data.toString()])),
  }));

describe('package.json by URL and github:/gitlab:', () => {
  it('installs a mip package.json by URL: relative and full urls, index hashes, index dependencies', async () => {
    lab.addStatic('/pkgs/sensor/sensor/__init__.py', 'from util import U\n');
    const driver = lab.addStatic('/elsewhere/driver.py', 'D = 1\n');
    const hash = createHash('sha256').update('U = 1\n').digest('hex').slice(0, 8);
    const url = lab.addStatic(
      '/pkgs/sensor/package.json',
      JSON.stringify({
        urls: [
          ['sensor/__init__.py', 'sensor/__init__.py'],
          ['sensor/driver.py', driver],
        ],
        hashes: [['sensor/util_copy.py', hash]],
        deps: [['util', '1.0']],
        version: '0.3',
      }),
    );
    expect(summary(await preparePackages([url], options()))).toEqual([
      { name: 'util', version: '1.0', source: `index ${lab.url}`, files: { '/lib/util.py': 'U = 1\n' } },
      {
        name: 'sensor',
        version: '0.3',
        source: url,
        files: { '/lib/sensor/__init__.py': 'from util import U\n', '/lib/sensor/driver.py': 'D = 1\n', '/lib/sensor/util_copy.py': 'U = 1\n' },
      },
    ]);
    // A folder URL means its package.json, as in mip.
    expect((await preparePackages([url.replace(/package\.json$/, '')], options())).packages[1]?.name).toBe('sensor');
  });

  it('installs github:org/repo/path@ref: its own github: urls at the same ref, a github: dependency at the ref it names', async () => {
    lab.addStatic('/gh/org/repo/v2/pkg/thing.py', 'T = 2\n');
    lab.addStatic('/gh/org/repo/v2/shared/data.bin', 'DATA');
    lab.addStatic('/gh/org/other/v9/package.json', JSON.stringify({ urls: [['other.py', 'other.py']], version: '9.0' }));
    lab.addStatic('/gh/org/other/v9/other.py', 'O = 9\n');
    lab.addStatic(
      '/gh/org/repo/v2/pkg/package.json',
      JSON.stringify({
        urls: [
          ['thing.py', 'thing.py'],
          ['thing/data.bin', 'github:org/repo/shared/data.bin'],
        ],
        deps: [['github:org/other', 'v9']],
      }),
    );
    expect(summary(await preparePackages(['github:org/repo/pkg@v2'], options({ target: '/apps' })))).toEqual([
      { name: 'other', version: '9.0', source: 'github:org/other@v9', files: { '/apps/other.py': 'O = 9\n' } },
      { name: 'pkg', version: 'v2', source: 'github:org/repo/pkg@v2', files: { '/apps/thing.py': 'T = 2\n', '/apps/thing/data.bin': 'DATA' } },
    ]);
  });

  it('installs a single .py by URL and by gitlab:, and names a missing package.json', async () => {
    const url = lab.addStatic('/files/blink.py', 'print("blink")\n');
    lab.addStatic('/gl/org/repo/-/raw/HEAD/tools/one.py', 'ONE = 1\n');
    expect(summary(await preparePackages([url, 'gitlab:org/repo/tools/one.py'], options()))).toEqual([
      { name: 'blink', version: 'unversioned', source: url, files: { '/lib/blink.py': 'print("blink")\n' } },
      { name: 'one', version: 'HEAD', source: 'gitlab:org/repo/tools/one.py@HEAD', files: { '/lib/one.py': 'ONE = 1\n' } },
    ]);
    await expect(preparePackages(['github:org/nothing'], options())).rejects.toThrow(/no package.json at .*\/org\/nothing\/HEAD\/package.json \(404\)/);
  });
});

describe('local sources', () => {
  it('installs a local folder: only code and package data, no README, setup or tests', async () => {
    const folder = path.join(temp, 'weather');
    await mkdir(path.join(folder, 'weather', 'fonts'), { recursive: true });
    await mkdir(path.join(folder, 'tests'), { recursive: true });
    await writeFile(path.join(folder, 'weather', '__init__.py'), 'W = 1\n');
    await writeFile(path.join(folder, 'weather', 'fonts', 'small.bin'), 'FONT');
    await writeFile(path.join(folder, 'README.md'), '# weather\n');
    await writeFile(path.join(folder, 'setup.py'), 'setup()\n');
    await writeFile(path.join(folder, 'tests', 'test_weather.py'), 'assert True\n');
    expect(summary(await preparePackages([folder], options()))).toEqual([
      {
        name: 'weather',
        version: 'local',
        source: `local ${folder}`,
        files: { '/lib/weather/__init__.py': 'W = 1\n', '/lib/weather/fonts/small.bin': 'FONT' },
      },
    ]);
    await symlink('/etc/hostname', path.join(folder, 'weather', 'host.py'));
    await expect(preparePackages([folder], options())).rejects.toThrow(/host.py is a symbolic link/);
  });

  it('installs a local folder with a package.json: paths relative to it, index dependencies; refuses one escaping the folder', async () => {
    const folder = path.join(temp, 'clock');
    await mkdir(folder);
    await writeFile(path.join(folder, 'clock.py'), 'C = 1\n');
    await writeFile(path.join(folder, 'package.json'), JSON.stringify({ urls: [['clock.py', 'clock.py']], deps: [['util', '']], version: '1.4' }));
    expect(summary(await preparePackages([folder], options()))).toEqual([
      { name: 'util', version: '2.0', source: `index ${lab.url}`, files: { '/lib/util.py': 'U = 2\n' } },
      { name: 'clock', version: '1.4', source: `local ${folder}`, files: { '/lib/clock.py': 'C = 1\n' } },
    ]);
    await writeFile(path.join(temp, 'secret.py'), 'S = 1\n');
    await writeFile(path.join(folder, 'package.json'), JSON.stringify({ urls: [['secret.py', '../secret.py']] }));
    await expect(preparePackages([folder], options())).rejects.toThrow(/lists "\.\.\/secret.py", which is outside/);
  });

  it('installs a local .py and a local sdist .tar.gz (root stripped, setup files and README left out, PKG-INFO name and version)', async () => {
    const py = path.join(temp, 'tool.py');
    await writeFile(py, 'T = 1\n');
    const tar = path.join(temp, 'micropython-gadget-0.7.tar.gz');
    await writeFile(
      tar,
      makeTarGz([
        { name: 'micropython-gadget-0.7/PKG-INFO', data: 'Metadata-Version: 2.1\nName: micropython-gadget\nVersion: 0.7\n\nlong text\n' },
        { name: 'micropython-gadget-0.7/setup.py', data: 'setup()\n' },
        { name: 'micropython-gadget-0.7/README.rst', data: 'readme\n' },
        { name: 'micropython-gadget-0.7/gadget/__init__.py', data: 'G = 7\n' },
      ]),
    );
    expect(summary(await preparePackages([py, tar], options()))).toEqual([
      { name: 'tool', version: 'local', source: `local ${py}`, files: { '/lib/tool.py': 'T = 1\n' } },
      { name: 'micropython-gadget', version: '0.7', source: `local ${tar}`, files: { '/lib/gadget/__init__.py': 'G = 7\n' } },
    ]);
  });

  it('refuses a relative local path, and tarballs with ../, absolute paths, links, or a decompression bomb', async () => {
    await expect(preparePackages(['./tool.py'], options())).rejects.toThrow('local package path "./tool.py" must be absolute');
    const cases: Array<[string, Buffer, RegExp]> = [
      ['dotdot', makeTarGz([{ name: 'pkg-1.0/../../evil.py', data: 'x' }]), /"\.\." segments are not allowed/],
      ['absolute', makeTarGz([{ name: '/lib/boot.py', data: 'x' }]), /absolute paths are not allowed/],
      ['link', makeTarGz([{ name: 'pkg-1.0/pkg/link.py', data: '/etc/passwd', type: 'symlink' }]), /symbolic links are not installed/],
      ['bomb', makeTarGz([{ name: 'pkg-1.0/pkg/zeros.py', data: Buffer.alloc(17 * 1024 * 1024) }]), /unpacks to more than 16777216 bytes: refused/],
    ];
    for (const [name, archive, refusal] of cases) {
      const file = path.join(temp, `${name}.tar.gz`);
      await writeFile(file, archive);
      await expect(preparePackages([file], options())).rejects.toThrow(refusal);
    }
  });
});

describe('PyPI fallback', () => {
  beforeAll(() => {
    const sdist = (name: string, version: string, module: string, body: string) =>
      makeTarGz([
        { name: `${name}-${version}/setup.py`, data: 'setup()\n' },
        { name: `${name}-${version}/README.md`, data: 'readme\n' },
        { name: `${name}-${version}/${module}.py`, data: body },
      ]);
    lab.addSdist('micropython-radio', '1.0', sdist('micropython-radio', '1.0', 'radio', 'R = 1\n'), { requiresDist: ['micropython-codec (>=1.0)'] });
    lab.addSdist('micropython-radio', '1.2', sdist('micropython-radio', '1.2', 'radio', 'R = 12\n'), {
      requiresDist: ['micropython-codec (>=1.1,!=1.3,<2)', 'requests>=2', 'micropython-devtool; extra == "dev"'],
    });
    for (const v of ['1.0', '1.3', '1.4', '2.0']) lab.addSdist('micropython-codec', v, sdist('micropython-codec', v, 'codec', `V = "${v}"\n`));
    lab.addSdist('micropython-liar', '1.0', sdist('micropython-liar', '1.0', 'liar', 'L\n'), { sha256: '0'.repeat(64) });
  });

  it('asks PyPI for NAME then micropython-NAME when the index has no NAME, following micropython-* requirements with their specifiers', async () => {
    const prepared = await preparePackages(['radio'], options({ pypiUrl: lab.pypiUrl }));
    expect(summary(prepared)).toEqual([
      { name: 'micropython-codec', version: '1.4', source: 'pypi micropython-codec 1.4', files: { '/lib/codec.py': 'V = "1.4"\n' } },
      { name: 'radio', version: '1.2', source: 'pypi micropython-radio 1.2', files: { '/lib/radio.py': 'R = 12\n' } },
    ]);
    expect(lab.requests.filter((r) => r.includes('/pypi/'))).toEqual([
      '/pypi-lab/pypi/radio/json',
      '/pypi-lab/pypi/micropython-radio/json',
      '/pypi-lab/pypi/micropython-codec/json',
      // 1.4 is not the newest codec: its own requirements are on its release page.
      '/pypi-lab/pypi/micropython-codec/1.4/json',
    ]);
  });

  it('takes a pin (== or @) to choose the release, with that release own requirements', async () => {
    for (const spec of ['radio==1.0', 'radio@1.0']) {
      const prepared = await preparePackages([spec], options({ pypiUrl: lab.pypiUrl }));
      expect(prepared.packages.map((p) => `${p.name}@${p.version}`)).toEqual(['micropython-codec@2.0', 'radio@1.0']);
    }
    await expect(preparePackages(['micropython-codec==1.3', 'radio'], options({ pypiUrl: lab.pypiUrl }))).rejects.toThrow(
      'version conflict for micropython-codec: radio@1.2 needs micropython-codec>=1.1,!=1.3,<2 but the command line needs micropython-codec==1.3',
    );
    await expect(preparePackages(['radio==3.0'], options({ pypiUrl: lab.pypiUrl }))).rejects.toThrow(
      /PyPI has micropython-radio but no release 3.0 with an sdist \(it has 1.2, 1.0\)/,
    );
  });

  it('refuses an sdist whose sha256 differs from PyPI, and says where it looked when nothing has the name', async () => {
    await expect(preparePackages(['liar'], options({ pypiUrl: lab.pypiUrl }))).rejects.toThrow(PackageHashMismatchError);
    await expect(preparePackages(['liar'], options({ pypiUrl: lab.pypiUrl }))).rejects.toThrow(/micropython-liar-1.0.tar.gz does not match its hash on PyPI/);
    await expect(preparePackages(['nowhere'], options({ pypiUrl: lab.pypiUrl }))).rejects.toThrow(
      `no package nowhere (version latest) in ${lab.url}, nor on PyPI as nowhere or micropython-nowhere`,
    );
    // With the fallback off, PyPI is not asked.
    lab.requests.length = 0;
    await expect(preparePackages(['radio'], options())).rejects.toThrow(`no package radio (version latest) in ${lab.url}`);
    expect(lab.requests.some((r) => r.includes('/pypi'))).toBe(false);
  });

  it('works offline after one online install (PyPI JSON and sdists cached)', async () => {
    const online = await preparePackages(['radio'], options({ pypiUrl: lab.pypiUrl }));
    lab.offline(true);
    expect(await preparePackages(['radio'], options({ pypiUrl: lab.pypiUrl }))).toEqual(online);
  });
});

describe('version specifiers', () => {
  it('parses ==, >=, <, ~=, !=, wildcards and commas for real', () => {
    expect(satisfies('1.4', '>=1.1,!=1.3,<2')).toBe(true);
    expect(satisfies('1.3', '>=1.1,!=1.3,<2')).toBe(false);
    expect(satisfies('2.0', '>=1.1,!=1.3,<2')).toBe(false);
    expect(satisfies('1.4.5', '~=1.4.2')).toBe(true);
    expect(satisfies('1.5', '~=1.4.2')).toBe(false);
    expect(satisfies('1.9', '~=1.4')).toBe(true);
    expect(satisfies('2.0', '~=1.4')).toBe(false);
    expect(satisfies('1.2.7', '==1.2.*')).toBe(true);
    expect(satisfies('1.0', '==1.0.0')).toBe(true);
    expect(() => satisfies('1.0', '=>1.0')).toThrow(/is not like >=1.0/);
  });
});

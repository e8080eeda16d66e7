/**
 * board-install end to end (issue 12): a local package index on 127.0.0.1 (fixture
 * packages), the service with its embedded redis-server, a MicroPython lab board (the real
 * client in the WebAssembly interpreter) and reference boards. Packages are resolved and
 * downloaded on the host, files a board has are skipped, problems stop the install before
 * any board gets a file, uninstall removes exactly a package's files, and the CLI verbs
 * print one line per board.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiCommandRequest, CommandView, JobView } from '../../electron/manager/api/contract.js';
import { compileToMpy } from '../../electron/manager/packages/mpy-cross.js';
import { startMicroPythonFleet, type MicroPythonFleet } from '../../electron/manager/virtual/micropython-fleet.js';
import { startVirtualFleet, type VirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';
import { makeTarGz, startPackageIndexLab, type FixturePackage, type PackageIndexLab } from '../helpers/package-index-lab.js';
import { startManager, waitFor } from '../helpers/lab.js';
import { runMbm } from '../helpers/mbm-cli.js';

type Service = Awaited<ReturnType<typeof startManager>>;

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** A package with two dependencies; one of them a package folder with a data file. */
const FIXTURES: FixturePackage[] = [
  {
    name: 'greeter',
    version: '1.2',
    files: { 'greeter.py': 'import fmtkit\nfrom tally import count\n\ndef hello(name):\n    return fmtkit.shout("hello " + name) + " #" + str(count())\n' },
    deps: [
      ['fmtkit', '0.3'],
      ['tally', 'latest'],
    ],
  },
  { name: 'fmtkit', version: '0.3', files: { 'fmtkit.py': 'def shout(text):\n    return text.upper() + "!"\n' } },
  {
    name: 'tally',
    version: '2.0',
    files: {
      'tally/__init__.py': '_n = [0]\n\ndef count():\n    _n[0] += 1\n    return _n[0]\n',
      'tally/words.txt': 'one two three\n',
    },
  },
  { name: 'other', version: '1.0', files: { 'other.py': 'X = 7\n' } },
  // Problems: a dependency the index lacks, two pins of one package, a file served with other bytes.
  { name: 'needs-missing', version: '1.0', files: { 'needs_missing.py': 'X = 1\n' }, deps: [['no-such-package', 'latest']] },
  { name: 'pins-a', version: '1.0', files: { 'pins_a.py': 'A = 1\n' }, deps: [['fmtkit', '0.3']] },
  { name: 'pins-b', version: '1.0', files: { 'pins_b.py': 'B = 1\n' }, deps: [['fmtkit', '0.2']] },
  { name: 'fmtkit', version: '0.2', files: { 'fmtkit.py': 'def shout(text):\n    return text\n' } },
  { name: 'tampered', version: '1.0', files: { 'tampered.py': 'T = 1\n' } },
];

describe('board-install', () => {
  let service: Service;
  let index: PackageIndexLab;
  let mp: MicroPythonFleet;
  /** ref-1 … ref-20 for the 20-board install; each other test has a spare board of its own. */
  let refs: VirtualFleet;
  let spares: VirtualFleet;
  let work: string;

  const api = () => service.api;
  const run = async (board: string, request: ApiCommandRequest): Promise<CommandView> => {
    const { commands } = await api().call('commands.send', { boards: board, request });
    return (await api().call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 30_000 }))[0]!;
  };
  const finished = (id: string, timeoutMs = 30_000): Promise<JobView> =>
    waitFor(
      async () => {
        const job = await api().call('jobs.get', { id });
        return job.state === 'done' ? job : null;
      },
      timeoutMs,
      `job ${id} to finish`,
    );
  const install = async (boards: string, packages: string[], extra: { source?: boolean; target?: string } = {}) =>
    finished((await api().call('jobs.start', { kind: 'install', boards, packages, index: index.url, ...extra })).id);
  const fileRequests = () => index.requests.filter((request) => request.includes('/file/')).length;
  const boardFile = (relative: string) => readFile(path.join(mp.boards[0]!.folder, relative));

  beforeAll(async () => {
    index = await startPackageIndexLab(FIXTURES);
    index.corruptFile('tampered', '1.0', 'tampered.py');
    // pypiUrl '': the fallback is off, so a missing package never goes past the lab.
    service = await startManager({ heartbeatS: 1, pypiUrl: '' });
    work = await mkdtemp(path.join(os.tmpdir(), 'cm-install-'));
    [mp, refs, spares] = await Promise.all([
      startMicroPythonFleet({
        api: service.api,
        count: 1,
        prefix: 'mp',
        root: path.join(service.dataDir, 'boards'),
        server: { host: '127.0.0.1', port: service.redisPort },
      }),
      startVirtualFleet({ api: service.api, count: 20, prefix: 'ref', board: { reconnectMinMs: 100, bootDelayMs: 50 } }),
      startVirtualFleet({ api: service.api, count: 8, prefix: 'spare', board: { reconnectMinMs: 100, bootDelayMs: 50 } }),
    ]);
    await waitFor(async () => (await api().call('status', {})).boards.online === 29, 30_000, 'boards online');
  });
  afterAll(async () => {
    await mp?.close();
    await refs?.close();
    await spares?.close();
    await service?.close();
    await index?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('installs a package with two dependencies on a MicroPython board, compiled to .mpy, and it imports there', async () => {
    const job = await install('mp-1', ['greeter']);
    const target = job.targets[0]!;
    expect(target, target.message ?? '').toMatchObject({ status: 'ok', done: 4, total: 4 });
    expect(target.install).toMatchObject({ uploadedFiles: 4, skippedFiles: 0 });
    expect(target.message).toMatch(/^4 uploaded, 0 skipped, [\d.]+ K?B sent$/);
    expect(job.phases.map((phase) => phase.phase)).toEqual(expect.arrayContaining(['compile', 'boards']));

    const used = await run('mp-1', { op: 'exec', code: 'import greeter\nprint(greeter.hello("board"))' });
    expect(used.output.map((chunk) => chunk.text).join(''), used.error ?? '').toBe('HELLO BOARD! #1\n');
    await expect(boardFile('lib/greeter.py')).rejects.toThrow(/ENOENT/);

    // The files on the board are the .mpy the host compiles from the package's sources, and its data file as it is.
    const expected = {
      'lib/greeter.mpy': await compileToMpy('greeter.py', String(FIXTURES[0]!.files['greeter.py'])),
      'lib/fmtkit.mpy': await compileToMpy('fmtkit.py', String(FIXTURES[1]!.files['fmtkit.py'])),
      'lib/tally/__init__.mpy': await compileToMpy('tally/__init__.py', String(FIXTURES[2]!.files['tally/__init__.py'])),
      'lib/tally/words.txt': Buffer.from(String(FIXTURES[2]!.files['tally/words.txt'])),
    };
    for (const [file, data] of Object.entries(expected)) expect(sha256(await boardFile(file)), file).toBe(sha256(data));
    const bytes = Object.values(expected).reduce((sum, data) => sum + data.length, 0);
    expect(target.install!.bytes).toBe(bytes);

    const { packages } = await api().call('packages.list', { board: 'mp-1' });
    expect(packages.map((pkg) => [pkg.name, pkg.version, pkg.files.length, pkg.target])).toEqual([
      ['fmtkit', '0.3', 1, '/lib'],
      ['greeter', '1.2', 1, '/lib'],
      ['tally', '2.0', 2, '/lib'],
    ]);
    expect(packages[1]!.files).toEqual([{ path: '/lib/greeter.mpy', sha256: sha256(expected['lib/greeter.mpy']) }]);

    // Again: no file sent, none downloaded.
    const downloads = fileRequests();
    const again = await install('mp-1', ['greeter']);
    expect(again.targets[0]).toMatchObject({ status: 'ok', message: '0 uploaded, 4 skipped, 0 B sent' });
    expect(again.targets[0]!.install).toEqual({ uploadedFiles: 0, skippedFiles: 4, removedFiles: 0, bytes: 0 });
    expect(fileRequests()).toBe(downloads);
    // info, get of the record, one hash: no put (the record is unchanged too).
    const ops = await Promise.all(again.targets[0]!.cids.map(async (cid) => (await api().call('commands.get', { cid })).op));
    expect(ops).toEqual(['info', 'get', 'hash']);
  });

  it('with --source the .py files go as they are, and the .mpy of the earlier install are removed', async () => {
    expect((await install('mp-1', ['fmtkit'])).targets[0]!.status).toBe('ok');
    const job = await install('mp-1', ['fmtkit'], { source: true });
    expect(job.targets[0]).toMatchObject({ status: 'ok' });
    expect(job.targets[0]!.install).toMatchObject({ uploadedFiles: 1, removedFiles: 1 });
    expect((await boardFile('lib/fmtkit.py')).toString()).toBe(FIXTURES[1]!.files['fmtkit.py']);
    await expect(boardFile('lib/fmtkit.mpy')).rejects.toThrow(/ENOENT/);
    // A fresh interpreter state (the module was imported as .mpy above): soft reset by importing under a new name.
    const used = await run('mp-1', {
      op: 'exec',
      code: 'import sys\nsys.modules.pop("fmtkit", None)\nimport fmtkit\nprint(fmtkit.shout("x"), fmtkit.__file__)',
    });
    expect(used.output.map((chunk) => chunk.text).join(''), used.error ?? '').toBe('X! /lib/fmtkit.py\n');
  });

  it.each([
    ['a missing dependency', ['needs-missing'], /no-such-package/],
    ['two pins of one package', ['pins-a', 'pins-b'], /fmtkit/],
    ['a file whose hash does not match the index', ['tampered'], /tampered\.py/],
  ])('%s stops the install before anything is sent', async (_what, packages, message) => {
    const history = (await api().call('boards.history', { board: 'ref-1', count: 200 })).length;
    const jobs = (await api().call('jobs.list', {})).length;
    await expect(api().call('jobs.start', { kind: 'install', boards: 'ref-1', packages, index: index.url })).rejects.toThrow(message);
    expect((await api().call('boards.history', { board: 'ref-1', count: 200 })).length).toBe(history);
    // The job is kept as failed, with the reason, for whoever watched it prepare.
    const [failed] = await api().call('jobs.list', {});
    expect((await api().call('jobs.list', {})).length).toBe(jobs + 1);
    expect(failed).toMatchObject({ kind: 'install', state: 'done', counts: { failed: 1 } });
  });

  it('a tarball with ../ names, or a decompression bomb, is refused with a clear message', async () => {
    const traversal = path.join(work, 'evil-1.0.tar.gz');
    await writeFile(traversal, makeTarGz([{ name: 'evil-1.0/../../etc/evil.py', data: 'X = 1\n' }]));
    await expect(api().call('jobs.start', { kind: 'install', boards: 'ref-1', packages: [traversal], index: index.url })).rejects.toThrow(/\.\./);
    const bomb = path.join(work, 'bomb-1.0.tar.gz');
    await writeFile(bomb, makeTarGz([{ name: 'bomb-1.0/bomb.py', data: Buffer.alloc(17 * 1024 * 1024, 0x20) }]));
    await expect(api().call('jobs.start', { kind: 'install', boards: 'ref-1', packages: [bomb], index: index.url })).rejects.toThrow(/MiB|large|bomb/i);
    expect((await api().call('boards.history', { board: 'ref-1', count: 5 })).length).toBe(0);
  });

  it('installs on 20 boards at once and reports each', async () => {
    const job = await install('ref-*', ['greeter', 'other']);
    expect(job.counts).toMatchObject({ ok: 20, failed: 0 });
    for (const target of job.targets) {
      expect(target.install, target.board).toMatchObject({ uploadedFiles: 5, skippedFiles: 0 });
      expect(target.message).toMatch(/^5 uploaded, 0 skipped, [\d.]+ K?B sent$/);
    }
    const board = refs.byName('ref-7')!;
    expect(sha256(await board.fs.readFile('/lib/other.mpy'))).toBe(sha256(await compileToMpy('other.py', 'X = 7\n')));
  });

  it('with the index unreachable, an install works from the download cache of an earlier one', async () => {
    expect((await install('spare-8', ['fmtkit@0.3'])).counts.ok).toBe(1);
    await run('spare-8', { op: 'rm', path: '/lib/fmtkit.mpy' });
    index.offline(true);
    try {
      const job = await install('spare-8', ['fmtkit@0.3']);
      expect(job.targets[0], job.targets[0]!.message ?? '').toMatchObject({ status: 'ok', install: { uploadedFiles: 1, skippedFiles: 0 } });
      expect(job.phases.map((phase) => phase.message).join('\n')).toMatch(/offline/);
      // The service log says so too, not only the job.
      expect(service.logs.some((entry) => entry.level === 'warn' && /offline/.test(entry.message))).toBe(true);
    } finally {
      index.offline(false);
    }
  });

  it('two installs started at once on one board both end up in its record (one waits for the other)', async () => {
    const [first, second] = await Promise.all([
      api().call('jobs.start', { kind: 'install', boards: 'spare-7', packages: ['fmtkit@0.3'], index: index.url }),
      api().call('jobs.start', { kind: 'install', boards: 'spare-7', packages: ['other'], index: index.url }),
    ]);
    expect((await finished(first.id)).counts.ok).toBe(1);
    expect((await finished(second.id)).counts.ok).toBe(1);
    const { packages } = await api().call('packages.list', { board: 'spare-7' });
    expect(packages.map((pkg) => pkg.name)).toEqual(['fmtkit', 'other']);
  });

  it('uninstall removes exactly the package files: the other packages and the user files stay', async () => {
    expect((await install('spare-1', ['greeter', 'other'])).counts.ok).toBe(1);
    const mine = Buffer.from('MINE = 1\n');
    expect((await run('spare-1', { op: 'put', path: '/lib/mine.py', dataBase64: mine.toString('base64') })).status).toBe('ok');
    const job = await finished((await api().call('jobs.start', { kind: 'uninstall', boards: 'spare-1', packages: ['greeter', 'tally'] })).id);
    expect(job.targets[0]).toMatchObject({ status: 'ok', message: 'removed 3 files' });
    const listing = await run('spare-1', { op: 'ls', path: '/lib' });
    expect((listing.result as Array<[string, string, number]>).map(([name]) => name)).toEqual(['fmtkit.mpy', 'mine.py', 'other.mpy', 'tally']);
    const { packages } = await api().call('packages.list', { board: 'spare-1' });
    expect(packages.map((pkg) => pkg.name)).toEqual(['fmtkit', 'other']);
    const again = await finished((await api().call('jobs.start', { kind: 'uninstall', boards: 'spare-1', packages: ['greeter'] })).id);
    expect(again.targets[0]).toMatchObject({ status: 'failed', message: 'not installed here: greeter' });
  });

  it('an install to an offline board waits and completes when it comes back', async () => {
    const sleeper = spares.byName('spare-2')!;
    await sleeper.stop();
    await waitFor(async () => !(await api().call('boards.get', { board: 'spare-2' })).online, 10_000, 'spare-2 offline');
    const started = await api().call('jobs.start', { kind: 'install', boards: 'spare-6,spare-2', packages: ['other'], index: index.url });
    await waitFor(async () => (await api().call('jobs.get', { id: started.id })).counts.ok === 1, 10_000, 'spare-6 done');
    // On a loaded machine the service may have seen the board a moment longer; it shows as waiting once it knows it is gone.
    await waitFor(
      async () => (await api().call('jobs.get', { id: started.id })).targets.find((target) => target.board === 'spare-2')?.status === 'waiting',
      10_000,
      'spare-2 waiting',
    );
    // Its packages cannot be listed meanwhile: said so once the wait is over.
    await expect(api().call('packages.list', { board: 'spare-2', timeoutMs: 1_000 })).rejects.toThrow(
      'spare-2 is offline and did not come back within 1 s: list its packages once it is online',
    );
    sleeper.start();
    const done = await finished(started.id);
    expect(done.targets.find((target) => target.board === 'spare-2')).toMatchObject({
      status: 'ok',
      install: { uploadedFiles: 1, skippedFiles: 0, removedFiles: 0 },
    });
  });

  it('a cancelled install sends nothing more', async () => {
    const sleeper = spares.byName('spare-3')!;
    await sleeper.stop();
    await waitFor(async () => !(await api().call('boards.get', { board: 'spare-3' })).online, 10_000, 'spare-3 offline');
    // In the service itself, so Cancel comes while the board's first command is still being queued.
    const jobs = service.manager.jobService;
    const started = await jobs.launch({ kind: 'install', boards: 'spare-3', packages: ['fmtkit@0.2'], index: index.url });
    await jobs.cancel(started.id);
    const done = await finished(started.id);
    expect(done.targets[0]).toMatchObject({ status: 'failed', message: 'cancelled' });
    // Its first command (info) was withdrawn from the offline board's queue, and no other was sent.
    expect(await Promise.all(done.targets[0]!.cids.map(async (cid) => (await api().call('commands.get', { cid })).status))).toEqual(['cancelled']);
    sleeper.start();
  });

  it('the CLI installs, lists and uninstalls, with one JSON line per board', async () => {
    const mbm = (args: string[]) => runMbm(args, { dataDir: service.dataDir, cwd: work });
    const local = path.join(work, 'blink');
    await rm(local, { recursive: true, force: true });
    await mkdir(local);
    await writeFile(path.join(local, 'blink.py'), 'ON = True\n');

    const installed = await mbm(['board-install', 'spare-4,spare-5', 'other', './blink', '--index', index.url, '--json']);
    expect(installed.code, installed.stderr).toBe(0);
    const lines = installed.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines).toEqual([
      { board: 'spare-4', ok: true, uploaded_files: 2, skipped_files: 0, removed_files: 0, bytes: expect.any(Number) },
      { board: 'spare-5', ok: true, uploaded_files: 2, skipped_files: 0, removed_files: 0, bytes: expect.any(Number) },
    ]);
    expect(installed.stderr).toMatch(/spare-4: done/);

    const listed = await mbm(['board-packages', 'spare-4']);
    expect(listed.stdout).toMatch(/^NAME\s+VERSION\s+FILES\s+TARGET\n/);
    expect(listed.stdout).toMatch(/\nblink\s+\S+\s+1\s+\/lib\n/);

    const removed = await mbm(['board-uninstall', 'spare-4', 'blink']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toBe('spare-4: removed 1 file\n');

    const failed = await mbm(['board-install', 'spare-4', 'needs-missing', '--index', index.url]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/no-such-package/);
    const noFile = await mbm(['board-install', 'spare-4', './nope.py']);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toMatch(/nope\.py: no such file or folder/);
  });

  it('an install a stopped service left unfinished is reported failed after the restart, with what to do', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-install-restart-'));
    try {
      const first = await startManager({ dataDir, heartbeatS: 1, pypiUrl: '' });
      await first.api.call('boards.enroll', { name: 'away' });
      const started = await first.api.call('jobs.start', { kind: 'install', boards: 'away', packages: ['other'], index: index.url });
      expect((await first.api.call('jobs.get', { id: started.id })).targets[0]!.status).toBe('waiting');
      await first.manager.stop();
      const second = await startManager({ dataDir, heartbeatS: 1, pypiUrl: '' });
      try {
        const job = await second.api.call('jobs.get', { id: started.id });
        expect(job.targets[0]).toMatchObject({
          status: 'failed',
          message: 'the service stopped before this finished; install again: files already there are skipped',
        });
      } finally {
        await second.manager.stop();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

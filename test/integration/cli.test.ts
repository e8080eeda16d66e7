/**
 * The `mbm` command line as a user runs it: each verb in its own process, against a
 * service started in the background by `mbm server-start` (compiled CLI from dist/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/lab.js';
import { freeUdpPort } from '../helpers/discovery-client.js';
import { MBM, runMbm, type Run } from '../helpers/mbm-cli.js';

describe('mbm CLI against a background service', () => {
  let dataDir: string;
  let work: string;
  let redisPort: number;
  let discoveryPort: number;
  let sim: ChildProcess | undefined;
  let mpSim: ChildProcess | undefined;

  const mbm = (args: string[], input?: string): Promise<Run> => runMbm(args, { dataDir, cwd: work, input });

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-cli-'));
    work = await mkdtemp(path.join(os.tmpdir(), 'cm-cli-work-'));
    redisPort = await freePort();
    discoveryPort = await freeUdpPort();
  });
  afterAll(async () => {
    sim?.kill('SIGKILL');
    mpSim?.kill('SIGKILL');
    await mbm(['server-stop']).catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('server-start returns with the service running in the background', async () => {
    const started = await mbm(['server-start', '--port', String(redisPort), '--heartbeat', '1', '--discovery-port', String(discoveryPort)]);
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    expect(started.stdout).toContain(`127.0.0.1:${redisPort}`);
    // A sign-in link for the web UI: works once (a second use is refused).
    const signin = /Open the app: (http:\/\/127\.0\.0\.1:\d+\/signin\?code=\S+)/.exec(started.stdout)?.[1];
    expect(signin).toBeTruthy();
    const first = await fetch(signin!, { redirect: 'manual' });
    expect(first.status).toBe(303);
    expect(first.headers.get('set-cookie')).toMatch(/HttpOnly; SameSite=Strict/);
    expect((await fetch(signin!, { redirect: 'manual' })).status).toBe(403);
    const fresh = await mbm(['ui', '--no-open']);
    expect(fresh.code).toBe(0);
    expect(fresh.stdout).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/signin\?code=\S+\n$/);
    expect(fresh.stdout.trim()).not.toBe(signin);
    const status = await mbm(['server-status', '--json']);
    expect(status.code).toBe(0);
    const json = JSON.parse(status.stdout);
    expect(json).toMatchObject({ running: true, redis: { port: redisPort, external: false }, boards: { online: 0, total: 0 } });
    expect(json.discovery).toMatchObject({ port: discoveryPort, addresses: expect.arrayContaining([`127.0.0.1:${discoveryPort}`]) });
    expect((await mbm(['server-status'])).stdout).toContain(`Discovery on UDP 127.0.0.1:${discoveryPort}`);
    expect((await mbm(['server-start'])).stdout).toContain('already running');
  });

  it('runs virtual boards with `mbm sim` and lists them with board-list --json', async () => {
    sim = spawn(process.execPath, [MBM, 'sim', '--boards', '2', '--data-dir', dataDir], { stdio: 'ignore' });
    const boards = await waitFor(
      async () => {
        const list = await mbm(['board-list', '--json']);
        const parsed = JSON.parse(list.stdout) as Array<{ name: string; online: boolean; platform: string; lastSeen: number }>;
        return parsed.length === 2 && parsed.every((board) => board.online) ? parsed : null;
      },
      20_000,
      'two virtual boards online',
    );
    expect(boards.map((board) => board.name)).toEqual(['sim-1', 'sim-2']);
    expect(boards[0]).toMatchObject({ online: true, platform: 'virtual' });
    expect(typeof boards[0]!.lastSeen).toBe('number');
    const table = await mbm(['board-list']);
    expect(table.stdout).toMatch(/sim-1\s+online/);
  });

  it("board-execute streams each board's output under a header and fails when the code fails", async () => {
    const ok = await mbm(['board-execute', 'sim-*', '-c', 'print(6*7)']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('## sim-1\n42\n');
    expect(ok.stdout).toContain('## sim-2\n42\n');
    const failed = await mbm(['board-execute', 'sim-1'], 'print("before")\n1/0\n');
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('before\n');
    expect(failed.stderr).toContain('ZeroDivisionError');
    const unknown = await mbm(['board-execute', 'nope-[1-2]', '-c', 'pass']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no board named "nope-1", "nope-2"');
  });

  it('uploads and downloads a file with equal sha256, and refuses a DEST with ..', async () => {
    const data = randomBytes(50_000);
    await writeFile(path.join(work, 'payload.bin'), data);
    const refused = await mbm(['board-upload', 'sim-1', 'payload.bin', '/lib/../../x.bin']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('..');
    const uploaded = await mbm(['board-upload', 'sim-[1-2]', 'payload.bin', '/data/']);
    expect(uploaded.code).toBe(0);
    const digest = createHash('sha256').update(data).digest('hex');
    expect(uploaded.stdout.match(new RegExp(digest, 'g'))).toHaveLength(2);
    const downloaded = await mbm(['board-download', 'sim-2', '/data/payload.bin', 'back.bin']);
    expect(downloaded.code).toBe(0);
    expect(
      createHash('sha256')
        .update(await readFile(path.join(work, 'back.bin')))
        .digest('hex'),
    ).toBe(digest);
    const listing = await mbm(['board-ls', 'sim-2', '/data']);
    expect(listing.stdout).toMatch(/50000\s+payload\.bin/);
  });

  it('board-tag adds and removes tags, and tag:NAME selects boards everywhere', async () => {
    const tagged = await mbm(['board-tag', 'sim-*', '+garden', '+Outdoor']);
    expect(tagged.code).toBe(0);
    expect(tagged.stdout).toMatch(/sim-1\s+garden,outdoor/);
    expect((await mbm(['board-tag', 'sim-2', '-garden'])).stdout).toMatch(/sim-2\s+outdoor/);
    const ran = await mbm(['board-execute', 'tag:garden', '-c', 'print("in the garden")']);
    expect(ran.code).toBe(0);
    expect(ran.stdout).toBe('## sim-1\nin the garden\n');
    expect((await mbm(['board-list'])).stdout).toMatch(/sim-2\s+online.*outdoor/);
    const none = await mbm(['board-execute', 'tag:attic', '-c', 'pass']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no boards are tagged "attic"');
    const bad = await mbm(['board-tag', 'sim-1', '+bad tag']);
    expect(bad.code).not.toBe(0);
    expect((await mbm(['board-tag', 'sim-1', 'garden'])).stderr).toContain('+TAG');
  });

  it('board-reboot waits until the board is back online', async () => {
    const rebooted = await mbm(['board-reboot', 'sim-2']);
    expect(rebooted.stderr).toBe('');
    expect(rebooted.code).toBe(0);
    expect(rebooted.stdout).toBe('## sim-2\nrebooted, back online\n');
  });

  it('macros, enrollment and rename work from the command line', async () => {
    const settings = await mbm(['board', 'sim-1', 'settings']);
    expect(settings.stdout).toContain('password = "********"');
    const echo = await mbm(['board', 'sim-1', 'echo', 'it\'s "quoted"']);
    expect(echo.stdout).toContain('it\'s "quoted"');
    const enrolled = await mbm(['board-enroll', 'esp8266-001']);
    expect(enrolled.code).toBe(0);
    const file = path.join(work, 'esp8266-001.credentials.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ name: 'esp8266-001', user: expect.stringMatching(/^cmb-/), port: redisPort });
    expect(enrolled.stdout).not.toContain(JSON.parse(await readFile(file, 'utf8')).password);
    expect((await mbm(['board-rename', 'esp8266-001', 'garage'])).code).toBe(0);
    expect((await mbm(['board-list'])).stdout).toMatch(/garage\s+offline\s+never/);
  });

  it('a command for an offline board exits 4 (queued, not run) and board-download writes no file', async () => {
    expect((await mbm(['board-enroll', 'shed-1', '--out', 'shed-1.json'])).code).toBe(0);
    const download = await mbm(['board-download', 'shed-1', '/x.txt', 'shed.bin']);
    expect(download.code).toBe(4);
    expect(download.stderr).toContain('shed-1: offline; not run yet');
    await expect(stat(path.join(work, 'shed.bin'))).rejects.toThrow();
    const mixed = await mbm(['board-execute', 'sim-1,shed-1', '-c', 'print(1)']);
    expect(mixed.stdout).toBe('## sim-1\n1\n');
    expect(mixed.code).toBe(4);
    expect((await mbm(['board-execute', 'sim-1,shed-1', '-c', '1/0'])).code).toBe(1);
    const twice = await mbm(['board-enroll', 'shed-1', '--out', 'shed-1b.json']);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain('mbm board-enroll shed-1 --rotate');
  });

  it('server-start on another port while the service runs refuses and names the running port', async () => {
    const other = await mbm(['server-start', '--port', String(redisPort + 1)]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(`already running`);
    expect(other.stderr).toContain(`Redis on port ${redisPort}, not ${redisPort + 1}`);
    expect((await mbm(['server-start', '--port', String(redisPort)])).code).toBe(0);
  });

  it('Ctrl-C during board-execute cancels the command on the board and says so', async () => {
    const child = spawn(
      process.execPath,
      [MBM, 'board-execute', 'sim-1', '--data-dir', dataDir, '-c', 'import time\nfor i in range(100):\n  print(i)\n  time.sleep(0.2)'],
      { cwd: work, env: { ...process.env, CLOUDMANAGER_DATA_DIR: '' } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await waitFor(() => stdout.includes('\n1\n'), 20_000, 'the code running');
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain('## sim-1: cancelled: stopped with Ctrl-C');
    expect(stdout).not.toContain('\n99\n');
    const history = JSON.parse((await mbm(['board-history', 'sim-1', '--count', '1', '--json'])).stdout) as Array<{ status: string; summary: string }>;
    expect(history[0]).toMatchObject({ status: 'cancelled' });
  });

  it('messages say what to do: missing arguments, unknown verbs and options, ranges, non-empty folders, ports, firmware', async () => {
    const missing = await mbm(['board-execute']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^mbm board-execute: BOARDS is missing\n/);
    expect(missing.stderr).not.toContain('mbm board-execute: mbm board-execute');
    const verb = await mbm(['board-exec', 'sim-1']);
    expect(verb.code).toBe(2);
    expect(verb.stderr).toContain('unknown verb "board-exec"; did you mean board-execute?');
    const option = await mbm(['board-execute', 'sim-1', '--timout', '3', '-c', 'pass']);
    expect(option.code).toBe(2);
    expect(option.stderr).toContain('unknown option --timout; did you mean --timeout?');
    const range = await mbm(['board-execute', 'x-[1-200000]', '-c', 'pass']);
    expect(range.stderr).toContain('names 200,000 boards; at most 400');
    await writeFile(path.join(work, 'note.txt'), 'a note\n');
    expect((await mbm(['board-upload', 'sim-1', 'note.txt', '/full/'])).code).toBe(0);
    const notEmpty = await mbm(['board-rm', 'sim-1', '/full']);
    expect(notEmpty.code).toBe(1);
    expect(notEmpty.stderr).toContain('mbm board-rm sim-1 /full -r');
    const port = await mbm(['usb-put', '/dev/ttyUSB-none', 'note.txt', '/x.txt']);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('there is no serial port /dev/ttyUSB-none');
    expect(port.stderr).toContain('mbm usb-ports');
    const firmware = await mbm(['board-flash', '--port', path.join(work, 'note.txt'), '--firmware', 'nope.bin', '--no-provision']);
    expect(firmware.code).toBe(2);
    expect(firmware.stderr).toContain('no firmware of that name in the catalogue');
    expect(firmware.stderr).toContain('mbm firmware-download URL --sha256 HEX');
  });

  it('MicroPython boards: a missing file reads "no such file", a traceback shows only the user\'s frames, --timeout reports on time', async () => {
    mpSim = spawn(process.execPath, [MBM, 'sim', '--micropython', '--boards', '1', '--prefix', 'mp', '--data-dir', dataDir], { stdio: 'ignore' });
    await waitFor(
      async () => {
        const list = JSON.parse((await mbm(['board-list', '--json'])).stdout) as Array<{ name: string; online: boolean }>;
        return list.some((board) => board.name === 'mp-1' && board.online);
      },
      60_000,
      'a MicroPython board online',
    );
    for (const board of ['sim-1', 'mp-1']) {
      const missing = await mbm(['board-download', board, '/nope.txt', 'nope.bin']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain(`## ${board}: no such file`);
    }
    expect((await mbm(['board', 'mp-1', 'mkdir', '/d'])).code).toBe(0);
    await writeFile(path.join(work, 'mp-note.txt'), 'a note\n');
    expect((await mbm(['board-upload', 'mp-1', 'mp-note.txt', '/d/'])).code).toBe(0);
    expect((await mbm(['board', 'mp-1', 'sha256', '/d/mp-note.txt'])).stdout).toBe(`## mp-1\n${createHash('sha256').update('a note\n').digest('hex')}\n`);
    expect((await mbm(['board', 'mp-1', 'sha256', '/d'])).stdout).toBe('## mp-1\nnone: no such file, or a directory\n');
    expect((await mbm(['board-rm', 'mp-1', '/d'])).stderr).toContain('mbm board-rm mp-1 /d -r');
    const failed = await mbm(['board-execute', 'mp-1', '-c', 'def f():\n  1/0\nf()']);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe(
      '## mp-1\nTraceback (most recent call last):\n  File "<string>", line 3, in <module>\n  File "<string>", line 2, in f\nZeroDivisionError: divide by zero\n',
    );
    // This board cannot interrupt its code: the CLI reports the timeout itself, while the code still runs.
    const slow = await mbm(['board-execute', 'mp-1', '--timeout', '1', '-c', 'import time\nfor i in range(8):\n  print(i)\n  time.sleep(0.5)\nprint("done")']);
    expect(slow.code).toBe(1);
    expect(slow.stderr).toContain('## mp-1: timeout: no result within 1s; the board may still be running it');
    expect(slow.stdout).not.toContain('done');
  });

  it('every verb answers --help', async () => {
    const verbs = (await mbm(['--help'])).stdout.match(/^ {2}([a-z-]+)/gm)!.map((line) => line.trim());
    expect(verbs.length).toBeGreaterThan(12);
    const helps = await Promise.all(verbs.map((verb) => mbm([verb, '--help'])));
    expect(helps.map((help, index) => [verbs[index], help.code, help.stdout.startsWith(`Usage: mbm ${verbs[index]}`)])).toEqual(
      verbs.map((verb) => [verb, 0, true]),
    );
  });

  it('server-stop stops the service and its Redis', async () => {
    sim?.kill('SIGINT');
    mpSim?.kill('SIGINT');
    const status = JSON.parse((await mbm(['server-status', '--json'])).stdout);
    const stopped = await mbm(['server-stop']);
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toContain('stopped');
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor(() => !alive(status.pid) && !alive(status.redis.pid), 10_000, 'processes gone');
    const after = await mbm(['server-status']);
    expect(after.code).toBe(3);
    expect(after.stdout).toContain('not running');
  });
});

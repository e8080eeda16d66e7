/**
 * `mbm sim` never touches what is not its own, as a user would find out: their files in a
 * folder sim did not make survive, a real board's name is refused (its credentials keep
 * working), a virtual board's flash lasts from one run to the next like a board's, and
 * `--fresh` starts it over. The compiled CLI from dist/ against a service started by
 * `mbm server-start`, with MicroPython lab boards (like test/integration/cli.test.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { freeUdpPort } from '../helpers/discovery-client.js';
import { waitFor } from '../helpers/lab.js';
import { MBM, runMbm, type Run } from '../helpers/mbm-cli.js';

const RUNNING = 'running. Press Ctrl-C to stop.';

interface Sim {
  child: ChildProcess;
  output: () => string;
  /** The exit code once it has exited, else undefined. */
  exitCode: () => number | null | undefined;
}

describe('mbm sim and what is not its own', () => {
  let dataDir: string;
  let work: string;
  const sims: ChildProcess[] = [];

  const mbm = (args: string[]): Promise<Run> => runMbm(args, { dataDir, cwd: work });

  /** Starts `mbm sim` and waits until its boards run or it has exited (a refusal). */
  async function startSim(args: string[]): Promise<Sim> {
    const child = spawn(process.execPath, [MBM, 'sim', ...args, '--data-dir', dataDir], { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
    sims.push(child);
    let output = '';
    let exitCode: number | null | undefined;
    child.stdout!.on('data', (chunk) => (output += chunk));
    child.stderr!.on('data', (chunk) => (output += chunk));
    child.once('exit', (code) => (exitCode = code));
    await waitFor(() => output.includes(RUNNING) || exitCode !== undefined, 90_000, `mbm sim ${args.join(' ')} to run or exit`);
    return { child, output: () => output, exitCode: () => exitCode };
  }

  async function stopSim(sim: Sim): Promise<void> {
    if (sim.exitCode() !== undefined) return;
    sim.child.kill('SIGINT');
    await waitFor(() => sim.exitCode() !== undefined, 10_000, 'mbm sim to stop');
  }

  const boardList = async () =>
    JSON.parse((await mbm(['board-list', '--json'])).stdout) as Array<{ id: string; name: string; online: boolean; virtual: boolean }>;
  const isOnline = async (name: string) => (await boardList()).find((board) => board.name === name)?.online === true;
  const online = (name: string) => waitFor(() => isOnline(name), 60_000, `${name} online`);
  // Between runs: the board of the run before must not pass for this run's.
  const offline = (name: string) => waitFor(async () => !(await isOnline(name)), 10_000, `${name} offline`);

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-sim-own-'));
    work = await mkdtemp(path.join(os.tmpdir(), 'cm-sim-own-work-'));
    const started = await mbm([
      'server-start',
      '--port',
      String(await freePort()),
      '--api-port',
      String(await freePort()),
      '--heartbeat',
      '1',
      '--discovery-port',
      String(await freeUdpPort()),
    ]);
    expect(started.code).toBe(0);
  });

  afterAll(async () => {
    for (const child of sims) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await mbm(['server-stop']).catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it("refuses a folder it did not make: the user's files in DIR/keep-1 survive, with or without --fresh, and nothing is enrolled", async () => {
    const dir = path.join(work, 'mine');
    await mkdir(path.join(dir, 'keep-1'), { recursive: true });
    await writeFile(path.join(dir, 'keep-1', 'thesis.txt'), 'three years of work\n');
    for (const extra of [[], ['--fresh']]) {
      const sim = await startSim(['--micropython', '--fs', dir, '--prefix', 'keep', ...extra]);
      await stopSim(sim);
      expect(sim.exitCode()).toBe(1);
      expect(sim.output()).toContain(`${path.join(dir, 'keep-1')} exists and was not made by mbm sim`);
      expect(sim.output()).toContain('Nothing was touched');
      expect(await readdir(path.join(dir, 'keep-1'))).toEqual(['thesis.txt']);
      expect(await readFile(path.join(dir, 'keep-1', 'thesis.txt'), 'utf8')).toBe('three years of work\n');
    }
    expect((await boardList()).map((board) => board.name)).not.toContain('keep-1');
  });

  it("refuses the name of a real board: K-1's credentials keep working and it stays a real board", async () => {
    const enrolled = await mbm(['board-enroll', 'K-1', '--out', path.join(work, 'K-1.json')]);
    expect(enrolled.code).toBe(0);
    const credentials = JSON.parse(await readFile(path.join(work, 'K-1.json'), 'utf8')) as {
      id: string;
      user: string;
      password: string;
      server: string;
      port: number;
    };
    const before = (await boardList()).find((board) => board.name === 'K-1')!;
    expect(before.virtual).toBe(false);

    for (const args of [
      ['--prefix', 'K'],
      ['--micropython', '--prefix', 'K', '--fs', path.join(work, 'k-flash')],
    ]) {
      const sim = await startSim(args);
      await stopSim(sim);
      expect(sim.exitCode()).toBe(1);
      expect(sim.output()).toContain('"K-1" is a board that virtual boards may not take over');
      expect(sim.output()).toContain('mbm sim --prefix');
    }
    const board = new Redis({
      host: credentials.server,
      port: credentials.port,
      username: credentials.user,
      password: credentials.password,
      lazyConnect: true,
      enableReadyCheck: false,
    });
    try {
      await board.connect(); // AUTH with the board's own credentials
      expect(await board.ping()).toBe('PONG');
    } finally {
      board.disconnect();
    }
    expect((await boardList()).find((item) => item.name === 'K-1')).toMatchObject({ id: credentials.id, virtual: false });
    // Nothing of the refused MicroPython run was written either.
    await expect(readdir(path.join(work, 'k-flash', 'K-1'))).rejects.toThrow(/ENOENT/);
  });

  // Three runs of `mbm sim --micropython`, each starting a MicroPython interpreter and waiting
  // for the board online and offline: on a loaded machine that takes over the default 60 s.
  it("keeps a virtual board's files from one run to the next, lists it as virtual, and --fresh starts it over", { timeout: 180_000 }, async () => {
    const dir = path.join(work, 'flash');
    await writeFile(path.join(work, 'note.txt'), 'written on the board\n');

    const first = await startSim(['--micropython', '--fs', dir, '--prefix', 'mp']);
    expect(first.output()).toContain(RUNNING);
    await online('mp-1');
    expect((await mbm(['board-upload', 'mp-1', 'note.txt', '/note.txt'])).code).toBe(0);
    const listed = (await boardList()).find((board) => board.name === 'mp-1')!;
    expect(listed.virtual).toBe(true);
    expect((await mbm(['board-list'])).stdout).toMatch(/mp-1 .* \(virtual\)/);
    await stopSim(first);
    await offline('mp-1');

    const second = await startSim(['--micropython', '--fs', dir, '--prefix', 'mp']);
    expect(second.output()).toContain(RUNNING);
    await online('mp-1');
    const kept = await mbm(['board-download', 'mp-1', '/note.txt', 'kept.txt']);
    expect(kept.code).toBe(0);
    expect(await readFile(path.join(work, 'kept.txt'), 'utf8')).toBe('written on the board\n');
    expect((await boardList()).find((board) => board.name === 'mp-1')!.id).toBe(listed.id);
    await stopSim(second);
    await offline('mp-1');

    const fresh = await startSim(['--micropython', '--fs', dir, '--prefix', 'mp', '--fresh']);
    expect(fresh.output()).toContain(RUNNING);
    await online('mp-1');
    const gone = await mbm(['board-download', 'mp-1', '/note.txt', 'gone.txt']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('no such file');
    await stopSim(fresh);
  });
});

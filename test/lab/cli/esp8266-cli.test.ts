/**
 * `npm run lab:esp8266` as a user runs it (compiled from dist/, as npm runs it): --help,
 * a wrong option, and Ctrl-C or SIGTERM in any state, after which it has removed the
 * temp folder it made (TMPDIR points at a folder of the test's own, so other runs on the
 * machine do not matter).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../helpers/lab.js';
import { makeEsp8266Image } from '../esp8266-image.js';

const LAB = fileURLToPath(new URL('../../../dist/test/lab/cli/esp8266.js', import.meta.url));
/** Generous: it stops in well under 2 s; this only tells "stopped" from "hangs". */
const EXIT_WAIT_MS = 10_000;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

describe('lab:esp8266', () => {
  const tmpDirs: string[] = [];
  afterEach(async () => {
    await Promise.all(tmpDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  async function start(args: string[]) {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'cm-lab-cli-'));
    tmpDirs.push(tmp);
    const child = spawn(process.execPath, [LAB, ...args], { env: { ...process.env, TMPDIR: tmp }, stdio: ['pipe', 'pipe', 'pipe'] });
    const run: Run = { code: null, signal: null, stdout: '', stderr: '' };
    child.stdout.on('data', (chunk) => (run.stdout += chunk));
    child.stderr.on('data', (chunk) => (run.stderr += chunk));
    const exited = new Promise<Run>((resolve) => child.once('exit', (code, signal) => resolve(Object.assign(run, { code, signal }))));
    return { child, run, exited, tmp };
  }

  /** Sends the signal, waits for the exit, and checks nothing was left in its temp folder. */
  async function stopWith(lab: Awaited<ReturnType<typeof start>>, signal: NodeJS.Signals, state: string) {
    const sent = performance.now();
    lab.child.kill(signal);
    let done: Run | undefined;
    void lab.exited.then((run) => (done = run));
    await waitFor(() => done, EXIT_WAIT_MS, `lab:esp8266 to exit after ${signal} (${state})`);
    console.log(`[lab:esp8266] ${state}: exit ${Math.round(performance.now() - sent)} ms after ${signal}`);
    expect(await readdir(lab.tmp)).toEqual([]);
    return done!;
  }

  it('prints its help with --help and exits 0; a wrong option gets the usage and exit code 2', async () => {
    const help = await (await start(['--help'])).exited;
    expect([help.code, help.stderr]).toEqual([0, '']);
    expect(help.stdout).toMatch(/^Runs a simulated ESP8266/);
    expect(help.stdout).toContain('--adapter auto');
    expect(help.stdout).toContain('--dir DIR');
    const wrong = await (await start(['--adapter', 'auto', '--colour', 'blue'])).exited;
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/^Unknown option '--colour'\nusage: npm run lab:esp8266/);
    expect(wrong.stderr).not.toContain('    at ');
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`unplugs on ${signal} and removes its temp folder: running, in download mode, running MicroPython, and still starting`, async () => {
      const running = await start(['--adapter', 'auto']);
      await waitFor(() => running.run.stdout.includes('in its firmware'), 20_000, 'the board to run');
      expect(running.run.stdout).toContain(`(flash and files in ${running.tmp}${path.sep}cm-esp8266-`);
      const first = await stopWith(running, signal, 'booted from an empty flash');
      expect([first.code, first.stdout.endsWith('unplugged\n')]).toEqual([0, true]);

      const download = await start(['--adapter', 'unwired', '--boot', 'download']);
      await waitFor(() => download.run.stdout.includes('in download mode'), 20_000, 'the board in download mode');
      expect((await stopWith(download, signal, 'download mode')).code).toBe(0);

      // MicroPython running (a flash folder of the test's own, with MicroPython written at 0x0):
      // its first boot has written boot.py.
      const dir = await mkdtemp(path.join(os.tmpdir(), 'cm-lab-cli-flash-'));
      tmpDirs.push(dir);
      const flash = Buffer.alloc(4 * 1024 * 1024, 0xff);
      makeEsp8266Image({ size: 64 * 1024 }).copy(flash, 0);
      await writeFile(path.join(dir, 'flash.bin'), flash);
      const micropython = await start(['--adapter', 'auto', '--dir', dir]);
      await waitFor(() => existsSync(path.join(dir, 'fs', 'boot.py')), 20_000, "MicroPython's first boot");
      expect((await stopWith(micropython, signal, 'running MicroPython')).code).toBe(0);

      // Still loading: whether the signal lands before or after it set up its handlers, it ends.
      const starting = await start(['--adapter', 'auto']);
      await waitFor(() => starting.child.pid, 5_000, 'the process');
      await stopWith(starting, signal, 'starting');
    });
  }
});

/**
 * `mbm sim` stops when asked, whatever became of its service: killed (its boards wait to
 * reconnect), or hung (its Redis takes connections' data but never answers). Each sim
 * gets SIGTERM or SIGINT and must exit; the time it took is printed. (Compiled CLI from
 * dist/, like test/integration/cli.test.ts.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/lab.js';

const MBM = fileURLToPath(new URL('../../bin/mbm.js', import.meta.url));
/** Generous: stopping takes well under 2 s; this only tells "stopped" from "hangs". */
const EXIT_WAIT_MS = 10_000;

interface Sim {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('mbm sim when its service has gone away', () => {
  const cleanups: Array<() => Promise<void> | void> = [];

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const mbm = (dataDir: string, args: string[]) =>
    new Promise<{ code: number; stdout: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [MBM, ...args, '--data-dir', dataDir], {
        env: { ...process.env, CLOUDMANAGER_DATA_DIR: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (chunk) => (stdout += chunk));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stdout }));
    });

  /** A background service of its own; returns its pid and its Redis's. */
  async function startService(): Promise<{ dataDir: string; pid: number; redisPid: number }> {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-sim-stop-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const started = await mbm(dataDir, ['server-start', '--port', String(await freePort())]);
    expect(started.code).toBe(0);
    const status = JSON.parse((await mbm(dataDir, ['server-status', '--json'])).stdout);
    const service = { dataDir, pid: status.pid as number, redisPid: status.redis.pid as number };
    cleanups.push(() => {
      // Whatever the test did to them (stopped, killed), they go now.
      for (const pid of [service.pid, service.redisPid]) if (alive(pid)) process.kill(pid, 'SIGKILL');
    });
    return service;
  }

  async function startSim(dataDir: string, prefix: string): Promise<Sim> {
    const child = spawn(process.execPath, [MBM, 'sim', '--boards', '2', '--prefix', prefix, '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (chunk) => (output += chunk));
    child.stderr!.on('data', (chunk) => (output += chunk));
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    await waitFor(() => output.includes('running. Press Ctrl-C to stop.'), 20_000, `${prefix} boards running`);
    return { child, output: () => output, exit };
  }

  /** Sends the signal and waits for the sim to exit; returns the time it took. */
  async function stopSim(sim: Sim, signal: NodeJS.Signals): Promise<number> {
    const sent = performance.now();
    sim.child.kill(signal);
    let code: number | null | undefined;
    void sim.exit.then((value) => (code = value));
    await waitFor(() => code !== undefined, EXIT_WAIT_MS, `mbm sim to exit after ${signal}`);
    const took = Math.round(performance.now() - sent);
    expect(code).toBe(0);
    expect(sim.output()).toMatch(/virtual boards stopped/);
    return took;
  }

  it('stops on SIGTERM and on SIGINT once its service was killed', async () => {
    const service = await startService();
    const [termSim, intSim] = [await startSim(service.dataDir, 'term'), await startSim(service.dataDir, 'int')];
    process.kill(service.pid, 'SIGKILL'); // its Redis follows it (a child that dies with it)
    await waitFor(() => !alive(service.pid) && !alive(service.redisPid), 10_000, 'the service and its Redis to end');
    const [term, int] = await Promise.all([stopSim(termSim, 'SIGTERM'), stopSim(intSim, 'SIGINT')]);
    console.log(`[sim-stop] service killed: exit ${term} ms after SIGTERM, ${int} ms after SIGINT`);
  });

  it('stops on SIGTERM and on SIGINT while its service hangs (its Redis never answers the goodbye)', async () => {
    const service = await startService();
    const [termSim, intSim] = [await startSim(service.dataDir, 'term'), await startSim(service.dataDir, 'int')];
    process.kill(service.redisPid, 'SIGSTOP');
    process.kill(service.pid, 'SIGSTOP');
    const [term, int] = await Promise.all([stopSim(termSim, 'SIGTERM'), stopSim(intSim, 'SIGINT')]);
    console.log(`[sim-stop] service hung: exit ${term} ms after SIGTERM, ${int} ms after SIGINT`);
  });
});

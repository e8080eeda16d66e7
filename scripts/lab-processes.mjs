// What the lab's command-line runs (`npm run chaos`, `npm run fuzz`) share: the service as
// a process of its own (`mbm server-start --foreground` in a temp data folder, with its
// embedded redis-server), lab boards as processes (test/lab/cli/board.ts), a seedable
// random source and the memory of a process. Everything here runs from dist/ (the
// scripts' npm pre-steps build it).
import { spawn } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const root = fileURLToPath(new URL('..', import.meta.url));
const { ApiClient } = await import(path.join(root, 'dist/electron/manager/api/client.js'));

/**
 * The command line of script `name`: its options parsed (`--help` prints `usage`), a
 * mistake reported with the usage (exit code 2), and numbers checked against their range.
 */
export function scriptArgs(name, usage, options) {
  const usageError = (message) => {
    process.stderr.write(`${name}: ${message}\n${usage}`);
    process.exit(2);
  };
  let values;
  try {
    ({ values } = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h' } } }));
  } catch (error) {
    usageError(error.message);
  }
  if (values.help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  const number = (option, fallback, min, max, integer) => {
    if (values[option] === undefined) return fallback;
    const value = Number(values[option]);
    if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value)))
      usageError(`--${option} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
    return value;
  };
  return { values, usageError, number };
}

/** A run's temp folder (`cm-<name>-…`) with `data/` and `logs/`, and `log`, which writes `logs/<name>.log`. */
export async function runFolders(name) {
  const work = await mkdtemp(path.join(os.tmpdir(), `cm-${name}-`));
  const logDir = path.join(work, 'logs');
  await mkdir(logDir, { recursive: true });
  const diagnostics = createWriteStream(path.join(logDir, `${name}.log`));
  const log = (message) => diagnostics.write(`${new Date().toISOString()} ${message}\n`);
  return { work, dataDir: path.join(work, 'data'), logDir, logFile: path.join(logDir, `${name}.log`), diagnostics, log };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** mulberry32: small, seedable, good enough to pick kills and payloads. */
export function random(seedValue) {
  let state = seedValue >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return {
    next,
    between: ([low, high]) => low + next() * (high - low),
    /** An integer from 0 to n - 1. */
    below: (n) => Math.floor(next() * n),
    pick: (items) => items[Math.floor(next() * items.length)],
  };
}

/**
 * Starts the service on a data folder: `mbm server-start --foreground` with its output
 * piped into `out` (a writable stream, left open). Resolves with the child once its API
 * answers `status`; rejects when it exits or is not ready within `timeoutMs` (the child is
 * then killed).
 */
export async function startService({ dataDir, redisPort, apiPort, out, args = [], timeoutMs = 60_000 }) {
  const child = spawn(
    process.execPath,
    [path.join(root, 'bin/mbm.js'), 'server-start', '--foreground', '--data-dir', dataDir, '--port', String(redisPort), '--api-port', String(apiPort), ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(out, { end: false });
  child.stderr.pipe(out, { end: false });
  let exitCode = null;
  child.once('exit', (code, signal) => (exitCode = signal ?? code));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && exitCode === null) {
    const info = await readFile(path.join(dataDir, 'service.json'), 'utf8').then(JSON.parse, () => null);
    const token = await readFile(path.join(dataDir, 'secrets', 'api.token'), 'utf8').then(
      (text) => text.trim(),
      () => null,
    );
    if (info?.pid === child.pid && token) {
      const api = new ApiClient(info.apiUrl, token);
      const status = await api.call('status', {}).catch(() => null);
      if (status) return { child, pid: child.pid, api, status };
    }
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(exitCode === null ? `not ready in ${Math.round(timeoutMs / 1000)} s` : `exited: ${exitCode}`);
}

/**
 * Starts one lab board process (`--kind reference|micropython`) on its credentials file and
 * flash folder, its output appended to `logFile`. `exited` resolves when it is gone.
 */
export function startBoardProcess({ kind, credsFile, fsDir, out }) {
  const child = spawn(process.execPath, [path.join(root, 'dist/test/lab/cli/board.js'), '--kind', kind, credsFile, fsDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(out, { end: false });
  child.stderr.pipe(out, { end: false });
  const exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      out.end(`--- exited (${signal ?? `code ${code}`})\n`);
      resolve();
    }),
  );
  return { child, exited };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child has exited. */
export async function stopProcess(child, exited, graceMs) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  child.kill('SIGTERM');
  await exited;
  clearTimeout(timer);
}

/** Resident memory of a process in MB (Linux /proc); undefined when it is gone. */
export function rssMbOf(pid) {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    return kb > 0 ? kb / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Whether process `pid` still runs (a zombie does not; Linux /proc). */
export function isRunning(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The redis-server child of process `pid` (Linux /proc); undefined when it has none. */
export function redisChildOf(pid) {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (/^Name:\s+redis-server$/m.test(status) && new RegExp(`^PPid:\\s+${pid}$`, 'm').test(status)) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

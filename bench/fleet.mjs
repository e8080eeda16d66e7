// npm run bench:fleet -- --boards N [--samples 200] [--rounds 3]
//
// Starts a manager (its own embedded redis-server, temp data folder) and N virtual boards in
// separate processes, then measures, through the API as a client sees it:
//   connect_s     spawning the virtual-board processes → all N boards online (includes enrollment)
//   rtt_p50/p99   one exec of print(1) on one board: API call → result event (sequential samples)
//   broadcast_s   print(1) sent to all boards → every result back (median of --rounds)
//   *_rss_mb      resident memory of the manager and of redis-server afterwards
// Prints one JSON line. Needs `npm run build` (done by npm's prebench hook of this script).
//
// Where the time goes: `node bench/fleet.mjs --boards 10000 --cpu-prof-dir /tmp/cm-prof` starts the manager with
// V8's --cpu-prof and writes /tmp/cm-prof/fleet-profile.json (each broadcast's window, CPU per process, Redis
// commandstats and memory per board; bench/fleet-profile.mjs); then
// `node scripts/cpuprofile-summary.mjs /tmp/cm-prof` sums the manager's CPU per function and file in those windows.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuProfileArgs, startFleetProfile } from './fleet-profile.mjs';
import { freeTcpPort } from './ports.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { findService } = await import(path.join(root, 'dist/electron/cli/service-control.js'));

const { values } = parseArgs({
  options: {
    boards: { type: 'string', default: '1000' },
    samples: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
    'per-process': { type: 'string', default: '2500' },
    'cpu-prof-dir': { type: 'string' },
  },
});
const boards = Number(values.boards);
const samples = Number(values.samples);
const rounds = Number(values.rounds);
const perProcess = Number(values['per-process']);
const profileDir = values['cpu-prof-dir'] && path.resolve(values['cpu-prof-dir']);

const mbm = path.join(root, 'bin', 'mbm.js');
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-bench-'));
const redisPort = await freeTcpPort();
const children = [];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function start(args, label, nodeArgs = []) {
  const child = spawn(process.execPath, [...nodeArgs, mbm, ...args, '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk) => (tail = (tail + chunk).slice(-4000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('exit', (code) => {
    if (code && !stopping) process.stderr.write(`bench: ${label} exited with ${code}\n${tail}\n`);
  });
  children.push(child);
  return child;
}

async function waitUntil(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function rssMb(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round((Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024) * 10) / 10;
}

/** Ids of some boards of every sim process (named `v<process>-<n>`; not v1-1, which takes the RTT samples), for the per-key memory sample. */
async function sampleBoardIds(api) {
  const names = [];
  for (let index = 0; index < Math.ceil(boards / perProcess); index++)
    for (let n = 2; n <= Math.min(11, perProcess, boards); n++) names.push(`v${index + 1}-${n}`);
  return Promise.all(names.map(async (name) => (await api.call('boards.get', { board: name })).id));
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
let stopping = false;

try {
  const manager = start(
    ['server-start', '--foreground', '--port', String(redisPort), '--heartbeat', '5'],
    'manager',
    profileDir ? cpuProfileArgs(profileDir) : [],
  );
  const api = await waitUntil(async () => (await findService(dataDir))?.client, 30_000, 'the manager');

  // Boards in processes of up to --per-process each (one MicroPython interpreter per process).
  const processes = Math.ceil(boards / perProcess);
  const connectStart = performance.now();
  for (let index = 0; index < processes; index++) {
    const count = Math.min(perProcess, boards - index * perProcess);
    start(['sim', '--boards', String(count), '--prefix', `v${index + 1}`], `virtual boards ${index + 1}`);
  }
  await waitUntil(async () => (await api.call('status', {})).boards.online === boards, 600_000, `${boards} boards online`);
  const connectS = (performance.now() - connectStart) / 1000;

  let profile = null;
  if (profileDir) {
    const redisPid = (await api.call('status', {})).redis.pid;
    const pids = () => ({ manager: manager.pid, redis: redisPid, boards: children.slice(1).map((child) => child.pid), bench: process.pid });
    const processesOf = () => {
      const { boards: boardPids, ...rest } = pids();
      return { ...rest, ...Object.fromEntries(boardPids.map((pid, index) => [`boards_${index + 1}`, pid])) };
    };
    profile = await startFleetProfile({ dataDir, redisPort, profileDir, processes: processesOf });
    await profile.measureMemory('idle_after_connect', boards, await sampleBoardIds(api));
  }

  // Results arrive as events; each waiter resolves when its command is final.
  const waiters = new Map();
  const finished = new Map();
  const subscription = await api.events((event) => {
    if (event.type !== 'command' || !['ok', 'error', 'timeout', 'expired', 'lost', 'cancelled'].includes(event.command.status)) return;
    finished.set(event.command.cid, event.command.status);
    waiters.get(event.command.cid)?.(event.command.status);
  });
  const resultOf = (cid) => (finished.has(cid) ? Promise.resolve(finished.get(cid)) : new Promise((resolve) => waiters.set(cid, resolve)));

  const rtts = [];
  for (let i = 0; i < samples + 10; i++) {
    const began = performance.now();
    const { commands } = await api.call('commands.send', { boards: 'v1-1', request: { op: 'exec', code: 'print(1)' } });
    const status = await resultOf(commands[0].cid);
    if (status !== 'ok') throw new Error(`bench: rtt sample ended ${status}`);
    if (i >= 10) rtts.push(performance.now() - began); // the first few warm everything up
  }
  rtts.sort((a, b) => a - b);

  const broadcasts = [];
  for (let round = 0; round < rounds; round++) {
    const closeWindow = await profile?.beginWindow(`broadcast ${round + 1}`);
    const began = performance.now();
    const { commands } = await api.call('commands.send', { boards: 'v*', request: { op: 'exec', code: 'print(1)' } });
    const statuses = await Promise.all(commands.map((command) => resultOf(command.cid)));
    broadcasts.push((performance.now() - began) / 1000);
    await closeWindow?.();
    const failed = statuses.filter((status) => status !== 'ok').length;
    if (failed > 0) throw new Error(`bench: ${failed} of ${commands.length} broadcast commands failed`);
    await sleep(500);
  }
  broadcasts.sort((a, b) => a - b);
  subscription.close();
  if (profile) {
    await profile.measureMemory('after_broadcasts', boards, await sampleBoardIds(api));
    await profile.finish();
  }

  const status = await api.call('status', {});
  const result = {
    boards,
    connect_s: Number(connectS.toFixed(2)),
    rtt_p50_ms: Number(percentile(rtts, 50).toFixed(2)),
    rtt_p99_ms: Number(percentile(rtts, 99).toFixed(2)),
    broadcast_s: Number(broadcasts[Math.floor(broadcasts.length / 2)].toFixed(3)),
    manager_rss_mb: await rssMb(manager.pid),
    redis_rss_mb: await rssMb(status.redis.pid),
    rtt_samples: rtts.length,
    broadcast_rounds_s: broadcasts.map((seconds) => Number(seconds.toFixed(3))),
    board_processes: processes,
  };
  console.log(JSON.stringify(result));
} finally {
  stopping = true;
  for (const child of children.slice(1)) child.kill('SIGINT');
  await sleep(500);
  children[0]?.kill('SIGTERM');
  await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))));
  await rm(dataDir, { recursive: true, force: true });
}

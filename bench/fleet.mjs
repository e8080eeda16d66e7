// npm run bench:fleet -- --boards N [--samples 200] [--rounds 3] [--redis-url URL | --redis embedded,cluster]
//
// Starts a manager (temp data folder) and N virtual boards in separate processes, then measures,
// through the API as a client sees it:
//   connect_s      spawning the virtual-board processes → all N boards online (includes enrollment)
//   rtt_p50/p99    one exec of print(1) on one board: API call → result event (sequential samples); that board
//                  runs in a process of its own (v0-1); rtt_slowest_ms: the slowest 1 %, split by the manager's clock;
//                  rtt_median_split_ms: each part's median over all samples
//   broadcast_s    print(1) sent to all boards → every result back (median of --rounds; broadcast_rounds_s: each, in order)
//   manager_cpu_s_per_broadcast  the manager's CPU seconds (user + system) per broadcast round
//   broadcast_cpu_s  CPU seconds per broadcast round of the manager, redis-server (every node), the virtual
//                  boards' processes and their total: on a machine shared with the boards, the broadcast's
//                  time is about this total over the cores (less noisy than the time itself for an A/B)
//   redis_bytes_per_board  (Redis used_memory with the boards connected and idle − before any board
//                  existed) / N, summed over every primary; "idle" is after the broadcasts, no command for
//                  3 s, averaged over two heartbeat periods (redis_bytes_per_board_range: lowest, highest)
//   idle_cpu_s_per_s  CPU seconds per second that redis-server (every node), the manager and the board
//                  processes use in that idle window: what heartbeats cost
//   *_rss_mb       resident memory of the manager and of redis-server (every node of a lab cluster) at the end, idle;
//                  manager_rss_peak_mb the manager's highest (VmHWM)
//   managers       managers sharing the Redis (--managers N, default 1). With N > 1 the others stand by
//                  (their own data folders, as on other computers) and the RTT samples and broadcasts go
//                  through the last of them, as a user on a standby's computer sees them: each request
//                  passes through Redis to the active manager and its events come back the same way
//                  (standby_cpu_s_per_broadcast: that standby's CPU per round)
// Where the data lives: --redis embedded (the manager's own redis-server, the default), --redis cluster (a
// 3-primary/1-replica Redis Cluster on loopback started for the run and stopped after it), or --redis-url URL
// (a Redis you run; `server-start --redis-url URL`; it should hold no other fleet). Lists run every
// combination in one go: `--boards 1000,10000 --redis embedded,cluster` prints ONE line {"runs":[{…},…]};
// a single combination prints the flat object.
// Needs `npm run build` (done by npm's prebench hook of this script).
//
// Where the time goes: `node bench/fleet.mjs --boards 10000 --cpu-prof-dir /tmp/cm-prof` starts the manager with
// V8's --cpu-prof and writes /tmp/cm-prof/fleet-profile.json (each broadcast's window, CPU per process, Redis
// commandstats and memory per board; bench/fleet-profile.mjs); then
// `node scripts/cpuprofile-summary.mjs /tmp/cm-prof` sums the manager's CPU per function and file in those windows.
// Where the manager's memory goes: --heap-snapshot-dir DIR writes a V8 heap snapshot of the idle manager there;
// --manager-node-args='--max-semi-space-size=8 …' tries V8/Node options on the manager alone;
// --boards-node-args the same on the virtual boards' processes (e.g. `--cpu-prof --cpu-prof-dir=DIR`).
// With several combinations each gets a subfolder <redis>-<boards> of those folders.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuProfileArgs, cpuSeconds, startFleetProfile } from './fleet-profile.mjs';
import { embeddedPrimary, memoryReader, primariesOf, startClusterLab } from './fleet-redis.mjs';
import { freeTcpPort } from './ports.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { findService } = await import(path.join(root, 'dist/electron/cli/service-control.js'));

const { values } = parseArgs({
  options: {
    boards: { type: 'string', default: '1000' },
    samples: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
    'per-process': { type: 'string', default: '2500' },
    heartbeat: { type: 'string', default: '5' },
    redis: { type: 'string' },
    'redis-url': { type: 'string' },
    'redis-binary': { type: 'string' },
    'cpu-prof-dir': { type: 'string' },
    'heap-snapshot-dir': { type: 'string' },
    'manager-node-args': { type: 'string' },
    'boards-node-args': { type: 'string' },
    managers: { type: 'string', default: '1' },
  },
});

function positiveInt(text, what) {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`bench: ${what} must be a whole number ≥ 1, not ${JSON.stringify(text)}`);
  return value;
}
const boardCounts = values.boards.split(',').map((text) => positiveInt(text.trim(), '--boards'));
const samples = positiveInt(values.samples, '--samples');
const rounds = positiveInt(values.rounds, '--rounds');
const perProcess = positiveInt(values['per-process'], '--per-process');
const heartbeatS = positiveInt(values.heartbeat, '--heartbeat');
const managerCount = positiveInt(values.managers, '--managers');
if (values['redis-url'] && values.redis) throw new Error('bench: give --redis-url or --redis, not both');
const targets = values['redis-url'] ? ['url'] : (values.redis ?? 'embedded').split(',').map((name) => name.trim());
for (const name of values.redis ? targets : [])
  if (!['embedded', 'cluster'].includes(name)) throw new Error(`bench: --redis takes embedded and/or cluster, not ${JSON.stringify(name)}`);
const combinations = targets.flatMap((redis) => boardCounts.map((boards) => ({ redis, boards })));
const folderFor = (option, combination) =>
  option && path.resolve(combinations.length > 1 ? path.join(option, `${combination.redis}-${combination.boards}`) : option);

const mbm = path.join(root, 'bin', 'mbm.js');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function waitUntil(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Resident memory now (VmRSS) or at its highest so far (VmHWM), in MB. */
async function rssMb(pid, field = 'VmRSS') {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1];
  if (kb === undefined) throw new Error(`bench: no ${field} for process ${pid} (${/State:\s+(.*)/.exec(status)?.[1] ?? 'gone'})`);
  return Math.round((Number(kb) / 1024) * 10) / 10;
}

/** Asks the manager (started with --heapsnapshot-signal) for a heap snapshot; resolves once it is written. */
async function heapSnapshot(manager, api, dir) {
  await mkdir(dir, { recursive: true });
  const snapshots = async () => (await readdir(dir).catch(() => [])).filter((name) => name.endsWith('.heapsnapshot'));
  const before = (await snapshots()).length;
  manager.kill('SIGUSR2');
  await waitUntil(async () => (await snapshots()).length > before, 120_000, 'the heap snapshot to start');
  // The manager writes it on its main thread: once the API answers again, the file is complete.
  await api.call('status', {});
  const name = (await snapshots()).sort().at(-1);
  return { file: path.join(dir, name), mb: Math.round((await stat(path.join(dir, name))).size / 1e5) / 10 };
}

/**
 * CPU seconds per second of wall time that each group of processes uses from now until the
 * returned function is called (heartbeats and their handling, when the fleet is idle).
 */
async function cpuOver(groups) {
  const total = async () => {
    const sums = {};
    for (const [label, pids] of Object.entries(groups)) sums[label] = (await Promise.all(pids.map(cpuSeconds))).reduce((sum, s) => sum + (s ?? 0), 0);
    return sums;
  };
  const before = await total();
  const startedAt = performance.now();
  return async () => {
    const after = await total();
    const seconds = (performance.now() - startedAt) / 1000;
    return Object.fromEntries(Object.keys(groups).map((label) => [label, Number(((after[label] - before[label]) / seconds).toFixed(3))]));
  };
}

/** One manager, one Redis, `boards` virtual boards: the measurements of one combination. */
async function runFleet({ redis, boards }) {
  const profileDir = folderFor(values['cpu-prof-dir'], { redis, boards });
  // The manager writes its profile there only when it exits, after the bench's own summary.
  if (profileDir) await mkdir(profileDir, { recursive: true });
  const snapshotDir = folderFor(values['heap-snapshot-dir'], { redis, boards });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-bench-'));
  const children = [];
  let stopping = false;
  let lab = null;
  let memory = null;

  const standbyDirs = [];
  function start(args, label, nodeArgs = [], folder = dataDir) {
    const child = spawn(process.execPath, [...nodeArgs, mbm, ...args, '--data-dir', folder], { stdio: ['ignore', 'pipe', 'pipe'] });
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

  // The RTT samples' board, v0-1, has a process of its own (with more boards: see below); the others are v<process>-<n>.
  const rttAlone = boards > 1;
  const fleetBoards = rttAlone ? boards - 1 : boards;
  /** Ids of some boards of every sim process (not the RTT samples' board), for the per-key memory sample. */
  async function sampleBoardIds(api) {
    const names = [];
    for (let index = 0; index < Math.ceil(fleetBoards / perProcess); index++)
      for (let n = rttAlone ? 1 : 2; n <= Math.min(11, perProcess, fleetBoards); n++) names.push(`v${index + 1}-${n}`);
    return Promise.all(names.map(async (name) => (await api.call('boards.get', { board: name })).id));
  }

  try {
    const redisPort = redis === 'embedded' ? await freeTcpPort() : undefined;
    if (redis === 'cluster') lab = await startClusterLab(root);
    const redisUrl = redis === 'cluster' ? lab.url : values['redis-url'];
    const redisArgs =
      redis === 'embedded'
        ? ['--port', String(redisPort), ...(values['redis-binary'] ? ['--redis-binary', values['redis-binary']] : [])]
        : ['--redis-url', redisUrl];
    const nodeArgs = [
      ...(profileDir ? cpuProfileArgs(profileDir) : []),
      ...(snapshotDir ? [`--heapsnapshot-signal=SIGUSR2`, `--diagnostic-dir=${snapshotDir}`] : []),
      ...(values['manager-node-args']?.split(' ').filter(Boolean) ?? []),
    ];
    const manager = start(['server-start', '--foreground', ...redisArgs, '--heartbeat', String(heartbeatS)], 'manager', nodeArgs);
    const activeApi = await waitUntil(async () => (await findService(dataDir))?.client, 60_000, 'the manager');
    // Standby managers: on the same Redis (the embedded one with the manager's own user), each with its own folder.
    const standbys = [];
    for (let index = 1; index < managerCount; index++) {
      const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-bench-standby-'));
      standbyDirs.push(folder);
      const url =
        redis === 'embedded'
          ? `redis://cm-manager:${encodeURIComponent((await readFile(path.join(dataDir, 'secrets', 'redis-manager.password'), 'utf8')).trim())}@127.0.0.1:${redisPort}`
          : redisUrl;
      const child = start(['server-start', '--foreground', '--redis-url', url, '--heartbeat', String(heartbeatS)], `standby manager ${index}`, [], folder);
      const client = await waitUntil(async () => (await findService(folder))?.client, 60_000, `standby manager ${index}`);
      if ((await client.call('status', {})).manager.role !== 'standby') throw new Error(`bench: manager ${index + 1} did not stand by`);
      standbys.push({ child, api: client });
    }
    // What the user drives: the last standby when there are several managers.
    const api = standbys.at(-1)?.api ?? activeApi;
    const managerProcesses = children.length;

    const primaries = redis === 'embedded' ? await embeddedPrimary(dataDir, redisPort) : await primariesOf(redisUrl, root);
    memory = await memoryReader(primaries);
    const memoryBefore = await memory.usedMemory();

    // Boards in processes of up to --per-process each (one MicroPython interpreter per process). The
    // RTT samples' board runs alone in one: a lab process runs its boards' code one at a time on one
    // event loop, so a board among 2,500 waits behind its neighbours' heartbeats, which a real chip never does.
    const processes = Math.ceil(fleetBoards / perProcess);
    const connectStart = performance.now();
    const boardNodeArgs = values['boards-node-args']?.split(' ').filter(Boolean) ?? [];
    if (rttAlone) start(['sim', '--boards', '1', '--prefix', 'v0'], 'the RTT board', boardNodeArgs);
    for (let index = 0; index < processes; index++) {
      const count = Math.min(perProcess, fleetBoards - index * perProcess);
      start(['sim', '--boards', String(count), '--prefix', `v${index + 1}`], `virtual boards ${index + 1}`, boardNodeArgs);
    }
    await waitUntil(async () => (await api.call('status', {})).boards.online === boards, 600_000, `${boards} boards online`);
    const connectS = (performance.now() - connectStart) / 1000;
    // redis-server's processes: every node of a lab cluster, the embedded one, or none known (--redis-url).
    const embeddedPid = (await activeApi.call('status', {})).redis.pid;
    const redisPids = lab ? lab.pids() : embeddedPid ? [embeddedPid] : [];

    let profile = null;
    if (profileDir) {
      const processesOf = () => ({
        manager: manager.pid,
        ...(embeddedPid ? { redis: embeddedPid } : {}),
        bench: process.pid,
        ...Object.fromEntries(standbys.map((standby, index) => [`standby_${index + 1}`, standby.child.pid])),
        ...Object.fromEntries(children.slice(managerProcesses).map((child, index) => [`boards_${index + 1}`, child.pid])),
      });
      // Per-key memory covers the first primary's keys only when the Redis is a cluster.
      profile = await startFleetProfile({ redisOptions: primaries[0], profileDir, processes: processesOf });
      await profile.measureMemory('idle_after_connect', boards, await sampleBoardIds(api));
    }

    // Results arrive as events; each waiter resolves when its command is final.
    const waiters = new Map();
    const finished = new Map();
    const FINAL = ['ok', 'error', 'timeout', 'expired', 'lost', 'cancelled'];
    const settle = (command) => {
      if (!FINAL.includes(command.status) || finished.has(command.cid)) return;
      finished.set(command.cid, command);
      waiters.get(command.cid)?.(command);
    };
    const subscription = await api.events((event) => {
      // Events the service dropped for a slow bench (resync): ask for the open commands' state.
      if (event.type === 'resync') void api.call('commands.wait', { cids: [...waiters.keys()], timeoutMs: 0 }).then((views) => views.forEach(settle));
      if (event.type === 'command') settle(event.command);
    });
    const resultOf = (cid) =>
      (finished.has(cid) ? Promise.resolve(finished.get(cid)) : new Promise((resolve) => waiters.set(cid, resolve))).then((command) => {
        waiters.delete(cid);
        return command;
      });

    const rtts = [];
    const closeRttWindow = await profile?.beginWindow('rtt samples');
    // Where a slow sample's time went, by the manager's clock (createdAt, startedAt, finishedAt of the command):
    // before the board started it (queue, claim, its `start` read back), on the board, and after (result to this client).
    const breakdowns = [];
    for (let i = 0; i < samples + 10; i++) {
      const began = performance.now();
      const sentAt = Date.now();
      const { commands } = await api.call('commands.send', { boards: rttAlone ? 'v0-1' : 'v1-1', request: { op: 'exec', code: 'print(1)' } });
      const { status, error, createdAt, startedAt, finishedAt } = await resultOf(commands[0].cid);
      if (status !== 'ok') throw new Error(`bench: rtt sample ended ${status}: ${error}`);
      const ms = performance.now() - began;
      if (i < 10) continue; // the first few warm everything up
      rtts.push(ms);
      breakdowns.push({
        ms,
        request: createdAt - sentAt,
        to_start: startedAt - createdAt,
        on_board: finishedAt - startedAt,
        to_client: sentAt + ms - finishedAt,
      });
    }
    await closeRttWindow?.();
    rtts.sort((a, b) => a - b);
    breakdowns.sort((a, b) => b.ms - a.ms);
    const slowest = breakdowns.slice(0, Math.max(2, Math.ceil(breakdowns.length / 100)));
    const rttSlowest = slowest.map((sample) => Object.fromEntries(Object.entries(sample).map(([key, value]) => [key, Math.round(value)])));
    // The typical sample split the same way: each part's median, in ms.
    const medianOf = (key) =>
      percentile(
        breakdowns.map((sample) => sample[key]).sort((a, b) => a - b),
        50,
      );
    const rttMedianSplit = Object.fromEntries(['request', 'to_start', 'on_board', 'to_client'].map((key) => [key, Math.round(medianOf(key) * 10) / 10]));

    const broadcasts = [];
    // Every process's CPU, for broadcast_cpu_s (the bench's own is left out: it is the client).
    const boardPids = children.slice(managerProcesses).map((child) => child.pid);
    const sum = (numbers) => numbers.reduce((total, value) => total + (value ?? 0), 0);
    const cpuOfAll = async () => ({
      manager: await cpuSeconds(manager.pid),
      ...(redisPids.length > 0 ? { redis: sum(await Promise.all(redisPids.map(cpuSeconds))) } : {}),
      boards: sum(await Promise.all(boardPids.map(cpuSeconds))),
    });
    const allCpuS = {};
    let standbyCpuS = 0;
    const driven = standbys.at(-1)?.child;
    for (let round = 0; round < rounds; round++) {
      const allBefore = await cpuOfAll();
      const standbyCpuBefore = driven ? await cpuSeconds(driven.pid) : 0;
      const closeWindow = await profile?.beginWindow(`broadcast ${round + 1}`);
      const began = performance.now();
      // A lab board starts a command (claims it) at once but its code waits for its process's one
      // interpreter, behind up to 2,499 others: a slow round would time out at the default 30 s.
      const { commands } = await api.call('commands.send', { boards: 'v*', request: { op: 'exec', code: 'print(1)' }, timeoutMs: 300_000 });
      const statuses = await Promise.all(commands.map((command) => resultOf(command.cid)));
      broadcasts.push((performance.now() - began) / 1000);
      for (const [name, value] of Object.entries(await cpuOfAll())) allCpuS[name] = (allCpuS[name] ?? 0) + value - allBefore[name];
      if (driven) standbyCpuS += (await cpuSeconds(driven.pid)) - standbyCpuBefore;
      await closeWindow?.();
      const failed = statuses.filter((command) => command.status !== 'ok');
      if (failed.length > 0) {
        // Say how they failed: counts per status and the first few distinct errors.
        const counts = {};
        for (const command of failed) counts[command.status] = (counts[command.status] ?? 0) + 1;
        const errors = [...new Set(failed.map((command) => command.error).filter(Boolean))].slice(0, 3);
        throw new Error(`bench: ${failed.length} of ${commands.length} broadcast commands failed: ${JSON.stringify(counts)} ${errors.join(' | ')}`);
      }
      await sleep(500);
    }
    // The rounds in the order they ran (a sorted list read as a trend); the median from a sorted copy.
    const sortedBroadcasts = [...broadcasts].sort((a, b) => a - b);
    subscription.close();

    // Idle: no command for 3 s (what a board does between heartbeats is all that is left), then two heartbeat periods.
    await sleep(3_000);
    const idleCpu = await cpuOver({
      redis: redisPids,
      manager: [manager.pid],
      boards: children.filter((child) => child.spawnargs.includes('sim')).map((child) => child.pid),
    });
    const idle = await memory.overPeriod(2 * heartbeatS);
    const idleCpuPerS = await idleCpu();
    const perBoard = (bytes) => Math.round((bytes - memoryBefore) / boards);
    if (profile) {
      await profile.measureMemory('idle_after_broadcasts', boards, await sampleBoardIds(api));
      await profile.finish();
    }
    // Before any snapshot: writing one takes memory of its own.
    const managerRss = await rssMb(manager.pid);
    const managerPeakRss = await rssMb(manager.pid, 'VmHWM');
    const snapshot = snapshotDir ? await heapSnapshot(manager, activeApi, snapshotDir) : null;

    const redisRss = redisPids.length ? (await Promise.all(redisPids.map((pid) => rssMb(pid)))).reduce((sum, mb) => sum + mb, 0) : null;
    return {
      boards,
      redis,
      managers: managerCount,
      ...(driven ? { via: 'standby', standby_cpu_s_per_broadcast: Number((standbyCpuS / rounds).toFixed(2)) } : {}),
      connect_s: Number(connectS.toFixed(2)),
      rtt_p50_ms: Number(percentile(rtts, 50).toFixed(2)),
      rtt_p99_ms: Number(percentile(rtts, 99).toFixed(2)),
      broadcast_s: Number(sortedBroadcasts[Math.floor(sortedBroadcasts.length / 2)].toFixed(3)),
      redis_bytes_per_board: perBoard(idle.mean),
      redis_bytes_per_board_range: [perBoard(idle.min), perBoard(idle.max)],
      idle_cpu_s_per_s: idleCpuPerS,
      manager_cpu_s_per_broadcast: Number((allCpuS.manager / rounds).toFixed(2)),
      broadcast_cpu_s: Object.fromEntries(
        Object.entries({ ...allCpuS, total: sum(Object.values(allCpuS)) }).map(([name, value]) => [name, Number((value / rounds).toFixed(2))]),
      ),
      manager_rss_mb: managerRss,
      manager_rss_peak_mb: managerPeakRss,
      redis_rss_mb: redisRss === null ? null : Math.round(redisRss * 10) / 10,
      rtt_samples: rtts.length,
      rtt_median_split_ms: rttMedianSplit,
      rtt_slowest_ms: rttSlowest,
      broadcast_rounds_s: broadcasts.map((seconds) => Number(seconds.toFixed(3))),
      board_processes: processes + (rttAlone ? 1 : 0),
      heartbeat_s: heartbeatS,
      ...(snapshot ? { heap_snapshot: snapshot.file, heap_snapshot_mb: snapshot.mb } : {}),
    };
  } finally {
    stopping = true;
    memory?.close();
    for (const child of children.slice(1 + standbyDirs.length)) child.kill('SIGINT');
    await sleep(500);
    for (const child of children.slice(1, 1 + standbyDirs.length)) child.kill('SIGTERM');
    children[0]?.kill('SIGTERM');
    await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))));
    await lab?.stop();
    for (const folder of [dataDir, ...standbyDirs]) await rm(folder, { recursive: true, force: true });
  }
}

if (combinations.length === 1) {
  console.log(JSON.stringify(await runFleet(combinations[0])));
} else {
  // A combination that fails is reported in its place; the others still run.
  const runs = [];
  for (const combination of combinations) {
    try {
      runs.push(await runFleet(combination));
    } catch (error) {
      process.exitCode = 1;
      runs.push({ ...combination, error: error.message });
    }
  }
  console.log(JSON.stringify({ runs }));
}

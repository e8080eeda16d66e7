// `npm run chaos -- --minutes N`: the service and its boards under kill -9. The manager
// (`mbm server-start --foreground`, which embeds redis-server), its redis-server child and
// board processes (the lab's board CLI: TypeScript reference boards and MicroPython
// clients in WebAssembly, each its own process with a host folder as flash) are killed
// at random while a driver sends exec, put and get. Afterwards every command must have
// one final status that agrees with what the boards' flash shows: no exec run twice or
// reported run when it did not, no file other than a version that was sent, no command
// that vanished, and the manager's memory flat. Prints ONE JSON line on stdout; the
// diagnostics go to a log (its path on stderr). Exit code 1 when anything was violated.
// npm's prechaos builds the TypeScript (dist/).
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freeTcpPort } from '../bench/ports.mjs';
import { checkRun, rssSummary } from './chaos-checks.mjs';
import { commandLedger, nextRequest, sha256 } from './chaos-commands.mjs';
import { isRunning, random, redisChildOf, root, rssMbOf, runFolders, scriptArgs, sleep, startBoardProcess, startService } from './lab-processes.mjs';

const USAGE = `usage: npm run chaos -- [--minutes N] [--seed S] [--boards-ts K] [--boards-mpy K] [--kill WHAT] [--keep]
  --minutes N     how long to kill things (fractions allowed; default 1)
  --seed S        seed of the random choices (default: random, printed in the result)
  --boards-ts K   TypeScript reference boards (default 2)
  --boards-mpy K  MicroPython boards (default 2)
  --kill WHAT     what may be killed, comma-separated: board, redis, manager (default all three)
  --keep          keep the temp folder (data, flash folders, logs) even when all went well
Prints one JSON line: {"minutes","commands","byStatus","kills","violations","violationCount","managerRssMb",…}.
`;

const { values, usageError, number } = scriptArgs('chaos', USAGE, {
  minutes: { type: 'string' },
  seed: { type: 'string' },
  'boards-ts': { type: 'string' },
  'boards-mpy': { type: 'string' },
  kill: { type: 'string' },
  keep: { type: 'boolean' },
});
const minutes = number('minutes', 1, 0.05, 24 * 60, false);
const seed = number('seed', Math.floor(Math.random() * 2 ** 31), 0, 2 ** 31 - 1, true);
const boardsTs = number('boards-ts', 2, 0, 16, true);
const boardsMpy = number('boards-mpy', 2, 0, 16, true);
if (boardsTs + boardsMpy === 0) usageError('at least one board is needed');
const victims = (values.kill ?? 'board,redis,manager')
  .split(',')
  .map((word) => word.trim())
  .filter(Boolean);
if (victims.length === 0 || victims.some((victim) => !['board', 'redis', 'manager'].includes(victim))) usageError('--kill takes board, redis and/or manager');

// Timings of the run. Commands may wait out a manager or Redis outage, so they expire late.
const EXPIRE_MS = 60_000;
const EXEC_TIMEOUT_MS = 10_000;
const KILL_EVERY_MS = [3_000, 10_000];
const BOARD_OFF_MS = [500, 3_000];
const MANAGER_OFF_MS = [1_000, 3_000];
const RSS_EVERY_MS = 3_000;
const FILES_PER_BOARD = 3;
const QUEUE_DEPTH = 3;

const { ApiRequestError } = await import(path.join(root, 'dist/electron/manager/api/client.js'));

const rng = random(seed);

const { work, dataDir, logDir, logFile, diagnostics, log } = await runFolders('chaos');
process.stderr.write(`chaos: ${minutes} min, seed ${seed}, ${boardsTs}+${boardsMpy} boards; log ${logFile}\n`);

const redisPort = await freeTcpPort();
const apiPort = await freeTcpPort();
const started = Date.now();
const kills = { board: 0, redis: 0, manager: 0 };
const findings = []; // violations seen while running (the rest are found by checkRun)
const note = (violation) => {
  findings.push(violation);
  log(`VIOLATION ${violation}`);
};

// --- the manager -----------------------------------------------------------------------

const manager = { child: null, pid: 0, api: null, redisPid: 0, lifetimes: [], ready: null, starts: 0 };

async function startManager() {
  const out = createWriteStream(path.join(logDir, 'manager.log'), { flags: 'a' });
  for (let attempt = 1; ; attempt++) {
    manager.starts++;
    out.write(`--- start ${manager.starts}\n`);
    let failure;
    try {
      const { child, api, status } = await startService({ dataDir, redisPort, apiPort, out, args: ['--heartbeat', '2', '--verbose'] });
      Object.assign(manager, { child, pid: child.pid, api, redisPid: status.redis.pid ?? 0 });
      manager.lifetimes.push({ pid: child.pid, startedAt: Date.now(), samples: [] });
      log(`manager up: pid ${child.pid}, redis pid ${manager.redisPid} (attempt ${attempt})`);
      return;
    } catch (error) {
      failure = error.message;
    }
    // The next start must work on a machine where the last one was killed: one that does
    // not is a finding, and the run goes on with another attempt.
    note(`manager start ${manager.starts} failed (${failure}); see manager.log`);
    if (attempt >= 3) throw new Error('the manager does not start again; see manager.log');
    await sleep(2_000);
  }
}

/** SIGKILL of the manager; its redis-server must go with it (PR_SET_PDEATHSIG) before the next start. */
async function killManager() {
  const { child } = manager;
  // Its redis-server now (the supervisor may have restarted it since the manager started).
  const redisPid = redisChildOf(child.pid) ?? manager.redisPid;
  manager.api = null;
  manager.child = null;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  const killedAt = Date.now();
  const deadline = killedAt + 15_000;
  while (redisPid && isRunning(redisPid) && Date.now() < deadline) await sleep(50);
  log(`manager ${child.pid} killed; its redis-server ${redisPid} ${isRunning(redisPid) ? 'is still running' : `was gone ${Date.now() - killedAt} ms later`}`);
  if (redisPid && isRunning(redisPid)) {
    note(`redis-server ${redisPid} outlived its killed manager by 15 s`);
    process.kill(redisPid, 'SIGKILL');
  }
}

/** The API of the running manager; waits while it is down. */
async function api() {
  while (!manager.api || manager.ready) {
    if (manager.ready) await manager.ready;
    else await sleep(100);
  }
  return manager.api;
}

/** Calls the API; an unreachable manager (killed) is waited for and the call repeated — except for sends. */
async function call(route, input, { retry = true } = {}) {
  for (;;) {
    const client = await api();
    try {
      return await client.call(route, input, { signal: AbortSignal.timeout(30_000) });
    } catch (error) {
      const unreachable = error instanceof ApiRequestError && error.code === 'unreachable';
      if (!retry || !unreachable) throw error;
      await sleep(200);
    }
  }
}

function sampleRss() {
  const lifetime = manager.lifetimes.at(-1);
  if (!manager.child || !lifetime || lifetime.pid !== manager.pid) return;
  const mb = rssMbOf(manager.pid);
  if (mb === undefined) return; // gone between the check and the read
  lifetime.samples.push({ t: Date.now(), mb });
  if (lifetime.samples.length % 10 === 1)
    log(`manager ${manager.pid} RSS ${Math.round(mb)} MB, ${Math.round((Date.now() - lifetime.startedAt) / 1000)} s after its start`);
}

// --- boards ------------------------------------------------------------------------------

const boards = [];

function startBoard(board) {
  const out = createWriteStream(board.logFile, { flags: 'a' });
  board.starts++;
  out.write(`--- start ${board.starts}\n`);
  const { child, exited } = startBoardProcess({ kind: board.kind, credsFile: board.credsFile, fsDir: board.fsDir, out });
  board.exited = exited;
  board.child = child;
}

async function killBoard(board) {
  const child = board.child;
  board.child = null;
  child.kill('SIGKILL');
  await board.exited;
}

async function enrollBoards() {
  const specs = [
    ...Array.from({ length: boardsTs }, (_, index) => ({ name: `chaos-ts-${index + 1}`, kind: 'reference' })),
    ...Array.from({ length: boardsMpy }, (_, index) => ({ name: `chaos-mp-${index + 1}`, kind: 'micropython' })),
  ];
  const enrolled = await call('boards.enrollMany', { names: specs.map((spec) => spec.name) });
  for (const [index, credentials] of enrolled.entries()) {
    const board = {
      ...specs[index],
      id: credentials.id,
      fsDir: path.join(work, 'flash', credentials.name),
      credsFile: path.join(work, `${credentials.name}.json`),
      logFile: path.join(logDir, `${credentials.name}.log`),
      child: null,
      exited: Promise.resolve(),
      starts: 0,
      files: Array.from({ length: FILES_PER_BOARD }, () => ({ versions: new Set(), putOk: false })),
    };
    await mkdir(board.fsDir, { recursive: true });
    await writeFile(board.credsFile, JSON.stringify({ ...credentials, server: '127.0.0.1', port: redisPort }), { mode: 0o600 });
    boards.push(board);
    startBoard(board);
  }
}

async function waitAllOnline(timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const status = await call('status', {}).catch(() => null);
    if (status && status.boards.online === boards.length) return true;
    await sleep(500);
  }
  return false;
}

// --- the driver: commands and what became of them --------------------------------------

const { commands, settle, resolveOpen } = commandLedger({ boards, call, log, note });
let stopping = false;

async function driveBoard(board) {
  while (!stopping) {
    const seq = commands.length;
    const { entry, request } = nextRequest({ rng, seed, board, seq, filesPerBoard: FILES_PER_BOARD, execTimeoutMs: EXEC_TIMEOUT_MS });
    const command = { seq, board: board.name, ...entry, sentAt: Date.now(), cid: null, sendOutcome: 'pending', status: null, errorCode: null, error: null };
    commands.push(command);
    try {
      const {
        commands: [view],
      } = await call('commands.send', { boards: board.name, request, expireMs: EXPIRE_MS }, { retry: false });
      command.cid = view.cid;
      command.sendOutcome = 'sent';
      log(
        `${command.op} #${seq} ${view.cid} to ${board.name}${command.token ? ` token ${command.token}` : ''}${command.file !== undefined ? ` /f-${command.file}.bin` : ''}`,
      );
      settle(command, view);
    } catch (error) {
      // Unreachable: the manager may have queued it before it died. Anything else: refused.
      command.sendOutcome = error instanceof ApiRequestError && error.code === 'unreachable' ? 'unknown' : 'refused';
      command.error = error.message;
      log(`send ${seq} to ${board.name}: ${command.sendOutcome}: ${error.message}`);
      await sleep(300);
      continue;
    }
    // A few commands queued per board, so kills find boards between claim and start, in
    // the middle of one, and with more waiting. A command not finished within 20 s no
    // longer holds its place (the resolver follows it to its end).
    await sleep(rng.between([50, 400]));
    const queued = () => commands.filter((item) => item.board === board.name && item.cid && item.status === null && Date.now() - item.sentAt < 20_000).length;
    while (!stopping && queued() >= QUEUE_DEPTH) await sleep(100);
  }
}

async function resolver() {
  let listedAt = 0;
  while (!stopping) {
    await resolveOpen().catch((error) => log(`resolver: ${error.message}`));
    if (Date.now() - listedAt >= 5_000) {
      listedAt = Date.now();
      await logBoards();
    }
    await sleep(1_000);
  }
}

/** For the log: which boards the manager sees, and since when it has not heard from them. */
async function logBoards() {
  const list = await manager.api?.call('boards.list', {}).catch(() => null);
  if (list)
    log(
      `boards: ${list.map((board) => `${board.name} ${board.online ? 'online' : 'OFFLINE'} ${board.lastSeen ? `${Math.round((Date.now() - board.lastSeen) / 1000)}s` : '-'}${board.busy ? ' busy' : ''}`).join(', ')}`,
    );
}

// --- the killer --------------------------------------------------------------------------

async function killer(until) {
  while (Date.now() < until) {
    await sleep(Math.min(rng.between(KILL_EVERY_MS), Math.max(0, until - Date.now())));
    if (Date.now() >= until) break;
    // Boards twice as often: there are several of them.
    const victim = rng.pick(['board', 'board', 'redis', 'manager'].filter((name) => victims.includes(name)));
    if (victim === 'board') {
      const board = rng.pick(boards);
      log(`kill board ${board.name} (pid ${board.child.pid})`);
      await killBoard(board);
      kills.board++;
      await sleep(rng.between(BOARD_OFF_MS));
      startBoard(board);
    } else if (victim === 'redis') {
      const status = await manager.api?.call('status', {}).catch(() => null);
      if (!status?.redis.pid) continue;
      log(`kill redis-server (pid ${status.redis.pid})`);
      process.kill(status.redis.pid, 'SIGKILL');
      kills.redis++;
    } else {
      log(`kill manager (pid ${manager.pid})`);
      let restarted;
      manager.ready = new Promise((resolve) => (restarted = resolve));
      try {
        await killManager();
        kills.manager++;
        await sleep(rng.between(MANAGER_OFF_MS));
        await startManager();
      } finally {
        manager.ready = null;
        restarted();
      }
    }
  }
}

// --- the run -------------------------------------------------------------------------------

let exitCode;
const rssTimer = setInterval(sampleRss, RSS_EVERY_MS);
const onSignal = () => {
  log('interrupted');
  stopping = true;
  cleanUp().finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

async function cleanUp() {
  clearInterval(rssTimer);
  await Promise.all(
    boards
      .filter((board) => board.child)
      .map(async (board) => {
        const timer = setTimeout(() => board.child?.kill('SIGKILL'), 5_000);
        board.child.kill('SIGTERM');
        await board.exited;
        clearTimeout(timer);
      }),
  );
  if (manager.child) {
    const child = manager.child;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.kill('SIGTERM');
    await exited;
    clearTimeout(timer);
  }
}

let result;
try {
  await startManager();
  await enrollBoards();
  if (!(await waitAllOnline(90_000))) throw new Error('the boards did not come online within 90 s; see their logs');
  log('all boards online; chaos begins');
  const until = Date.now() + minutes * 60_000;
  const drivers = boards.map((board) => driveBoard(board));
  const following = resolver();
  await killer(until);
  log('killing stopped; waiting for everything to come back');
  stopping = true;
  await Promise.all([...drivers, following]);
  const online = await waitAllOnline(120_000);
  if (!online) note('not every board came back online within 120 s after the last kill');
  // Back means working: every board must run a command sent now (a board stuck after a
  // kill would only show as expired commands otherwise).
  const probes = await Promise.all(
    boards.map((board) =>
      call('commands.send', { boards: board.name, request: { op: 'exec', code: 'print(1)' }, expireMs: EXPIRE_MS }).then(
        ({ commands: [view] }) => view.cid,
        (error) => (note(`${board.name}: probe not sent: ${error.message}`), null),
      ),
    ),
  );
  // Every command ends at the latest when it expires (60 s) or times out once taken.
  const deadline = Date.now() + EXPIRE_MS + EXEC_TIMEOUT_MS + 60_000;
  let open = Infinity;
  while (Date.now() < deadline && open > 0) {
    open = await resolveOpen().catch((error) => (log(`final resolve: ${error.message}`), Infinity));
    if (open > 0) await sleep(1_000);
  }
  const probed = await call('commands.wait', { cids: probes.filter(Boolean), timeoutMs: EXPIRE_MS + 5_000 }).catch(() => []);
  for (const [index, board] of boards.entries()) {
    const view = probed.find((item) => item.cid === probes[index]);
    if (probes[index] && view?.status !== 'ok')
      note(`${board.name} does not run commands after the chaos: print(1) ended ${view?.status ?? 'unknown'}${view?.error ? ` (${view.error})` : ''}`);
  }
  const histories = new Map();
  for (const board of boards) histories.set(board.name, await call('boards.history', { board: board.name, count: 200 }));
  const flash = new Map();
  for (const board of boards) {
    const chaosLog = await readFile(path.join(board.fsDir, 'chaos.log'), 'utf8').catch(() => '');
    const files = board.files.map((_, index) => {
      const file = path.join(board.fsDir, `f-${index}.bin`);
      return existsSync(file) ? sha256(readFileSync(file)) : null;
    });
    const leftovers = board.files.map((_, index) => `f-${index}.bin.part`).filter((name) => existsSync(path.join(board.fsDir, name)));
    flash.set(board.name, { chaosLog, files, leftovers });
  }
  const checked = checkRun({ commands, boards, flash, histories });
  const violations = [...findings, ...checked.violations];
  const rss = rssSummary(manager.lifetimes);
  violations.push(...rss.violations);
  result = {
    minutes,
    seed,
    commands: commands.filter((command) => command.cid).length,
    byStatus: checked.byStatus,
    sendsUnanswered: commands.filter((command) => command.sendOutcome === 'unknown').length,
    kills,
    violations: violations.slice(0, 20),
    violationCount: violations.length,
    managerRssMb: rss.summary,
    partFilesLeft: checked.leftovers,
    elapsedS: Math.round((Date.now() - started) / 1000),
  };
  exitCode = violations.length > 0 ? 1 : 0;
  for (const violation of violations) log(`violation: ${violation}`);
} catch (error) {
  log(`run failed: ${error.stack ?? error.message}`);
  result = {
    minutes,
    seed,
    commands: commands.filter((command) => command.cid).length,
    kills,
    violations: [`run failed: ${error.message}`],
    violationCount: 1,
  };
  exitCode = 1;
} finally {
  stopping = true;
  await cleanUp().catch((error) => log(`clean-up: ${error.message}`));
}
await new Promise((resolve) => diagnostics.end(resolve));
if (exitCode === 0 && !values.keep) await rm(work, { recursive: true, force: true });
else {
  result.logs = logDir;
  process.stderr.write(`chaos: data, flash folders and logs kept in ${work}\n`);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(exitCode);

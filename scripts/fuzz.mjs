// `npm run fuzz -- --messages N [--seed S]`: one board turned hostile. The service runs as
// `mbm server-start --foreground` in a temp data folder with three lab reference boards
// (processes of their own) that keep answering commands this tool sends them one after
// the other, while a fourth enrolled board sends N malformed, oversized and wrong-typed
// messages with its own credentials (scripts/fuzz-messages.mjs): uplink entries of every
// kind, its state hash, cm_claim with bad cursors, its queue, commands it may not run, and
// bytes that are not RESP. A board the service suspends (a budget) is re-enabled through
// the API when that route exists, else replaced by a newly enrolled one.
// Prints ONE JSON line: messages, refused (error replies and closed connections from
// Redis, plus the entries the manager refused), lost_commands (commands to the good
// boards that did not end ok), the manager's RSS and Redis's used memory before and after,
// and log_bytes (what the manager logged meanwhile). Exit code 1 when a command was lost or
// the manager died; the memory bounds are the caller's to judge (test/integration/fuzz.test.ts).
// npm's prefuzz builds the TypeScript (dist/).
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { freeTcpPort } from '../bench/ports.mjs';
import { floodMessage, fuzzMessage } from './fuzz-messages.mjs';
import { random, root, rssMbOf, runFolders, scriptArgs, sleep, startBoardProcess, startService, stopProcess } from './lab-processes.mjs';

const USAGE = `usage: npm run fuzz -- [--messages N] [--seed S] [--keep]
  --messages N  how many messages the hostile board sends (default 1000)
  --seed S      seed of the messages (default: random, printed in the result)
  --keep        keep the temp folder (data, logs) even when all went well
Prints one JSON line: {"messages","refused","lost_commands","manager_rss_mb_before","manager_rss_mb_after",
"redis_used_mb_before","redis_used_mb_after","log_bytes",…}.
`;
const { values, number } = scriptArgs('fuzz', USAGE, { messages: { type: 'string' }, seed: { type: 'string' }, keep: { type: 'boolean' } });
const messageCount = number('messages', 1000, 1, 10_000_000, true);
const seed = number('seed', Math.floor(Math.random() * 2 ** 31), 0, 2 ** 31 - 1, true);

const GOOD_BOARDS = 3;
const EXPIRE_MS = 120_000;
const EXEC_TIMEOUT_MS = 30_000;
/** How long the manager may take to read what the hostile board left in its uplink. */
const DRAIN_MS = 60_000;
/** Every this many messages one is a flood of 1 MB entries (scripts/fuzz-messages.mjs). */
const FLOOD_EVERY = 1000;
/** A raw message whose effect never shows (no reply, no close) is given up after this long. */
const RAW_WAIT_MS = 5_000;

const { ApiRequestError } = await import(path.join(root, 'dist/electron/manager/api/client.js'));
const { RespConnection } = await import(path.join(root, 'dist/electron/manager/redis/resp-connection.js'));
const { RespError, RespParser, encodeCommand } = await import(path.join(root, 'dist/electron/manager/redis/resp-codec.js'));
const { boardKeys } = await import(path.join(root, 'dist/electron/manager/redis/keys.js'));

const rng = random(seed);
/** Pauses of the good boards' drivers: their own source, so the messages stay the seed's. */
const pacing = random(seed + 1);
const { work, dataDir, logDir, logFile, diagnostics, log } = await runFolders('fuzz');
process.stderr.write(`fuzz: ${messageCount} messages, seed ${seed}; log ${logFile}\n`);
const started = Date.now();

// --- the service and its boards ----------------------------------------------------------

const redisPort = await freeTcpPort();
const managerOut = createWriteStream(path.join(logDir, 'manager.log'));
const service = await startService({ dataDir, redisPort, apiPort: await freeTcpPort(), out: managerOut });
const { api } = service;
let managerExit = null;
service.child.once('exit', (code, signal) => {
  managerExit = signal ?? `code ${code}`;
  log(`the manager exited (${managerExit})`);
});
let logBytes = 0;
for (const stream of [service.child.stdout, service.child.stderr]) stream.on('data', (chunk) => (logBytes += chunk.length));

/** The manager's own Redis connection (its password is in the data folder): memory and what is left unread. */
const admin = await RespConnection.connect({ host: '127.0.0.1', port: redisPort });
await admin.call('AUTH', 'cm-manager', (await readFile(path.join(dataDir, 'secrets', 'redis-manager.password'), 'utf8')).trim());
const redisUsedMb = async () => Number(/used_memory:(\d+)/.exec(String(await admin.call('INFO', 'memory')))[1]) / 2 ** 20;

const withServer = (credentials) => ({ ...credentials, server: '127.0.0.1', port: redisPort });
const goodNames = Array.from({ length: GOOD_BOARDS }, (_, index) => `fuzz-good-${index + 1}`);
const enrolled = await api.call('boards.enrollMany', { names: [...goodNames, 'fuzz-hostile-1'] });
const good = [];
for (const credentials of enrolled.slice(0, GOOD_BOARDS)) {
  const fsDir = path.join(work, 'flash', credentials.name);
  const credsFile = path.join(work, `${credentials.name}.json`);
  await mkdir(fsDir, { recursive: true });
  await writeFile(credsFile, JSON.stringify(withServer(credentials)), { mode: 0o600 });
  const out = createWriteStream(path.join(logDir, `${credentials.name}.log`));
  good.push({ name: credentials.name, id: credentials.id, ...startBoardProcess({ kind: 'reference', credsFile, fsDir, out }) });
}
let hostile = withServer(enrolled[GOOD_BOARDS]);
const hostiles = [hostile];

async function waitOnline(names, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const list = await api.call('boards.list', {});
    if (names.every((name) => list.find((board) => board.name === name)?.online)) return;
    await sleep(200);
  }
  throw new Error(`${names.join(', ')} not all online within ${timeoutMs / 1000} s; see their logs in ${logDir}`);
}

// --- the good boards: one command after the other each, all of them must end ok -----------

const driven = { sent: 0, ok: 0, lost: [] };
let driving = true;

async function runOne(board, index) {
  const code = `print(${index} * 7)`;
  let cid;
  try {
    ({
      commands: [{ cid }],
    } = await api.call('commands.send', { boards: board.name, request: { op: 'exec', code, timeoutMs: EXEC_TIMEOUT_MS }, expireMs: EXPIRE_MS }));
  } catch (error) {
    driven.lost.push(`${board.name}: send refused: ${error.message}`);
    return;
  }
  driven.sent++;
  const [view] = await api.call('commands.wait', { cids: [cid], timeoutMs: EXPIRE_MS + EXEC_TIMEOUT_MS });
  if (view?.status === 'ok') driven.ok++;
  else driven.lost.push(`${board.name}: ${cid} ended ${view?.status ?? 'unknown'}${view?.error ? ` (${view.error})` : ''}`);
}

async function drive(board) {
  for (let index = 0; driving && managerExit === null; index++) {
    await runOne(board, index).catch((error) => driven.lost.push(`${board.name}: ${error.message}`));
    // A steady trickle, as a user's commands come, not a load test of its own.
    await sleep(pacing.between([100, 300]));
  }
}

// --- the hostile board ----------------------------------------------------------------------

const tally = { messages: 0, refusedByRedis: 0, suspended: 0, categories: {} };
let connection = null;

/** Re-enables a suspended board through the API, or enrolls a new hostile board when there is no such route. */
async function replaceSuspended() {
  tally.suspended++;
  try {
    await api.call('boards.enable', { board: hostile.name });
    log(`${hostile.name} was suspended; re-enabled it`);
    return;
  } catch (error) {
    log(`${hostile.name} was suspended (boards.enable: ${error.message}); enrolling another`);
  }
  const [credentials] = await api.call('boards.enrollMany', { names: [`fuzz-hostile-${hostiles.length + 1}`] });
  hostile = withServer(credentials);
  hostiles.push(hostile);
}

async function signedIn() {
  for (let attempt = 0; ; attempt++) {
    if (connection?.isOpen) return connection;
    connection = await RespConnection.connect({ host: '127.0.0.1', port: redisPort });
    try {
      await connection.call('AUTH', hostile.user, hostile.password);
      return connection;
    } catch (error) {
      connection.destroy();
      connection = null;
      if (!(error instanceof RespError) || attempt >= 2) throw error;
      await replaceSuspended();
    }
  }
}

/**
 * Bytes written after AUTH on a connection of their own; resolves with whether Redis
 * refused them, and whether it refused the AUTH (the board was suspended meanwhile).
 */
function rawExchange(message) {
  return new Promise((resolve) => {
    const marker = `fuzz-${tally.messages}`;
    const parser = new RespParser({ maxBulkBytes: 2 ** 20 });
    const replies = [];
    let done = false;
    const finish = (refused) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ refused, authRefused: replies[0] instanceof RespError });
    };
    const refusedSoFar = () => replies.slice(1).some((reply) => reply instanceof RespError);
    const socket = net.connect({ host: '127.0.0.1', port: redisPort }, () => {
      // The marker's answer says Redis read on past the bytes (nothing may follow bytes it closes on).
      const tail = message.expect === 'reply' ? encodeCommand(['PING', marker]) : Buffer.alloc(0);
      socket.write(Buffer.concat([encodeCommand(['AUTH', hostile.user, hostile.password]), message.bytes, tail]));
      if (message.expect === 'hang') setImmediate(() => finish(false)); // Redis waits for the rest: hang up on it
    });
    socket.on('data', (chunk) => {
      try {
        replies.push(...parser.push(chunk));
      } catch {
        return finish(true);
      }
      if (replies[0] instanceof RespError) finish(true);
      else if (replies.some((reply) => Buffer.isBuffer(reply) && reply.toString() === marker)) finish(refusedSoFar());
    });
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true)); // closed by Redis: refused (a Protocol error)
    const timer = setTimeout(() => {
      log(`raw message ${tally.messages} (${message.category}): neither an answer nor a close in ${RAW_WAIT_MS} ms`);
      finish(false);
    }, RAW_WAIT_MS);
  });
}

/** Sign-in abuse on a connection of its own: refused when Redis answers with an error. */
async function authExchange(args) {
  const fresh = await RespConnection.connect({ host: '127.0.0.1', port: redisPort });
  try {
    await fresh.call(...args);
    return false;
  } catch {
    return true;
  } finally {
    fresh.destroy();
  }
}

async function sendMessage(message) {
  if (message.bytes) {
    const { refused, authRefused } = await rawExchange(message);
    if (authRefused) {
      connection?.destroy();
      await replaceSuspended();
    }
    return refused;
  }
  if (message.auth) return authExchange(message.auth);
  const conn = await signedIn();
  try {
    const replies = await conn.pipeline(message.commands);
    return replies.some((reply) => reply instanceof RespError);
  } catch {
    return true; // the connection was closed under it (a request over Redis's limits, a suspended board)
  }
}

async function fuzz() {
  const other = boardKeys(good[0].id);
  for (let index = 0; index < messageCount && managerExit === null; index++) {
    const keys = boardKeys(hostile.id);
    const message =
      index % FLOOD_EVERY === FLOOD_EVERY / 2 ? floodMessage(keys) : fuzzMessage(rng, { keys, other, user: hostile.user, otherUser: `cmb-${good[0].id}` });
    tally.messages++;
    tally.categories[message.category] = (tally.categories[message.category] ?? 0) + 1;
    let refused;
    try {
      refused = await sendMessage(message);
    } catch (error) {
      log(`message ${index} (${message.category}): ${error.message}`);
      refused = true;
    }
    if (refused) tally.refusedByRedis++;
    if (index % 1000 === 999) log(`${index + 1} messages sent, ${tally.refusedByRedis} refused by Redis, ${driven.ok} good commands ok`);
  }
  connection?.destroy();
}

/** Entries the manager refused so far, when its status counts them. */
const managerRefused = (status) => status.uplinkRefused ?? null;

/** Waits until the manager has read everything the hostile boards left in their uplinks. */
async function drained() {
  const deadline = Date.now() + DRAIN_MS;
  while (Date.now() < deadline) {
    const lengths = await Promise.all(hostiles.map((board) => admin.call('XLEN', boardKeys(board.id).up).catch(() => 0)));
    if (lengths.every((length) => Number(length) === 0)) return true;
    await sleep(200);
  }
  return false;
}

/** What the hostile boards keep in their own keys (a board may): not a leak. */
async function hostileKeysMb() {
  let total = 0;
  for (const board of hostiles) {
    const keys = boardKeys(board.id);
    for (const key of [keys.cmd, keys.state, keys.up]) total += Number((await admin.call('MEMORY', 'USAGE', key, 'SAMPLES', '0').catch(() => 0)) ?? 0);
  }
  return total / 2 ** 20;
}

// --- the run ----------------------------------------------------------------------------------

const round = (value) => (value === null || value === undefined ? null : Math.round(value * 10) / 10);
let result;
let exitCode = 0;
try {
  await waitOnline(goodNames, 90_000);
  // Warm up before measuring: every good board has answered a few commands.
  for (const board of good) for (let index = 0; index < 3; index++) await runOne(board, index);
  const before = await api.call('status', {});
  const rssBefore = rssMbOf(service.pid);
  const redisBefore = await redisUsedMb();
  const logBefore = logBytes;
  let rssMax = rssBefore;
  const rssTimer = setInterval(() => (rssMax = Math.max(rssMax, rssMbOf(service.pid) ?? 0)), 200);
  const fuzzStarted = Date.now();
  const drivers = good.map((board) => drive(board));
  await fuzz();
  const fuzzSeconds = (Date.now() - fuzzStarted) / 1000;
  driving = false;
  await Promise.all(drivers);
  const isDrained = managerExit === null && (await drained());
  // Every good board still answers once the hostile one is quiet.
  if (managerExit === null) for (const board of good) await runOne(board, -1);
  clearInterval(rssTimer);
  const after = managerExit === null ? await api.call('status', {}) : null;
  const refusedByManager = after && managerRefused(after) !== null ? managerRefused(after) - managerRefused(before) : null;
  result = {
    messages: tally.messages,
    refused: tally.refusedByRedis + (refusedByManager ?? 0),
    refused_by_redis: tally.refusedByRedis,
    refused_by_manager: refusedByManager,
    lost_commands: driven.lost.length,
    good_commands: driven.sent,
    manager_rss_mb_before: round(rssBefore),
    manager_rss_mb_after: round(rssMbOf(service.pid)),
    manager_rss_mb_max: round(rssMax),
    redis_used_mb_before: round(redisBefore),
    redis_used_mb_after: managerExit === null ? round(await redisUsedMb()) : null,
    hostile_keys_mb: managerExit === null ? round(await hostileKeysMb()) : null,
    log_bytes: logBytes - logBefore,
    suspended: tally.suspended,
    drained: isDrained,
    manager_exit: managerExit,
    seed,
    fuzz_s: Math.round(fuzzSeconds),
    elapsed_s: Math.round((Date.now() - started) / 1000),
    lost: driven.lost.slice(0, 10),
  };
  if (driven.lost.length > 0 || managerExit !== null) exitCode = 1;
  for (const [category, count] of Object.entries(tally.categories).sort()) log(`category ${category}: ${count}`);
} catch (error) {
  log(`run failed: ${error.stack ?? error.message}`);
  result = { messages: tally.messages, seed, error: error instanceof ApiRequestError ? `API: ${error.message}` : error.message, manager_exit: managerExit };
  exitCode = 1;
} finally {
  driving = false;
  connection?.destroy();
  admin.destroy();
  await Promise.all(good.map((board) => stopProcess(board.child, board.exited, 5_000)));
  if (managerExit === null) await stopProcess(service.child, new Promise((resolve) => service.child.once('exit', resolve)), 20_000);
}
await new Promise((resolve) => diagnostics.end(resolve));
await new Promise((resolve) => managerOut.end(resolve));
if (exitCode === 0 && !values.keep) await rm(work, { recursive: true, force: true });
else {
  result.logs = logDir;
  process.stderr.write(`fuzz: data and logs kept in ${work}\n`);
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(exitCode);

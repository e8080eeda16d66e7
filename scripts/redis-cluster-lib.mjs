// A Redis Cluster or Sentinel set-up on loopback, for trying the app against a distributed
// Redis and for the tests that need one: `npm run cluster:up`/`cluster:down`
// (scripts/redis-cluster.mjs) and test/helpers/redis-cluster-lab.ts share this module.
// Every node is a daemonized redis-server with a folder of its own (config, pidfile, log,
// append-only files) under the lab's folder, which holds `lab.json`: what `stopLab` needs
// to stop the nodes and remove the folder, from any process. Types: redis-cluster-lib.d.mts.
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const HOST = '127.0.0.1';
const STATE_FILE = 'lab.json';
const MARK = 'cloudmanager redis lab';
/** Where `cluster:up` remembers its folder, so that a bare `cluster:down` finds it. */
export const lastLabPointer = path.join(os.tmpdir(), 'cloudmanager-redis-lab.json');
/** A cluster node's bus listens on its port + 10000 (Redis's fixed offset). */
const BUS_OFFSET = 10_000;

// --- a minimal RESP client: one command per connection (the lab asks little, and rarely) ----

/** Parses one RESP reply at `offset`; undefined while incomplete. Errors come back as Error values. */
function parseReply(buffer, offset = 0) {
  const lineEnd = buffer.indexOf('\r\n', offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buffer[offset]);
  const line = buffer.toString('utf8', offset + 1, lineEnd);
  const next = lineEnd + 2;
  if (type === '+') return { value: line, end: next };
  if (type === '-') return { value: new Error(line), end: next };
  if (type === ':') return { value: Number(line), end: next };
  if (type === '$') {
    const length = Number(line);
    if (length < 0) return { value: null, end: next };
    if (buffer.length < next + length + 2) return undefined;
    return { value: buffer.toString('utf8', next, next + length), end: next + length + 2 };
  }
  if (type === '*') {
    const count = Number(line);
    if (count < 0) return { value: null, end: next };
    const items = [];
    let at = next;
    for (let index = 0; index < count; index += 1) {
      const item = parseReply(buffer, at);
      if (item === undefined) return undefined;
      items.push(item.value);
      at = item.end;
    }
    return { value: items, end: at };
  }
  throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`);
}

/** Sends one command to the node at `port` and resolves with its reply; rejects on a Redis error or no answer. */
export function redisCommand(port, args, timeoutMs = 2_000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port });
    let received = Buffer.alloc(0);
    const fail = (error) => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`no answer from ${HOST}:${port} within ${timeoutMs} ms`)));
    socket.once('error', fail);
    // SHUTDOWN answers by closing: a close before a whole reply settles the promise too.
    socket.once('close', () => reject(new Error(`${HOST}:${port} closed the connection without an answer`)));
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      let reply;
      try {
        reply = parseReply(received);
      } catch (error) {
        fail(error);
        return;
      }
      if (reply === undefined) return;
      socket.end();
      if (reply.value instanceof Error) reject(reply.value);
      else resolve(reply.value);
    });
    socket.write(args.map((arg) => String(arg)).reduce((out, arg) => `${out}$${Buffer.byteLength(arg)}\r\n${arg}\r\n`, `*${args.length}\r\n`));
  });
}

/** The same, but undefined instead of an error (a node down or still starting). */
const ask = (port, args) => redisCommand(port, args).catch(() => undefined);

/** `INFO`-style `key:value` lines as an object. */
const infoFields = (text) =>
  Object.fromEntries(
    String(text ?? '')
      .split('\r\n')
      .filter((line) => line.includes(':'))
      .map((line) => line.split(/:(.*)/s, 2)),
  );

/** Polls `check` until it returns something truthy; the error says what did not happen. */
export async function until(check, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`redis lab: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// --- ports and processes ---------------------------------------------------------------------

function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

/**
 * The first base from `start` (stepping by `count`) whose `count` ports, and their cluster
 * bus ports when `bus`, are all free on loopback.
 */
export async function freePortRange(start, count, bus = false) {
  const top = 65_535 - count - (bus ? BUS_OFFSET : 0);
  for (let base = start; base <= top; base += count) {
    let free = true;
    for (let port = base; free && port < base + count; port += 1) free = (await portFree(port)) && (!bus || (await portFree(port + BUS_OFFSET)));
    if (free) return base;
  }
  throw new Error(`redis lab: no ${count} free ports on ${HOST} from ${start} up${bus ? ` (with their bus ports, +${BUS_OFFSET})` : ''}; pass another --port`);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return error.code === 'EPERM';
  }
  // A pidfile outlives its process, and the number may be reused: on Linux make sure it is still a redis-server.
  const cmdline = `/proc/${pid}/cmdline`;
  if (existsSync(cmdline)) return readFileSync(cmdline, 'utf8').includes('redis');
  return true;
}

async function readPid(pidfile) {
  const pid = Number((await readFile(pidfile, 'utf8').catch(() => '')).trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** A path inside a redis.conf: quoted, backslashes and quotes escaped (Redis reads the same escapes as JSON). */
const confPath = (value) => JSON.stringify(value);

/** Writes the node's config and starts it daemonized; resolves once it answers PING. */
async function startNode(redisServer, node, lines, extraArgs = []) {
  await mkdir(node.dir, { recursive: true });
  const conf = path.join(node.dir, node.sentinel ? 'sentinel.conf' : 'redis.conf');
  const common = [
    `port ${node.port}`,
    `bind ${HOST}`,
    // Safe only because of the loopback bind above: nothing off this machine can connect.
    'protected-mode no',
    'daemonize yes',
    `pidfile ${confPath(node.pidfile)}`,
    `logfile ${confPath(path.join(node.dir, 'redis.log'))}`,
    `dir ${confPath(node.dir)}`,
  ];
  await writeFile(conf, [...common, ...lines, ''].join('\n'));
  const code = await new Promise((resolve, reject) => {
    const child = spawn(redisServer, [conf, ...extraArgs], { stdio: 'ignore', windowsHide: true });
    child.once('error', reject);
    child.once('exit', resolve);
  });
  const log = () =>
    readFile(path.join(node.dir, 'redis.log'), 'utf8').then(
      (text) => text.trim().split('\n').slice(-5).join('\n'),
      () => '(no log)',
    );
  if (code !== 0) throw new Error(`redis lab: ${redisServer} exited with code ${code} for port ${node.port}:\n${await log()}`);
  try {
    await until(async () => (await ask(node.port, ['PING'])) === 'PONG', `the node on port ${node.port} to answer`, 10_000);
  } catch (error) {
    throw new Error(`${error.message}; its log:\n${await log()}`, { cause: error });
  }
  node.pid = await readPid(node.pidfile);
}

/** Kills one node at once (kill -9): what a crash or a pulled plug does. */
export function killNode(node) {
  if (node.pid !== undefined && alive(node.pid)) process.kill(node.pid, 'SIGKILL');
  node.role = 'down';
}

async function stopNode(node) {
  const pid = node.pid ?? (await readPid(node.pidfile));
  if (pid === undefined || !alive(pid)) return;
  // NOSAVE: the folder goes away next, nothing to keep.
  await redisCommand(node.port, ['SHUTDOWN', 'NOSAVE']).catch(() => undefined);
  try {
    await until(() => !alive(pid), `redis-server ${pid} (port ${node.port}) to exit`, 5_000);
  } catch {
    process.kill(pid, 'SIGKILL');
    await until(() => !alive(pid), `redis-server ${pid} (port ${node.port}) to die`, 5_000);
  }
}

// --- the lab's folder and state ------------------------------------------------------------------

async function labFolder(dir, prefix) {
  if (dir === undefined) return mkdtemp(path.join(os.tmpdir(), prefix));
  const resolved = path.resolve(dir);
  if (existsSync(path.join(resolved, STATE_FILE)))
    throw new Error(`redis lab: ${resolved} already holds a lab; stop it first (npm run cluster:down -- --dir ${resolved})`);
  await mkdir(resolved, { recursive: true });
  if ((await readdir(resolved)).length > 0) throw new Error(`redis lab: ${resolved} is not empty; give an empty or new folder with --dir`);
  return resolved;
}

const nodeIn = (dir, port, sentinel = false) => ({
  port,
  role: 'primary',
  sentinel,
  dir: path.join(dir, `${sentinel ? 'sentinel' : 'node'}-${port}`),
  pidfile: path.join(dir, `${sentinel ? 'sentinel' : 'node'}-${port}`, 'redis.pid'),
});

async function saveState(lab, remember) {
  await writeFile(path.join(lab.dir, STATE_FILE), JSON.stringify({ mark: MARK, ...lab }, null, 2));
  if (remember) await writeFile(lastLabPointer, JSON.stringify({ dir: lab.dir }));
}

/** Reads a lab's state from its folder; undefined when the folder holds none. */
export async function readLab(dir) {
  const text = await readFile(path.join(dir, STATE_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const state = JSON.parse(text);
  if (state?.mark !== MARK) throw new Error(`redis lab: ${path.join(dir, STATE_FILE)} is not a lab's state file; not touching ${dir}`);
  return state;
}

/** The folder `cluster:up` last used, if it still holds a lab. */
export async function rememberedLabDir() {
  const text = await readFile(lastLabPointer, 'utf8').catch(() => undefined);
  const dir = text === undefined ? undefined : JSON.parse(text).dir;
  return typeof dir === 'string' && existsSync(path.join(dir, STATE_FILE)) ? dir : undefined;
}

/** Stops every node and sentinel of `lab`, removes its folder (only one holding a lab's state) and forgets it. */
export async function stopLab(lab) {
  await Promise.all([...lab.nodes, ...(lab.sentinels ?? [])].map((node) => stopNode(node)));
  if (existsSync(path.join(lab.dir, STATE_FILE))) await rm(lab.dir, { recursive: true, force: true });
  const remembered = await readFile(lastLabPointer, 'utf8').catch(() => undefined);
  if (remembered !== undefined && JSON.parse(remembered).dir === lab.dir) await rm(lastLabPointer, { force: true });
}

/** The public view of a lab: what `cluster:up` prints and the tests read. */
export const labSummary = (lab) => ({
  nodes: lab.nodes.map(({ port, role }) => ({ port, role })),
  ...(lab.sentinels ? { sentinels: lab.sentinels.map(({ port }) => ({ port })) } : {}),
  url: lab.url,
  dir: lab.dir,
  state: path.join(lab.dir, STATE_FILE),
});

// --- Redis Cluster ----------------------------------------------------------------------------

/** `CLUSTER NODES` as seen from `port`: [{ id, port, role, failed, masterId, slots }]. */
async function clusterView(port) {
  const text = await ask(port, ['CLUSTER', 'NODES']);
  if (typeof text !== 'string') return undefined;
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, masterId, , , , , ...slots] = line.split(' ');
      const flagList = flags.split(',');
      return {
        id,
        port: Number(address.split('@')[0].split(':').pop()),
        myself: flagList.includes('myself'),
        role: flagList.includes('master') ? 'primary' : 'replica',
        failed: flagList.includes('fail') || flagList.includes('fail?'),
        masterId,
        slots,
      };
    });
}

async function clusterStateOk(port) {
  return infoFields(await ask(port, ['CLUSTER', 'INFO'])).cluster_state === 'ok';
}

/** Where redis-cli is: beside the redis-server, else on the PATH. */
function redisCliBeside(redisServer) {
  const beside = path.join(path.dirname(redisServer), process.platform === 'win32' ? 'redis-cli.exe' : 'redis-cli');
  return existsSync(beside) ? beside : 'redis-cli';
}

function run(command, args) {
  return new Promise((resolve, reject) => {
    execFile(command, args, { timeout: 60_000, windowsHide: true }, (error, stdout, stderr) => {
      if (error)
        reject(
          new Error(
            `redis lab: ${command} ${args.join(' ')} failed: ${error.code === 'ENOENT' ? 'not found (it comes with the Redis package)' : `${error.message}\n${stdout}${stderr}`}`,
          ),
        );
      else resolve(String(stdout));
    });
  });
}

/**
 * Every live node agrees: state ok, `lab.masters` primaries holding the slots, no primary
 * without slots (right after `--cluster create` a replica-to-be still shows as one) and
 * every live replica linked to its primary. Updates the nodes' roles from what they say.
 */
async function clusterSettled(lab) {
  const live = lab.nodes.filter((node) => node.role !== 'down');
  let view;
  for (const node of live) {
    if (!(await clusterStateOk(node.port))) return false;
    view = await clusterView(node.port);
    if (view === undefined) return false;
    const liveEntries = view.filter((entry) => live.some((other) => other.port === entry.port));
    if (liveEntries.length !== live.length || liveEntries.some((entry) => entry.failed || (entry.role === 'primary' && entry.slots.length === 0))) return false;
    if (liveEntries.filter((entry) => entry.role === 'primary').length !== lab.masters) return false;
  }
  for (const node of live) {
    const entry = view.find((item) => item.port === node.port);
    node.role = entry.role;
    node.id = entry.id;
    if (entry.role === 'replica' && infoFields(await ask(node.port, ['INFO', 'replication'])).master_link_status !== 'up') return false;
  }
  return true;
}

/**
 * Starts `masters` primaries with `replicas` replicas each on loopback from `port` (the next
 * free range when taken) and creates the cluster with `redis-cli --cluster create`. Resolves
 * once every node says `cluster_state:ok` and every replica is linked to its primary.
 */
export async function startCluster({ redisServer, masters = 3, replicas = 1, port = 7000, dir, nodeTimeoutMs = 2_000, remember = false }) {
  if (!Number.isInteger(masters) || masters < 3) throw new Error('redis lab: a cluster needs at least 3 primaries (--masters 3 or more)');
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 5) throw new Error('redis lab: --replicas is 0 to 5 per primary');
  const count = masters * (1 + replicas);
  const base = await freePortRange(port, count, true);
  const labDir = await labFolder(dir, 'cm-redis-cluster-');
  const nodes = Array.from({ length: count }, (_, index) => nodeIn(labDir, base + index));
  const lab = { kind: 'cluster', dir: labDir, masters, nodes, url: `redis+cluster://${nodes.map((node) => `${HOST}:${node.port}`).join(',')}` };
  // State first: a start that fails half-way can still be stopped by cluster:down.
  await saveState(lab, remember);
  try {
    const settings = ['cluster-enabled yes', 'cluster-config-file nodes.conf', `cluster-node-timeout ${nodeTimeoutMs}`, 'appendonly yes', 'save ""'];
    await Promise.all(nodes.map((node) => startNode(redisServer, node, settings)));
    await saveState(lab, remember);
    const addresses = nodes.map((node) => `${HOST}:${node.port}`);
    await run(redisCliBeside(redisServer), ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes']);
    await until(() => clusterSettled(lab), 'every node to report cluster_state:ok and every replica to be linked');
    await saveState(lab, remember);
    return lab;
  } catch (error) {
    await stopLab(lab).catch(() => undefined);
    throw error;
  }
}

/**
 * Kills (-9) the primary on `target` (or any primary with a live replica) and resolves once
 * one of its replicas is a primary and every live node agrees with `cluster_state:ok`.
 */
export async function killClusterPrimary(lab, target = 'any') {
  await clusterSettled(lab);
  const view = await clusterView(lab.nodes.find((node) => node.role !== 'down').port);
  const replicasOf = (id) => view.filter((entry) => entry.masterId === id && lab.nodes.some((node) => node.port === entry.port && node.role === 'replica'));
  const primary = view.find(
    (entry) => entry.role === 'primary' && !entry.failed && (target === 'any' ? replicasOf(entry.id).length > 0 : entry.port === target),
  );
  if (primary === undefined) throw new Error(`redis lab: no live primary ${target === 'any' ? 'with a replica' : `on port ${target}`}`);
  const candidates = replicasOf(primary.id).map((entry) => entry.port);
  if (candidates.length === 0) throw new Error(`redis lab: the primary on port ${primary.port} has no live replica to take over`);
  killNode(lab.nodes.find((node) => node.port === primary.port));
  const promoted = await until(
    async () => {
      for (const port of candidates) if ((await clusterView(port))?.find((entry) => entry.myself)?.role === 'primary') return port;
      return undefined;
    },
    `a replica of ${primary.port} (${candidates.join(', ')}) to be promoted`,
  );
  await until(() => clusterSettled(lab), 'the cluster to be ok again after the failover');
  await saveState(lab, false);
  return { killed: primary.port, promoted };
}

// --- Sentinel -------------------------------------------------------------------------------

async function sentinelsAgree(lab, port) {
  for (const sentinel of lab.sentinels) {
    const address = await ask(sentinel.port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', lab.name]);
    if (!Array.isArray(address) || Number(address[1]) !== port) return false;
  }
  return true;
}

/** Every sentinel knows the primary, `replicas` linked replicas and the other sentinels (what a failover needs). */
async function sentinelsReady(lab, primaryPort, replicas) {
  if (!(await sentinelsAgree(lab, primaryPort))) return false;
  for (const sentinel of lab.sentinels) {
    const known = await ask(sentinel.port, ['SENTINEL', 'REPLICAS', lab.name]);
    const peers = await ask(sentinel.port, ['SENTINEL', 'SENTINELS', lab.name]);
    if (!Array.isArray(known) || known.filter((fields) => !String(fields[fields.indexOf('flags') + 1]).includes('down')).length < replicas) return false;
    if (!Array.isArray(peers) || peers.length < lab.sentinels.length - 1) return false;
  }
  return true;
}

/**
 * One primary, `replicas` replicas and three sentinels (quorum 2) watching it as `name`.
 * Resolves once the replicas are linked and every sentinel knows them and its peers.
 */
export async function startSentinel({ redisServer, port = 26000, dir, replicas = 1, name = 'mymaster', remember = false }) {
  const count = 1 + replicas + 3;
  const base = await freePortRange(port, count);
  const labDir = await labFolder(dir, 'cm-redis-sentinel-');
  const nodes = Array.from({ length: 1 + replicas }, (_, index) => nodeIn(labDir, base + index));
  const sentinels = Array.from({ length: 3 }, (_, index) => nodeIn(labDir, base + 1 + replicas + index, true));
  const lab = {
    kind: 'sentinel',
    name,
    dir: labDir,
    nodes,
    sentinels,
    url: `redis+sentinel://${sentinels.map((node) => `${HOST}:${node.port}`).join(',')}/${name}`,
  };
  await saveState(lab, remember);
  try {
    const [primary, ...followers] = nodes;
    await startNode(redisServer, primary, ['appendonly yes', 'save ""']);
    await Promise.all(
      followers.map((node) => ((node.role = 'replica'), startNode(redisServer, node, ['appendonly yes', 'save ""', `replicaof ${HOST} ${primary.port}`]))),
    );
    const watch = [
      `sentinel monitor ${name} ${HOST} ${primary.port} 2`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 3000`,
      `sentinel parallel-syncs ${name} 1`,
    ];
    await Promise.all(sentinels.map((node) => ((node.role = 'sentinel'), startNode(redisServer, node, watch, ['--sentinel']))));
    await saveState(lab, remember);
    await until(async () => {
      for (const node of followers) if (infoFields(await ask(node.port, ['INFO', 'replication'])).master_link_status !== 'up') return false;
      return sentinelsReady(lab, primary.port, followers.length);
    }, 'the replicas to link and the sentinels to know them and each other');
    return lab;
  } catch (error) {
    await stopLab(lab).catch(() => undefined);
    throw error;
  }
}

/** Kills (-9) the sentinel lab's primary and resolves once every sentinel names a promoted replica. */
export async function killSentinelPrimary(lab) {
  const primary = lab.nodes.find((node) => node.role === 'primary');
  const candidates = lab.nodes.filter((node) => node.role === 'replica');
  if (primary === undefined || candidates.length === 0) throw new Error('redis lab: no primary with a live replica left to fail over');
  killNode(primary);
  const promoted = await until(async () => {
    for (const node of candidates) if ((await sentinelsAgree(lab, node.port)) && (await ask(node.port, ['ROLE']))?.[0] === 'master') return node;
    return undefined;
  }, `the sentinels to promote a replica of ${primary.port}`);
  promoted.role = 'primary';
  await saveState(lab, false);
  return { killed: primary.port, promoted: promoted.port };
}

/**
 * Boards on a Redis Cluster (firmware/PROTOCOL.md §8, "Redis Cluster and failover"): both
 * board kinds — the MicroPython client in the board lab and the TypeScript reference board —
 * against a 3-primary cluster with a replica each, on loopback. The test plays the manager's
 * part over ioredis, node by node (the board's ACL user on every node, the function library
 * on every primary, commands queued with cm_enqueue on the node serving the board's slot),
 * so it judges the boards alone by what a user would notice: the board's hello lands where
 * its keys live, and a command sent afterwards runs once, with its output.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { boardAclRules } from '../../electron/manager/redis/acl.js';
import { boardKeys, boardUser } from '../../electron/manager/redis/keys.js';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { LAB_WIFI, provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import { ReferenceBoard } from '../../electron/manager/virtual/reference-board.js';
import { waitFor } from '../helpers/lab.js';
import { enqueueExec as enqueueOn } from '../helpers/manager-stand-in.js';
import { startClusterLab, type RedisLab } from '../helpers/redis-cluster-lab.js';
import { FUNCTION_LIBRARY as LIBRARY } from '../../electron/manager/redis/function-library.js';

const HOST = '127.0.0.1';
type Kind = 'reference' | 'micropython';
interface Entry {
  id: string;
  fields: Record<string, string>;
}

let lab: RedisLab;
const clients = new Map<number, Redis>();
const cleanups: Array<() => Promise<unknown>> = [];

/** One plain connection per node: the test talks to each node itself, as the manager would per slot. */
function node(port: number): Redis {
  let client = clients.get(port);
  if (!client) {
    client = new Redis({ host: HOST, port, maxRetriesPerRequest: 1, retryStrategy: () => null });
    client.on('error', () => undefined);
    clients.set(port, client);
  }
  return client;
}

const livePorts = () => lab.nodes.filter((item) => item.role !== 'down').map((item) => item.port);
const primaries = () => lab.nodes.filter((item) => item.role === 'primary').map((item) => item.port);

interface SlotOwner {
  port: number;
  slot: number;
  /** Its replicas that have replicated something (what CLUSTER SLOTS lists). */
  replicas: number;
}

/** The primary serving `key`'s slot now. */
async function owner(key: string): Promise<SlotOwner> {
  const anyNode = node(primaries()[0]!);
  const slot = Number(await anyNode.cluster('KEYSLOT', key));
  const ranges = await anyNode.cluster('SLOTS');
  const [, , primary, ...replicas] = ranges.find(([first, last]) => first <= slot && slot <= last)!;
  return { port: primary![1], slot, replicas: replicas.length };
}

/** Enrols a board the way the manager does, on every node (ACL users are per node, not replicated); `where` picks its slot's primary. */
async function enrol(prefix: string, where: (slotOwner: SlotOwner) => boolean = () => true): Promise<BoardCredentials> {
  let id: string;
  do id = `${prefix}-${randomBytes(3).toString('hex')}`;
  while (!where(await owner(boardKeys(id).cmd)));
  const password = randomBytes(32).toString('base64url');
  for (const port of livePorts()) await node(port).call('ACL', 'SETUSER', boardUser(id), ...boardAclRules(id, password));
  return { v: 1, id, name: id, user: boardUser(id), password, server: HOST, port: 0, hb: 1 };
}

/** Powers a board of `kind` on with `server:port` as its configured server. */
async function powerOn(kind: Kind, credentials: BoardCredentials, port: number): Promise<void> {
  const configured = { ...credentials, port };
  if (kind === 'reference') {
    const board = new ReferenceBoard({ credentials: configured, reconnectMinMs: 200 });
    board.start();
    cleanups.push(() => board.powerOff());
    return;
  }
  const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-cluster-board-'));
  cleanups.push(() => rm(folder, { recursive: true, force: true }));
  await provisionFolder(folder, configured, { host: HOST, port });
  const board = new MicroPythonBoard({ folder, heapBytes: 36 * 1024, wifi: LAB_WIFI, label: credentials.id });
  await board.start();
  cleanups.push(() => board.powerOff());
}

/** The board's uplink, read on the node serving its slot now (what the manager reads). */
async function uplink(id: string): Promise<Entry[]> {
  const key = boardKeys(id).up;
  const entries = (await node((await owner(key)).port).xrange(key, '-', '+')) as Array<[string, string[]]>;
  return entries.map(([entryId, flat]) => ({
    id: entryId,
    fields: Object.fromEntries(flat.flatMap((value, index) => (index % 2 ? [] : [[value, flat[index + 1]!]]))),
  }));
}

/** Queues `print(...)` for the board through cm_enqueue on the node serving its slot, as the manager does. */
async function enqueueExec(id: string, cid: string, code: string): Promise<void> {
  await enqueueOn(node((await owner(boardKeys(id).cmd)).port), id, cid, code);
}

/** Waits for the command's result and says how many times it started, its results and its output. */
async function outcome(id: string, cid: string) {
  const entries = await waitFor(
    async () => {
      const all = await uplink(id);
      return all.some((entry) => entry.fields.k === 'res' && entry.fields.i === cid) ? all : undefined;
    },
    30_000,
    `the result of ${cid}`,
  );
  const of = (kind: string) => entries.filter((entry) => entry.fields.k === kind && entry.fields.i === cid);
  return {
    starts: of('start').length,
    results: of('res').map((entry) => entry.fields.ok),
    output: of('out')
      .map((entry) => entry.fields.d)
      .join(''),
  };
}

const hellos = async (id: string) => (await uplink(id)).filter((entry) => entry.fields.k === 'hello');
/** The board's hellos once there is one (on the node serving its slot). */
const online = async (id: string) => ((await hellos(id)).length > 0 ? hellos(id) : undefined);

beforeAll(async () => {
  lab = await startClusterLab({ masters: 3, replicas: 1 });
  // What the manager does on every primary (FUNCTION LOAD replicates to the replicas).
  for (const port of primaries()) await node(port).call('FUNCTION', 'LOAD', 'REPLACE', LIBRARY);
}, 120_000);

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  for (const client of clients.values()) client.disconnect();
  await lab?.stop();
});

describe.each<Kind>(['reference', 'micropython'])('%s board on a Redis Cluster', (kind) => {
  it('pointed at a node that does not hold its keys, comes online on the one that does and runs a command once', { timeout: 90_000 }, async () => {
    const credentials = await enrol(kind === 'reference' ? 'ref' : 'mp');
    const home = await owner(boardKeys(credentials.id).cmd);
    const elsewhere = primaries().find((port) => port !== home.port)!;
    await powerOn(kind, credentials, elsewhere);

    const [hello] = await waitFor(() => online(credentials.id), 30_000, 'a hello on the node serving the board');
    expect(hello!.fields.c).toBeDefined();

    await enqueueExec(credentials.id, 'c-redirect-1', 'print(6 * 7)');
    const done = await outcome(credentials.id, 'c-redirect-1');
    expect(done).toEqual({ starts: 1, results: ['1'], output: '42\n' });
    // Still the one session: no reconnection after it found its node.
    expect(await hellos(credentials.id)).toHaveLength(1);
  });

  it('follows its keys when their slot moves to another primary while it is online; commands before and after run once', { timeout: 90_000 }, async () => {
    const credentials = await enrol(kind === 'reference' ? 'ref' : 'mp');
    const keys = boardKeys(credentials.id);
    const source = await owner(keys.cmd);
    await powerOn(kind, credentials, source.port);
    await waitFor(() => online(credentials.id), 30_000, 'the board online on its node');
    await enqueueExec(credentials.id, 'c-before-move', 'print("before")');
    expect(await outcome(credentials.id, 'c-before-move')).toEqual({ starts: 1, results: ['1'], output: 'before\n' });

    const targetPort = primaries().find((port) => port !== source.port)!;
    await moveSlot(source.slot, source.port, targetPort);
    expect((await owner(keys.cmd)).port).toBe(targetPort);

    // The board, blocked in XREAD on the old node, is told MOVED and goes to the new one.
    await waitFor(async () => (await hellos(credentials.id)).length >= 2, 30_000, 'the board back after its slot moved');
    await enqueueExec(credentials.id, 'c-after-move', 'print("after")');
    expect(await outcome(credentials.id, 'c-after-move')).toEqual({ starts: 1, results: ['1'], output: 'after\n' });
    // The earlier command was not run again on the new node.
    expect((await outcome(credentials.id, 'c-before-move')).starts).toBe(1);
    const boots = new Set((await hellos(credentials.id)).map((entry) => entry.fields.boot));
    expect(boots.size).toBe(1);
  });

  it('follows its keys to the replica that takes over when their primary is killed (-9); no command lost or run twice', { timeout: 120_000 }, async () => {
    const credentials = await enrol(kind === 'reference' ? 'ref' : 'mp', (slotOwner) => slotOwner.replicas > 0);
    const keys = boardKeys(credentials.id);
    const primary = await owner(keys.cmd);
    // Its configured server is another node, which sends it on (MOVED) before and after the failover.
    await powerOn(
      kind,
      credentials,
      primaries().find((port) => port !== primary.port)!,
    );
    await waitFor(() => online(credentials.id), 30_000, 'the board online');
    await enqueueExec(credentials.id, 'c-before-kill', 'print("before")');
    expect(await outcome(credentials.id, 'c-before-kill')).toEqual({ starts: 1, results: ['1'], output: 'before\n' });
    // Replication is asynchronous: what the test checks next has reached the replica before the kill.
    expect(await node(primary.port).wait(1, 10_000)).toBe(1);

    const failover = await lab.killPrimary(primary.port);
    expect((await owner(keys.cmd)).port).toBe(failover.promoted);
    await waitFor(async () => (await hellos(credentials.id)).length >= 2, 60_000, 'the board back on the promoted replica');
    await enqueueExec(credentials.id, 'c-after-kill', 'print("after")');
    expect(await outcome(credentials.id, 'c-after-kill')).toEqual({ starts: 1, results: ['1'], output: 'after\n' });
    expect((await outcome(credentials.id, 'c-before-kill')).starts).toBe(1);
    expect(new Set((await hellos(credentials.id)).map((entry) => entry.fields.boot)).size).toBe(1);
  });
});

/** Moves one slot and its keys from one primary to another, the way `redis-cli --cluster reshard` does. */
async function moveSlot(slot: number, fromPort: number, toPort: number): Promise<void> {
  const from = node(fromPort);
  const to = node(toPort);
  const fromId = String(await from.cluster('MYID'));
  const toId = String(await to.cluster('MYID'));
  await to.cluster('SETSLOT', slot, 'IMPORTING', fromId);
  await from.cluster('SETSLOT', slot, 'MIGRATING', toId);
  for (;;) {
    const keys = (await from.cluster('GETKEYSINSLOT', slot, 100)) as string[];
    if (keys.length === 0) break;
    await from.call('MIGRATE', HOST, String(toPort), '', '0', '5000', 'KEYS', ...keys);
  }
  for (const port of primaries()) await node(port).cluster('SETSLOT', slot, 'NODE', toId);
  // Every node agrees before the test goes on (the replicas learn it by gossip).
  await waitFor(
    async () => {
      for (const port of livePorts()) {
        const range = (await node(port).cluster('SLOTS')).find(([first, last]) => first <= slot && slot <= last);
        if (range?.[2]?.[1] !== toPort) return false;
      }
      return true;
    },
    20_000,
    `every node to see slot ${slot} on ${toPort}`,
  );
}

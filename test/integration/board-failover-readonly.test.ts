/**
 * A board whose Redis becomes a replica (a failover: Sentinel's, or an admin's REPLICAOF)
 * answers its writes with -READONLY (firmware/PROTOCOL.md §8, "Redis Cluster and failover").
 * Two real redis-servers on loopback swap roles under a board of each kind; the test plays
 * the manager's part over ioredis (ACL user on both, functions on the primary, cm_enqueue)
 * and judges by what a user would notice: the board comes back by itself once its node is
 * primary again, the same boot, and every command runs once with one result — also a result
 * the board made while its node was a replica.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { boardAclRules } from '../../electron/manager/redis/acl.js';
import { boardKeys, boardUser } from '../../electron/manager/redis/keys.js';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { LAB_WIFI, provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import { ReferenceBoard } from '../../electron/manager/virtual/reference-board.js';
import { waitFor } from '../helpers/lab.js';
import { enqueueExec } from '../helpers/manager-stand-in.js';
import { startPlainRedis } from '../helpers/plain-redis.js';
import { FUNCTION_LIBRARY as LIBRARY } from '../../electron/manager/redis/function-library.js';

const HOST = '127.0.0.1';
const cleanups: Array<() => Promise<unknown> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Pair {
  a: Redis;
  b: Redis;
  aPort: number;
  /** Makes `primary` the primary and the other its replica, and waits until the replica is in sync. */
  promote(primary: Redis): Promise<void>;
}

/** Two redis-servers, B replicating A. */
async function startPair(): Promise<Pair> {
  const [serverA, serverB] = await Promise.all([startPlainRedis(), startPlainRedis()]);
  cleanups.push(
    () => serverA.kill(),
    () => serverB.kill(),
  );
  const connect = (port: number) => {
    const client = new Redis({ host: HOST, port, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    cleanups.push(() => client.disconnect());
    return client;
  };
  const a = connect(serverA.port);
  const b = connect(serverB.port);
  const portOf = new Map([
    [a, serverA.port],
    [b, serverB.port],
  ]);
  const inSync = async (replica: Redis) => /master_link_status:up/.test(await replica.info('replication'));
  const promote = async (primary: Redis) => {
    const replica = primary === a ? b : a;
    // Nothing written to the old primary is lost: the other has it all before the swap.
    if ((await replica.role())[0] === 'master') await replica.wait(1, 10_000);
    await primary.call('REPLICAOF', 'NO', 'ONE');
    await replica.call('REPLICAOF', HOST, String(portOf.get(primary)));
    await waitFor(() => inSync(replica), 20_000, 'the replica in sync with its new primary');
  };
  await b.call('REPLICAOF', HOST, String(serverA.port));
  await waitFor(() => inSync(b), 20_000, 'B in sync with A');
  await a.call('FUNCTION', 'LOAD', 'REPLACE', LIBRARY);
  return { a, b, aPort: serverA.port, promote };
}

/** The board's user on both servers (ACL users are not replicated). */
async function enrol(pair: Pair, prefix: string): Promise<BoardCredentials> {
  const id = `${prefix}-${randomBytes(3).toString('hex')}`;
  const password = randomBytes(32).toString('base64url');
  for (const client of [pair.a, pair.b]) await client.call('ACL', 'SETUSER', boardUser(id), ...boardAclRules(id, password));
  return { v: 1, id, name: id, user: boardUser(id), password, server: HOST, port: pair.aPort, hb: 1 };
}

async function uplink(redis: Redis, id: string): Promise<Array<Record<string, string>>> {
  const entries = (await redis.xrange(boardKeys(id).up, '-', '+')) as Array<[string, string[]]>;
  return entries.map(([, flat]) => Object.fromEntries(flat.flatMap((value, index) => (index % 2 ? [] : [[value, flat[index + 1]!]]))));
}

const count = async (redis: Redis, id: string, kind: string, cid?: string) =>
  (await uplink(redis, id)).filter((entry) => entry.k === kind && (cid === undefined || entry.i === cid));

describe('a board whose Redis becomes a replica (READONLY)', () => {
  it.each(['reference', 'micropython'] as const)(
    '%s board: back by itself, same boot, once its node is primary again; a command queued meanwhile runs once',
    { timeout: 120_000 },
    async (kind) => {
      const pair = await startPair();
      const credentials = await enrol(pair, kind === 'reference' ? 'ref' : 'mp');
      if (kind === 'reference') {
        const board = new ReferenceBoard({ credentials, reconnectMinMs: 200 });
        board.start();
        cleanups.push(() => board.powerOff());
      } else {
        const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-readonly-board-'));
        cleanups.push(() => rm(folder, { recursive: true, force: true }));
        await provisionFolder(folder, credentials, { host: HOST, port: pair.aPort });
        const board = new MicroPythonBoard({ folder, heapBytes: 36 * 1024, wifi: LAB_WIFI, label: credentials.id });
        await board.start();
        cleanups.push(() => board.powerOff());
      }
      await waitFor(async () => (await count(pair.a, credentials.id, 'hello')).length === 1, 30_000, 'the board online');

      // A becomes a replica: the board's writes there are refused (READONLY) until it is primary again.
      await pair.promote(pair.b);
      await enqueueExec(pair.b, credentials.id, 'c-during', 'print("queued during the failover")', 60_000);
      // The board tried A and was refused (Redis counts the READONLY replies it sent).
      await waitFor(async () => /errorstat_READONLY:count=[1-9]/.test(await pair.a.info('errorstats')), 30_000, 'the board refused by the replica');
      await pair.promote(pair.a);

      await waitFor(async () => (await count(pair.a, credentials.id, 'res', 'c-during')).length > 0, 60_000, 'the queued command run');
      const hellos = await count(pair.a, credentials.id, 'hello');
      expect(hellos.length).toBeGreaterThanOrEqual(2);
      expect(new Set(hellos.map((hello) => hello.boot)).size).toBe(1);
      expect((await count(pair.a, credentials.id, 'start', 'c-during')).length).toBe(1);
      const results = await count(pair.a, credentials.id, 'res', 'c-during');
      expect(results.map((entry) => entry.ok)).toEqual(['1']);
      expect((await count(pair.a, credentials.id, 'out', 'c-during')).map((entry) => entry.d)).toEqual(['queued during the failover\n']);
    },
  );

  it('reference board: a result made while its node is a replica is kept and sent once the node is primary again', { timeout: 120_000 }, async () => {
    const pair = await startPair();
    const credentials = await enrol(pair, 'ref');
    const board = new ReferenceBoard({ credentials, reconnectMinMs: 200 });
    board.start();
    cleanups.push(() => board.powerOff());
    await waitFor(async () => (await count(pair.a, credentials.id, 'hello')).length === 1, 30_000, 'the board online');

    // Code that runs until the manager asks it to stop (PROTOCOL.md §4.4).
    await enqueueExec(pair.a, credentials.id, 'c-running', 'import time\nwhile True:\n    time.sleep_ms(20)\n', 60_000);
    await waitFor(async () => (await count(pair.a, credentials.id, 'start', 'c-running')).length === 1, 30_000, 'the command started');
    await pair.promote(pair.b);
    // The stop reaches the board through A, now a replica, which it still reads; its result is refused there.
    const disconnected = once(board, 'disconnected');
    await pair.b.hset(boardKeys(credentials.id).state, 'stop', 'c-running');
    await disconnected;
    await pair.promote(pair.a);

    await waitFor(async () => (await count(pair.a, credentials.id, 'res', 'c-running')).length > 0, 60_000, 'the result of the stopped command');
    const results = await count(pair.a, credentials.id, 'res', 'c-running');
    expect(results.map((entry) => [entry.ok, entry.ec])).toEqual([['0', 'EINTR']]);
    expect((await count(pair.a, credentials.id, 'start', 'c-running')).length).toBe(1);
  });
});

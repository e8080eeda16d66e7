/**
 * The manager's cm_enqueue, cm_cancel and cm_finish calls of one event-loop turn go out as
 * one cm_batch per Redis node (redis/fcall-batcher.ts, cloudmanager.lua). What a user would
 * notice if that went wrong: one full queue or one refused call failing the others of a
 * broadcast, a superseded manager still recording results, or commands lost when the
 * Cluster's slot map is out of date. Real redis-server and a real 3-primary cluster.
 */
import { Cluster, type Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FleetStore, QueueFullError, StaleEpochError } from '../../electron/manager/redis/fleet-store.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import { startStoreLab, type StoreLab } from '../helpers/store-lab.js';
import { startClusterLab, type RedisLab } from '../helpers/redis-cluster-lab.js';

let serial = 0;
const newBoards = (count: number) => Array.from({ length: count }, () => `batch-${++serial}`);
const execFields = (code: string) => ['o', 'exec', 'c', code, 't', '5000'];
const meta = { op: 'exec', summary: 'print(1)', createdAt: 0, expiresAt: 0, timeoutMs: 5000 };

describe('cm_batch on one server', () => {
  let lab: StoreLab;
  let redis: Redis;
  let store: FleetStore;

  beforeAll(async () => {
    lab = await startStoreLab();
    ({ redis, store } = lab);
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('queues a broadcast to 600 boards in a few calls, and a full queue fails only its own board', async () => {
    const boards = newBoards(600);
    const full = boards[300]!;
    await store.enqueue(full, 'cfull1', meta, execFields('1'), 1);
    const fcalls = vi.spyOn(redis, 'fcall');
    const outcomes = await Promise.allSettled(boards.map((id, n) => store.enqueue(id, `cb${serial}x${n}`, meta, execFields('print(1)'), 1)));
    // 600 calls at 256 a batch.
    expect(fcalls.mock.calls.filter(([fn]) => fn === 'cm_batch')).toHaveLength(3);
    fcalls.mockRestore();
    expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(599);
    const refused = outcomes[300];
    expect(refused?.status === 'rejected' && refused.reason).toBeInstanceOf(QueueFullError);
    for (const id of boards) expect(await redis.xlen(boardKeys(id).cmd)).toBe(1);
    // The same command id again is a duplicate, answered with the entry it has.
    const again = await store.enqueue(boards[0]!, `cb${serial}x0`, meta, execFields('print(1)'), 10);
    expect(again.status).toBe('duplicate');
    expect(again.eid).toMatch(/^\d+-\d+$/);
  });

  it("sends a broadcast's shared arguments once: each board still gets its own command id, code and meta", async () => {
    const boards = newBoards(300);
    const fcalls = vi.spyOn(redis, 'fcall');
    const queued = await Promise.all(boards.map((id, n) => store.enqueue(id, `cs${serial}x${n}`, meta, execFields('print("same")'), 10)));
    const batchArgs = fcalls.mock.calls.filter(([fn]) => fn === 'cm_batch').flatMap(([, , ...args]) => args);
    fcalls.mockRestore();
    // Most calls went as '=' (a call made in another millisecond starts a new run).
    expect(batchArgs.filter((arg) => arg === '=').length).toBeGreaterThan(boards.length / 2);
    for (const [n, id] of boards.entries()) {
      const [[eid, fields]] = (await redis.xrange(boardKeys(id).cmd, '-', '+')) as [[string, string[]]];
      expect(eid).toBe(queued[n]!.eid);
      expect(fields).toEqual(['i', `cs${serial}x${n}`, ...execFields('print("same")')]);
      expect(JSON.parse((await redis.hget(boardKeys(id).pending, `cs${serial}x${n}`))!)).toMatchObject({ ...meta, e: eid });
    }
    // A repeat with nothing before it is refused, and nothing is done.
    const [lone] = newBoards(1) as [string];
    const { cmd, seen, pending } = boardKeys(lone);
    await expect(redis.fcall('cm_batch', 0, '=', '3', cmd, seen, pending, '1', 'cx')).rejects.toThrow(/malformed call/);
    expect(await redis.exists(cmd)).toBe(0);
  });

  it("keeps each command's meta with its entry id, and refuses a meta that is no JSON object with nothing queued", async () => {
    const [id] = newBoards(1) as [string];
    const { cmd, seen, pending } = boardKeys(id);
    const enqueue = async (cid: string, metaJson: string) =>
      ((await redis.fcall('cm_enqueue', 3, cmd, seen, pending, cid, String(Date.now()), '10', metaJson, ...execFields('1'))) as string[])[1];
    const metaOf = async (cid: string) => JSON.parse((await redis.hget(pending, cid))!) as unknown;
    const empty = await enqueue('ce1', '{}');
    expect(await metaOf('ce1')).toEqual({ e: empty });
    const tricky = { op: 'exec', e: 'not-the-id', summary: 'print("} {")' };
    const eid = await enqueue('ce2', JSON.stringify(tricky));
    expect(await metaOf('ce2')).toEqual({ ...tricky, e: eid });
    for (const bad of ['[1]', '"text"', '', '{"op":"exec"']) await expect(enqueue('ce3', bad)).rejects.toThrow(/meta must be a JSON object/);
    expect([await redis.xlen(cmd), await redis.hexists(pending, 'ce3'), await redis.zscore(seen, 'ce3')]).toEqual([2, 0, null]);
  });

  it('records results of many boards; a superseded manager records none of its batch', async () => {
    const [mine, taken] = newBoards(2) as [string, string];
    for (const id of [mine, taken]) await store.enqueue(id, `c${id}`, meta, execFields('print(1)'), 10);
    const old = new FleetStore(redis);
    old.epoch = 3;
    await redis.set(boardKeys(taken).fence, '5');
    const history = (id: string) => ({ cid: `c${id}`, history: { i: `c${id}`, s: 'ok' } });
    const outcomes = await Promise.allSettled([old.finish(mine, [history(mine)]), old.finish(taken, [history(taken)])]);
    expect(outcomes[0]!.status).toBe('fulfilled');
    expect(outcomes[1]!.status === 'rejected' && outcomes[1].reason).toBeInstanceOf(StaleEpochError);
    expect(await redis.xlen(boardKeys(taken).log)).toBe(0);
    expect(await redis.hexists(boardKeys(taken).pending, `c${taken}`)).toBe(1);
    expect(await redis.xlen(boardKeys(mine).log)).toBe(1);
    await old.close();
  });

  it("recording a board's result empties its queue up to that command, and keeps what came after (§4.2)", async () => {
    const [id] = newBoards(1) as [string];
    const queue = boardKeys(id).cmd;
    const first = await store.enqueue(id, `c${id}a`, meta, execFields('print(1)'), 10);
    const second = await store.enqueue(id, `c${id}b`, meta, execFields('print(2)'), 10);
    const history = (cid: string) => ({ cid, history: { i: cid, s: 'ok' } });
    // A command finished without the board's result (timed out, say): the board may still claim it.
    await store.finish(id, [history(`c${id}a`)]);
    expect(await redis.xlen(queue)).toBe(2);
    // The board sent the first one's result: it never claims the first again, and the second waits for it.
    await store.finish(id, [history(`c${id}a`)], first.eid);
    expect((await redis.xrange(queue, '-', '+')).map(([eid]) => eid)).toEqual([second.eid]);
    await store.finish(id, [history(`c${id}b`)], second.eid);
    expect(await redis.xlen(queue)).toBe(0);
    await expect(store.finish(id, [history(`c${id}b`)], 'not-an-id')).rejects.toThrow(/malformed EID/);
  });
});

describe('cm_batch on a Redis Cluster', () => {
  let lab: RedisLab;
  let cluster: Cluster;
  let store: FleetStore;

  beforeAll(async () => {
    lab = await startClusterLab({ masters: 3, replicas: 0 });
    cluster = new Cluster(lab.seeds);
    await cluster.ping();
    store = new FleetStore(cluster);
    await store.loadFunctions();
  }, 60_000);
  afterAll(async () => {
    await store?.close();
    cluster?.disconnect();
    await lab?.stop();
  });

  it('queues for boards of every primary once each, also with an out-of-date slot map', async () => {
    for (const stale of [false, true]) {
      const boards = newBoards(60);
      if (stale) {
        // Every slot pointed at the wrong primary, as after a resharding the client has not seen yet.
        const primaries = [...new Set(cluster.slots.map((owners) => owners?.[0]).filter(Boolean))] as string[];
        cluster.slots.forEach((owners, slot) => {
          if (owners?.[0]) cluster.slots[slot] = [primaries[(primaries.indexOf(owners[0]) + 1) % primaries.length]!];
        });
      }
      const outcomes = await Promise.all(boards.map((id) => store.enqueue(id, `c${id}`, meta, execFields('print(1)'), 10)));
      expect(outcomes.map((outcome) => outcome.status)).toEqual(boards.map(() => 'ok'));
      for (const id of boards) expect(await cluster.xlen(boardKeys(id).cmd)).toBe(1);
    }
  });
});

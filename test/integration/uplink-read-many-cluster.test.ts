/**
 * On a Redis Cluster the uplink reader's rounds go out as one cm_uplink_read_many (and one
 * cm_uplink_trim_many) per primary, grouped by the client's slot map (redis/uplink-calls.ts).
 * What a user would notice if that went wrong: entries of boards on some primaries never
 * read, or lost, when the map is out of date (a slot moved, a failover). Real 3-primary
 * cluster on loopback.
 */
import { Cluster, type Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ClusterFcall } from '../../electron/manager/redis/cluster-fcall.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import { slotOf } from '../../electron/manager/redis/redis-nodes.js';
import { UplinkCalls } from '../../electron/manager/redis/uplink-calls.js';
import { startClusterLab, type RedisLab } from '../helpers/redis-cluster-lab.js';
import { FUNCTION_LIBRARY as LIBRARY } from '../../electron/manager/redis/function-library.js';

const LIMITS = { count: 128, maxEntryBytes: 32 * 1024, maxBytes: 128 * 1024, maxTotalBytes: 1024 * 1024 };

describe('uplink rounds on a Redis Cluster', () => {
  let lab: RedisLab;
  let cluster: Cluster;
  let serial = 0;

  beforeAll(async () => {
    lab = await startClusterLab({ masters: 3, replicas: 0 });
    cluster = new Cluster(lab.seeds);
    await cluster.ping();
    await Promise.all(cluster.nodes('master').map((node) => node.call('FUNCTION', 'LOAD', 'REPLACE', LIBRARY)));
  }, 60_000);
  afterAll(async () => {
    cluster?.disconnect();
    await lab?.stop();
  });

  /** Boards on every primary, each with entries 1..3 on its uplink. */
  async function boardsWithEntries(count: number): Promise<string[]> {
    const boards = Array.from({ length: count }, () => `cl-${++serial}`);
    for (const id of boards) for (const n of [1, 2, 3]) await cluster.xadd(boardKeys(id).up, '*', 'k', 'hb', 'n', String(n));
    return boards;
  }

  function calls(epoch: number | undefined = 4) {
    const fcalls = new ClusterFcall(cluster);
    const alone = vi.spyOn(fcalls, 'call');
    const uplinks = new UplinkCalls({
      redis: cluster,
      fcalls,
      epoch: () => epoch,
      loadFunctions: async () => undefined,
    });
    return { uplinks, alone };
  }

  const ns = (batch: { entries: Array<{ fields: Buffer[] }> }) => batch.entries.map((entry) => entry.fields[3]!.toString());

  it('reads and trims a round with one call per primary, boards of all three', async () => {
    const boards = await boardsWithEntries(30);
    expect(new Set(boards.map((id) => cluster.slots[slotOf(boardKeys(id).up)]?.[0])).size).toBe(3);
    const { uplinks, alone } = calls();
    const many = cluster.nodes('master').map((node) => vi.spyOn(node as Redis & { fcallBuffer: () => unknown }, 'fcallBuffer'));
    const batches = await uplinks.read(
      boards.map((id) => [id, '0-0']),
      LIMITS,
    );
    expect(batches.map(ns)).toEqual(boards.map(() => ['1', '2', '3']));
    expect(alone).not.toHaveBeenCalled();
    expect(many.reduce((sum, spy) => sum + spy.mock.calls.length, 0)).toBe(3);
    await uplinks.trim(batches.map((batch) => [batch.boardId, batch.entries.at(-1)!.eid]));
    for (const id of boards) expect(await cluster.xlen(boardKeys(id).up)).toBe(0);
    many.forEach((spy) => spy.mockRestore());
  });

  it.each([
    ["fenced (a fence not served there fails the node's call)", 4],
    ['not fenced (each board not served there fails alone)', undefined],
  ])('with an out-of-date slot map every board is still read once and trimmed, one by one following MOVED: %s', async (_, epoch) => {
    const boards = await boardsWithEntries(30);
    // Every slot pointed at the wrong primary, as after a resharding the client has not seen yet.
    const saved = cluster.slots.map((owners) => owners?.slice());
    const primaries = [...new Set(saved.map((owners) => owners?.[0]).filter(Boolean))] as string[];
    cluster.slots.forEach((owners, slot) => {
      if (!owners?.[0]) return;
      cluster.slots[slot] = [primaries[(primaries.indexOf(owners[0]) + 1) % primaries.length]!];
    });
    const { uplinks, alone } = calls(epoch);
    const batches = await uplinks.read(
      boards.map((id) => [id, '0-0']),
      LIMITS,
    );
    expect(batches.map((batch) => batch.error?.message)).toEqual(boards.map(() => undefined));
    expect(batches.map(ns)).toEqual(boards.map(() => ['1', '2', '3']));
    expect(alone).toHaveBeenCalled();
    await uplinks.trim(batches.map((batch) => [batch.boardId, batch.entries.at(-1)!.eid]));
    for (const id of boards) expect(await cluster.xlen(boardKeys(id).up)).toBe(0);
  });
});

/**
 * On one Redis server the uplink reader reads a round of boards with one cm_uplink_read_many
 * and deletes what it handled with one cm_uplink_trim_many (cloudmanager.lua). What a user
 * would notice if that went wrong: a board with a broken uplink holding up the others, a
 * round's reply growing without bound, or a manager that lost its lease still reading or
 * deleting. Real redis-server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { FleetStore, StaleEpochError } from '../../electron/manager/redis/fleet-store.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import { UplinkReader } from '../../electron/manager/fleet/uplink-reader.js';
import { startStoreLab, type StoreLab } from '../helpers/store-lab.js';
import { waitFor } from '../helpers/lab.js';

describe('reading and trimming many uplinks in one call', () => {
  let lab: StoreLab;
  let redis: Redis;
  let store: FleetStore;
  let serial = 0;

  beforeAll(async () => {
    lab = await startStoreLab();
    ({ redis, store } = lab);
  });
  afterAll(async () => {
    await lab?.close();
  });

  const limits = { count: 128, maxEntryBytes: 32 * 1024, maxBytes: 128 * 1024, maxTotalBytes: 1024 * 1024 };
  const newBoards = (count: number) => Array.from({ length: count }, () => `many-${++serial}`);
  const write = (id: string, n: number, pad = '') => redis.xadd(boardKeys(id).up, '*', 'k', 'hb', 'n', String(n), 'p', pad);

  it('a board whose uplink is broken does not hold up the others, whose handled entries are deleted', async () => {
    const [a, broken, c] = newBoards(3) as [string, string, string];
    await write(a, 1);
    await write(a, 2);
    await redis.set(boardKeys(broken).up, 'not a stream');
    await write(c, 3);
    const handled: string[] = [];
    const errors: string[] = [];
    const reader = new UplinkReader(
      store,
      () => true,
      (id, entry) => handled.push(`${id}:${entry.fields[3]!.toString()}`),
      (id, error) => errors.push(`${id}: ${error.message}`),
    );
    for (const id of [a, broken, c]) reader.notified(id);
    await waitFor(() => handled.length === 3 && errors.length === 1, 5_000, 'both boards read, the broken one reported');
    await reader.idle();
    expect(handled).toEqual([`${a}:1`, `${a}:2`, `${c}:3`]);
    expect(errors[0]).toMatch(new RegExp(`^${broken}: .*WRONGTYPE`));
    await waitFor(async () => (await redis.xlen(boardKeys(a).up)) + (await redis.xlen(boardKeys(c).up)) === 0, 5_000, 'handled entries deleted');
    expect(await redis.get(boardKeys(broken).up)).toBe('not a stream');
    reader.stop();
  });

  it('stops adding boards once the reply holds 1 MiB; the boards left are read in the next rounds, nothing lost', async () => {
    const boards = newBoards(12);
    const pad = 'x'.repeat(30_000);
    // 12 boards × 4 entries of ~30 KB (under a board's 128 KiB a read): 1.4 MB in all, more than one round may carry.
    for (const id of boards) for (let n = 1; n <= 4; n++) await write(id, n, pad);
    const first = await store.readUplinks(
      boards.map((id) => [id, '0-0']),
      limits,
    );
    const read = first.filter((batch) => !batch.unread);
    expect(read.length).toBeGreaterThan(0);
    expect(read.length).toBeLessThan(boards.length);
    // Only a tail is left unread, each read board whole.
    expect(first.slice(read.length).every((batch) => batch.unread && batch.entries.length === 0)).toBe(true);
    for (const batch of read) expect(batch.entries).toHaveLength(4);

    const handled = new Map<string, string[]>();
    const reader = new UplinkReader(
      store,
      () => true,
      (id, entry) => handled.set(id, [...(handled.get(id) ?? []), entry.fields[3]!.toString()]),
      (_id, error) => {
        throw error;
      },
    );
    for (const id of boards) reader.notified(id);
    await waitFor(() => boards.every((id) => handled.get(id)?.length === 4), 10_000, 'every entry of every board handled');
    await reader.idle();
    for (const id of boards) expect(handled.get(id)).toEqual(['1', '2', '3', '4']);
    reader.stop();
  });

  it('a superseded manager reads nothing and deletes nothing on any board of the round', async () => {
    const [mine, taken] = newBoards(2) as [string, string];
    await write(mine, 1);
    // An entry over the limit: a read would delete it.
    await redis.xadd(boardKeys(mine).up, '*', 'k', 'hb', 'p', 'y'.repeat(40_000));
    await write(taken, 2);
    // Another manager (epoch 8) already acted on one board of the round.
    await redis.set(boardKeys(taken).fence, '8');
    const old = new FleetStore(redis);
    old.epoch = 7;
    try {
      await expect(
        old.readUplinks(
          [
            [mine, '0-0'],
            [taken, '0-0'],
          ],
          limits,
        ),
      ).rejects.toBeInstanceOf(StaleEpochError);
      expect(await redis.xlen(boardKeys(mine).up)).toBe(2);
      const [last] = await redis.xrevrange(boardKeys(mine).up, '+', '-', 'COUNT', 1);
      await expect(
        old.trimUplinks([
          [mine, last![0]],
          [taken, '0-1'],
        ]),
      ).rejects.toBeInstanceOf(StaleEpochError);
      expect(await redis.xlen(boardKeys(mine).up)).toBe(2);
      expect(await redis.xlen(boardKeys(taken).up)).toBe(1);

      // The newer manager reads both; the oversized entry comes back as its size and is gone.
      const current = new FleetStore(redis);
      current.epoch = 8;
      const batches = await current.readUplinks(
        [
          [mine, '0-0'],
          [taken, '0-0'],
        ],
        limits,
      );
      expect(batches.map((batch) => batch.entries.length)).toEqual([2, 1]);
      expect(batches[0]!.entries[1]!.oversize).toBeGreaterThan(40_000);
      expect(await redis.xlen(boardKeys(mine).up)).toBe(1);
      await current.close();
    } finally {
      await old.close();
    }
  });
});

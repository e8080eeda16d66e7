/**
 * The uplink reader counts a board's keyspace notifications against the entries it read
 * (uplink-reader.ts): a notification of an entry already read costs no read, and no entry
 * is ever left unread, whether its notification comes before, during or after the read
 * that gets it, or never (a resync). Real redis-server; the test delivers the notifications.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Redis } from 'ioredis';
import { FleetStore } from '../../electron/manager/redis/fleet-store.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import { UplinkReader } from '../../electron/manager/fleet/uplink-reader.js';
import { startStoreLab, type StoreLab } from '../helpers/store-lab.js';
import { waitFor } from '../helpers/lab.js';

describe('uplink reads and their notifications', () => {
  let lab: StoreLab;
  let redis: Redis;
  let store: FleetStore;
  let board = 0;

  beforeAll(async () => {
    lab = await startStoreLab();
    ({ redis, store } = lab);
  });
  afterEach(() => vi.restoreAllMocks());
  afterAll(async () => {
    await lab?.close();
  });

  /** A fresh board, a reader for it, what it handled (the `n` of each entry) and how often it read Redis. */
  function setup() {
    const boardId = `notice-${++board}`;
    const handled: string[] = [];
    const reader = new UplinkReader(
      store,
      (id) => id === boardId,
      (_id, entry) => handled.push(entry.fields[3]!.toString()),
      (_id, error) => {
        throw error;
      },
    );
    const reads = vi.spyOn(store, 'readUplinks');
    const write = (n: number) => redis.xadd(boardKeys(boardId).up, '*', 'k', 'hb', 'n', String(n));
    return { boardId, handled, reader, reads, write };
  }

  it('reads an entry whose notification comes after the read only once, and the next entry at once', async () => {
    const { boardId, handled, reader, reads, write } = setup();
    for (const n of [1, 2, 3]) await write(n);
    reader.notified(boardId);
    await waitFor(() => handled.length === 3, 5_000, 'three entries handled');
    await reader.idle();
    expect(reads).toHaveBeenCalledTimes(1);
    // The notifications of entries 2 and 3 arrive late: nothing is left to read.
    reader.notified(boardId);
    reader.notified(boardId);
    expect(reader.hasUnread(boardId)).toBe(false);
    await reader.idle();
    expect(reads).toHaveBeenCalledTimes(1);
    await write(4);
    reader.notified(boardId);
    await waitFor(() => handled.length === 4, 5_000, 'the next entry handled');
    expect(handled).toEqual(['1', '2', '3', '4']);
    reader.stop();
  });

  it('reads entries whose notifications were lost at a resync, and notices after it as usual', async () => {
    const { boardId, handled, reader, write } = setup();
    for (const n of [1, 2, 3]) await write(n);
    // Only entry 1's notification came (the subscriber was away for the others), then the resync.
    reader.notified(boardId);
    reader.markDirty(boardId);
    await waitFor(() => handled.length === 3, 5_000, 'entries of the resync handled');
    await reader.idle();
    await write(4);
    reader.notified(boardId);
    await waitFor(() => handled.length === 4, 5_000, 'the entry after the resync handled');
    reader.stop();
  });

  it('reads again when a notification that came during a read is of an entry after it', async () => {
    const { boardId, handled, reader, reads, write } = setup();
    const read = FleetStore.prototype.readUplinks.bind(store);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let replied = false;
    reads.mockImplementation(async (...args) => {
      const result = await read(...args);
      if (!replied) {
        replied = true;
        await held; // the reply is on its way; entry 2 is written meanwhile
      }
      return result;
    });
    await write(1);
    reader.notified(boardId);
    await waitFor(() => replied, 5_000, 'the first read done');
    await write(2);
    reader.notified(boardId);
    expect(reader.hasUnread(boardId)).toBe(true);
    release();
    await waitFor(() => handled.length === 2, 5_000, 'the entry written during the read handled');
    expect(handled).toEqual(['1', '2']);
    reader.stop();
  });

  it('does not read again when a notification that came during a read is of an entry it got', async () => {
    const { boardId, handled, reader, reads, write } = setup();
    const read = FleetStore.prototype.readUplinks.bind(store);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let asked = false;
    reads.mockImplementation(async (...args) => {
      if (!asked) {
        asked = true;
        await held; // the read is on its way to Redis; entry 2 is written before it gets there
      }
      return read(...args);
    });
    await write(1);
    reader.notified(boardId);
    await waitFor(() => asked, 5_000, 'the first read sent');
    await write(2);
    reader.notified(boardId);
    release();
    await waitFor(() => handled.length === 2, 5_000, 'both entries handled by one read');
    await reader.idle();
    expect(reads).toHaveBeenCalledTimes(1);
    await write(3);
    reader.notified(boardId);
    await waitFor(() => handled.length === 3, 5_000, 'the next entry handled');
    reader.stop();
  });
});

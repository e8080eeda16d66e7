/**
 * The telemetry recorder against an in-memory store: the ring encoding, stale slots after
 * a day, online share across transitions, lowest free memory, the partial current bucket,
 * one write per bucket, restarts inside a bucket, and Redis errors that must not escape.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  MEM_FREE_UNKNOWN,
  TELEMETRY_BUCKET_MS,
  TELEMETRY_RING_BYTES,
  TELEMETRY_SLOTS,
  TelemetryRecorder,
  decodeRing,
  encodeSlot,
  slotIndex,
} from '../../electron/manager/fleet/telemetry.js';
import { TELEMETRY_VALUE_BYTES, type TelemetryStore } from '../../electron/manager/redis/telemetry-store.js';
import type { LogLevel } from '../../electron/manager/log.js';

const MIN = 60_000;
const BUCKET = TELEMETRY_BUCKET_MS;
/** A bucket boundary in 2025 (bucket numbers of today's dates are about 4.9 million). */
const T0 = Math.floor(Date.UTC(2025, 5, 1) / BUCKET) * BUCKET;
const N0 = T0 / BUCKET;

type Slot = { boardId: string; offset: number; bytes: Buffer };

/** What TelemetryStore does in Redis (a 1,920-byte string per board), in memory. */
class FakeTelemetryStore {
  readonly values = new Map<string, Buffer>();
  readonly writes: Slot[][] = [];
  readonly reads: string[] = [];
  failWrites = false;
  failReads = false;

  async writeSlots(slots: Slot[]): Promise<void> {
    if (this.failWrites) throw new Error("READONLY You can't write against a read only replica.");
    this.writes.push(slots);
    for (const { boardId, offset, bytes } of slots) {
      let value = this.values.get(boardId);
      if (value?.length !== TELEMETRY_VALUE_BYTES) value = Buffer.alloc(TELEMETRY_VALUE_BYTES);
      bytes.copy(value, offset);
      this.values.set(boardId, value);
    }
  }

  async read(boardId: string): Promise<Buffer | null> {
    this.reads.push(boardId);
    if (this.failReads) throw new Error('connection lost');
    return this.values.get(boardId) ?? null;
  }

  async delete(boardId: string): Promise<void> {
    this.values.delete(boardId);
  }

  writeCount(): number {
    return this.writes.reduce((sum, batch) => sum + batch.length, 0);
  }
}

function setup(options: { now?: number } = {}) {
  const fake = new FakeTelemetryStore();
  const logs: Array<{ level: LogLevel; message: string }> = [];
  let now = options.now ?? T0;
  const recorder = new TelemetryRecorder({
    store: fake as unknown as TelemetryStore,
    log: (level, message) => logs.push({ level, message }),
    now: () => now,
  });
  return {
    fake,
    logs,
    recorder,
    setNow: (t: number) => {
      now = t;
    },
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ring encoding', () => {
  it('lays a slot out as bucket number, free memory and online share, big-endian', () => {
    const bytes = encodeSlot(0x4a1b2c, { memFree: 0x01020304, onlinePct: 50 });
    expect([...bytes]).toEqual([0x4a, 0x1b, 0x2c, 0x01, 0x02, 0x03, 0x04, 50]);
    expect([...encodeSlot(7, { memFree: null, onlinePct: 100 }).subarray(3)]).toEqual([0xff, 0xff, 0xff, 0xff, 100]);
  });

  it('fills exactly the value the store keeps', () => {
    expect(TELEMETRY_RING_BYTES).toBe(TELEMETRY_VALUE_BYTES);
    expect(TELEMETRY_RING_BYTES).toBe(1_920);
  });

  it('decodes what it encodes', () => {
    const ring = Buffer.alloc(TELEMETRY_RING_BYTES);
    const written = new Map([
      [N0 - 239, { memFree: 0, onlinePct: 0 }],
      [N0 - 10, { memFree: 123_456, onlinePct: 17 }],
      [N0 - 1, { memFree: null, onlinePct: 100 }],
      [N0, { memFree: MEM_FREE_UNKNOWN - 1, onlinePct: 42 }],
    ]);
    for (const [n, value] of written) encodeSlot(n, value).copy(ring, slotIndex(n) * 8);
    expect(decodeRing(ring, N0)).toEqual(written);
  });

  it('ignores slots older than 240 buckets and slots in the wrong place', () => {
    const ring = Buffer.alloc(TELEMETRY_RING_BYTES);
    encodeSlot(N0 - 240, { memFree: 1, onlinePct: 1 }).copy(ring, slotIndex(N0 - 240) * 8);
    encodeSlot(N0 - 5, { memFree: 2, onlinePct: 2 }).copy(ring, slotIndex(N0 - 4) * 8);
    encodeSlot(N0 + 1, { memFree: 3, onlinePct: 3 }).copy(ring, slotIndex(N0 + 1) * 8);
    expect(decodeRing(ring, N0).size).toBe(0);
    // A day later the same slot index holds a new bucket; only that one counts.
    expect(decodeRing(ring, N0 - 1).get(N0 - 240)).toEqual({ memFree: 1, onlinePct: 1 });
  });

  it('decodes garbage to nothing without throwing', () => {
    expect(decodeRing(null, N0).size).toBe(0);
    expect(decodeRing(Buffer.from('hello'), N0).size).toBe(0);
    expect(decodeRing(Buffer.alloc(TELEMETRY_RING_BYTES + 1, 0xff), N0).size).toBe(0);
    // Random bytes of the right length: whatever survives is valid.
    let seed = 12345;
    const random = Buffer.alloc(TELEMETRY_RING_BYTES);
    for (let i = 0; i < random.length; i++) random[i] = (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (const [n, value] of decodeRing(random, N0)) {
      expect(n).toBeGreaterThan(N0 - TELEMETRY_SLOTS);
      expect(n).toBeLessThanOrEqual(N0);
      expect(value.onlinePct).toBeLessThanOrEqual(100);
    }
  });

  it('keeps working when bucket numbers pass 2^24 (short buckets)', () => {
    const n = 2 ** 24 + 1_000;
    const ring = Buffer.alloc(TELEMETRY_RING_BYTES);
    encodeSlot(n, { memFree: 9, onlinePct: 9 }).copy(ring, slotIndex(n) * 8);
    expect(decodeRing(ring, n + 3).get(n)).toEqual({ memFree: 9, onlinePct: 9 });
    expect(decodeRing(ring, n + 240).size).toBe(0);
  });
});

describe('TelemetryRecorder', () => {
  it('keeps the lowest free memory of a bucket', async () => {
    const { recorder } = setup();
    recorder.sample('b1', 5_000, T0 + 1_000);
    recorder.sample('b1', 3_000, T0 + 2_000);
    recorder.sample('b1', null, T0 + 3_000);
    recorder.sample('b1', 4_000, T0 + 4_000);
    recorder.sample('b1', 6_000, T0 + BUCKET + 1);
    const { points } = await recorder.read('b1', T0 + BUCKET + 2);
    expect(points.map((point) => point.memFree)).toEqual([3_000, 6_000]);
  });

  it('computes the online share across transitions and whole buckets', async () => {
    const { recorder } = setup();
    recorder.online('b1', T0 + 3 * MIN); // bucket 0: online from minute 3 of 6 → 50
    recorder.offline('b1', T0 + BUCKET + 1 * MIN); // bucket 1: minute 0-1
    recorder.online('b1', T0 + BUCKET + 2 * MIN); // … and 2-4: 3 of 6 → 50
    recorder.offline('b1', T0 + BUCKET + 4 * MIN);
    recorder.online('b1', T0 + 2 * BUCKET); // buckets 2 and 3 whole → 100, 100
    recorder.sample('b1', 1_000, T0 + 4 * BUCKET + 1.5 * MIN);
    recorder.offline('b1', T0 + 4 * BUCKET + 1.5 * MIN); // bucket 4: 1.5 of 6 → 25
    recorder.online('b1', T0 + 4 * BUCKET + 2 * MIN);
    recorder.online('b1', T0 + 4 * BUCKET + 3 * MIN); // twice online counts once
    recorder.offline('b1', T0 + 4 * BUCKET + 3.5 * MIN); // … + 1.5 → 50
    recorder.offline('b1', T0 + 4 * BUCKET + 5 * MIN);
    const { bucketMs, points } = await recorder.read('b1', T0 + 5 * BUCKET + 1);
    expect(bucketMs).toBe(BUCKET);
    expect(points).toEqual([
      { t: T0, memFree: null, onlinePct: 50 },
      { t: T0 + BUCKET, memFree: null, onlinePct: 50 },
      { t: T0 + 2 * BUCKET, memFree: null, onlinePct: 100 },
      { t: T0 + 3 * BUCKET, memFree: null, onlinePct: 100 },
      { t: T0 + 4 * BUCKET, memFree: 1_000, onlinePct: 50 },
    ]);
  });

  it('shows the current partial bucket, with the online share of its time so far', async () => {
    const { fake, recorder } = setup();
    recorder.online('b1', T0 + 1 * MIN);
    recorder.sample('b1', 2_000, T0 + 1 * MIN);
    recorder.sample('b1', 1_500, T0 + 2 * MIN);
    expect(await recorder.read('b1', T0 + 3 * MIN)).toEqual({
      bucketMs: BUCKET,
      points: [{ t: T0, memFree: 1_500, onlinePct: 67 }], // 2 of the 3 minutes so far
    });
    expect(fake.writeCount()).toBe(0);
    expect((await recorder.read('b2', T0 + 3 * MIN)).points).toEqual([]);
  });

  it('writes once per bucket and board, 8 bytes at the slot offset, never per heartbeat', async () => {
    const { fake, recorder, setNow } = setup();
    for (let i = 0; i < 72; i++) {
      recorder.sample('b1', 10_000 - i, T0 + i * 5_000);
      recorder.sample('b2', 20_000, T0 + i * 5_000);
    }
    expect(fake.writeCount()).toBe(0);
    recorder.sample('b1', 9_000, T0 + BUCKET + 1); // b1 moves to the next bucket
    setNow(T0 + BUCKET + 2);
    await recorder.stop(); // finished buckets of both, and b1's partial one
    expect(fake.writes).toHaveLength(1);
    const slots = fake.writes[0]!;
    expect(slots.map(({ boardId, offset, bytes }) => [boardId, offset, bytes.length]).sort()).toEqual(
      [
        ['b1', slotIndex(N0) * 8, 8],
        ['b1', slotIndex(N0 + 1) * 8, 8],
        ['b2', slotIndex(N0) * 8, 8],
      ].sort(),
    );
    expect(fake.values.get('b1')!.length).toBe(TELEMETRY_RING_BYTES);
  });

  it('ignores stale slots once the ring has wrapped after 24 h', async () => {
    const { fake, recorder, setNow } = setup();
    recorder.sample('b1', 1_000, T0);
    recorder.sample('b1', 2_000, T0 + 10 * BUCKET);
    recorder.sample('b1', 3_000, T0 + TELEMETRY_SLOTS * BUCKET + 1); // same slot as T0, a day later
    setNow(T0 + TELEMETRY_SLOTS * BUCKET + 2);
    await recorder.stop();
    const later = new TelemetryRecorder({ store: fake as unknown as TelemetryStore, log: () => {}, now: () => T0 });
    expect((await later.read('b1', T0 + TELEMETRY_SLOTS * BUCKET + 5)).points).toEqual([
      { t: T0 + 10 * BUCKET, memFree: 2_000, onlinePct: 0 },
      { t: T0 + TELEMETRY_SLOTS * BUCKET, memFree: 3_000, onlinePct: 0 },
    ]);
    // Another 10 buckets on, the bucket of T0 + 10 buckets is a day old too.
    expect((await later.read('b1', T0 + (TELEMETRY_SLOTS + 10) * BUCKET)).points.map((point) => point.memFree)).toEqual([3_000]);
  });

  it('does not write a bucket without samples and without online time', async () => {
    const { fake, recorder, setNow } = setup();
    recorder.online('b1', T0 + MIN);
    recorder.offline('b1', T0 + MIN);
    recorder.offline('b2', T0 + MIN); // never online
    setNow(T0 + 2 * BUCKET);
    await recorder.stop();
    expect(fake.writeCount()).toBe(0);
    expect((await recorder.read('b1')).points).toEqual([]);
  });

  it('adds up a bucket split by a restart of the manager', async () => {
    const first = setup();
    first.recorder.online('b1', T0);
    first.recorder.sample('b1', 4_000, T0 + MIN);
    first.setNow(T0 + 2 * MIN);
    await first.recorder.stop(); // 2 of 6 minutes: 33 of the whole bucket
    const stored = decodeRing(first.fake.values.get('b1')!, N0).get(N0);
    expect(stored).toEqual({ memFree: 4_000, onlinePct: 33 });

    let now = T0 + 3 * MIN;
    const second = new TelemetryRecorder({ store: first.fake as unknown as TelemetryStore, log: () => {}, now: () => now });
    second.online('b1', T0 + 3 * MIN);
    second.sample('b1', 5_000, T0 + 3 * MIN);
    // So far: 1.98 (33 % of 6 minutes) + 1.5 minutes online out of 4.5.
    expect((await second.read('b1', T0 + 4.5 * MIN)).points).toEqual([{ t: T0, memFree: 4_000, onlinePct: 77 }]);
    now = T0 + BUCKET + 1;
    await second.stop();
    // 2 + 3 of 6 minutes; the lowest memory of both halves.
    expect(decodeRing(first.fake.values.get('b1')!, N0 + 1).get(N0)).toEqual({ memFree: 4_000, onlinePct: 83 });
  });

  it('rolls buckets on its timer, writing every board in one batch', async () => {
    vi.useFakeTimers({ now: T0 + 30_000, toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const fake = new FakeTelemetryStore();
    const recorder = new TelemetryRecorder({ store: fake as unknown as TelemetryStore, log: () => {} });
    recorder.start();
    recorder.online('b1');
    recorder.sample('b1', 7_000);
    recorder.sample('b2', 8_000);
    await vi.advanceTimersByTimeAsync(BUCKET);
    expect(fake.writes).toHaveLength(1);
    expect(fake.writes[0]!.map((slot) => slot.boardId).sort()).toEqual(['b1', 'b2']);
    // The next roll writes b1 (still online, 100 %), not b2 (no data).
    await vi.advanceTimersByTimeAsync(BUCKET);
    expect(fake.writes).toHaveLength(2);
    expect(fake.writes[1]!.map((slot) => slot.boardId)).toEqual(['b1']);
    const n = Math.floor((T0 + 30_000) / BUCKET);
    // Bucket 0: online from second 30 of 360.
    expect(decodeRing(fake.values.get('b1')!, n + 2)).toEqual(
      new Map([
        [n, { memFree: 7_000, onlinePct: 92 }],
        [n + 1, { memFree: null, onlinePct: 100 }],
      ]),
    );
    await recorder.stop();
  });

  it('logs Redis errors while writing and carries on', async () => {
    const { fake, logs, recorder, setNow } = setup();
    recorder.sample('b1', 1_000, T0);
    fake.failWrites = true;
    setNow(T0 + BUCKET);
    await expect(recorder.stop()).resolves.toBeUndefined();
    expect(logs.some((line) => line.level === 'warn' && line.message.includes('could not write the telemetry of 1 board'))).toBe(true);
    fake.failWrites = false;
    recorder.sample('b1', 2_000, T0 + BUCKET + 1);
    setNow(T0 + 2 * BUCKET);
    await recorder.stop();
    expect(decodeRing(fake.values.get('b1')!, N0 + 2).get(N0 + 1)).toEqual({ memFree: 2_000, onlinePct: 0 });
  });

  it('still shows a finished bucket while its write is on the way', async () => {
    const { fake, recorder, setNow } = setup();
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const write = fake.writeSlots.bind(fake);
    fake.writeSlots = async (slots) => {
      await gate;
      return write(slots);
    };
    recorder.sample('b1', 1_000, T0);
    setNow(T0 + BUCKET);
    const stopping = recorder.stop();
    expect((await recorder.read('b1', T0 + BUCKET + 1)).points).toEqual([{ t: T0, memFree: 1_000, onlinePct: 0 }]);
    release();
    await stopping;
    expect((await recorder.read('b1', T0 + BUCKET + 1)).points).toEqual([{ t: T0, memFree: 1_000, onlinePct: 0 }]);
    expect(fake.writeCount()).toBe(1);
  });

  it('reads garbage and unreadable values as no stored points', async () => {
    const { fake, logs, recorder } = setup();
    fake.values.set('b1', Buffer.from('not a telemetry ring'));
    recorder.sample('b1', 1_000, T0);
    expect((await recorder.read('b1', T0 + MIN)).points).toEqual([{ t: T0, memFree: 1_000, onlinePct: 0 }]);
    fake.failReads = true;
    expect((await recorder.read('b1', T0 + MIN)).points).toEqual([{ t: T0, memFree: 1_000, onlinePct: 0 }]);
    expect(logs.some((line) => line.level === 'warn')).toBe(true);
  });

  it('forgets a removed board: memory and key', async () => {
    const { fake, recorder, setNow } = setup();
    recorder.sample('b1', 1_000, T0);
    recorder.sample('b1', 1_000, T0 + BUCKET);
    setNow(T0 + BUCKET + 1);
    await recorder.stop();
    recorder.sample('b1', 1_000, T0 + BUCKET + 2);
    expect(fake.values.has('b1')).toBe(true);
    await recorder.forget('b1');
    expect(fake.values.has('b1')).toBe(false);
    expect((await recorder.read('b1')).points).toEqual([]);
    setNow(T0 + 3 * BUCKET);
    await recorder.stop();
    expect(fake.values.has('b1')).toBe(false);
  });

  it('refuses board ids that would not make a key', () => {
    const { recorder } = setup();
    expect(() => recorder.sample('a}b', 1)).toThrow(/invalid board id/);
  });
});

/**
 * Per-board telemetry for the UI's 24-hour chart: the lowest free memory and the share of
 * time online, per 6-minute bucket. Heartbeats and online/offline changes accumulate in
 * memory (one bucket per board); when a bucket ends, its 8 bytes go to the board's ring in
 * Redis — every board in one pipeline — so a heartbeat never causes a write.
 *
 * Ring encoding, the value of `cm:{ID}:tm` (firmware/PROTOCOL.md §2): 240 slots × 8 bytes
 * = 1,920 bytes. Bucket number n = floor(t / bucketMs) lives in slot n % 240, at byte
 * offset slot × 8, written with SETRANGE (a write touches 8 bytes):
 *   bytes 0-2  n mod 2^24, unsigned big-endian; 0 = empty slot
 *   bytes 3-6  lowest free memory seen in the bucket (bytes), unsigned 32-bit big-endian;
 *              0xFFFFFFFF = unknown
 *   byte  7    share of the bucket the board was online, 0-100
 * A slot counts only when its n is one of the last 240 buckets (yesterday's slots are
 * stale) and belongs to its position; anything else, and a value of any other length,
 * decodes to nothing. With 6-minute buckets n stays below 2^24 until 2161; shorter buckets
 * wrap, which the window check absorbs.
 *
 * Online share of a stored bucket is the share of the whole bucket; the current, partial
 * bucket in read() shows the share of its time so far. stop() writes partial buckets, and
 * the first roll after a start (or a stop) adds them to what it writes for the same bucket,
 * so a restart of the manager inside a bucket loses nothing.
 */
import type { TelemetryStore } from '../redis/telemetry-store.js';
import { assertBoardId } from '../redis/keys.js';
import type { Logger } from '../log.js';
import type { Fleet } from './fleet.js';

export const TELEMETRY_BUCKET_MS = 6 * 60_000; // 240 buckets = 24 h
export const TELEMETRY_SLOTS = 240;
export const TELEMETRY_SLOT_BYTES = 8;
export const TELEMETRY_RING_BYTES = TELEMETRY_SLOTS * TELEMETRY_SLOT_BYTES;
/** Stored for "no free-memory sample in this bucket". */
export const MEM_FREE_UNKNOWN = 0xffff_ffff;

const BUCKET_NUMBER_RANGE = 2 ** 24;
/** Finished buckets waiting for the roll; past this many they are written at once. */
const READY_FLUSH_LIMIT = 10_000;
/**
 * While Redis does not answer, finished buckets wait in memory up to this many (about an
 * hour of a 10,000-board fleet); beyond it the oldest tenth is dropped.
 */
const MAX_UNWRITTEN = 100_000;
/** The roll timer never fires more often than this, whatever the clock says. */
const MIN_ROLL_DELAY_MS = 100;

export interface TelemetryPoint {
  /** Bucket start, ms epoch. */
  t: number;
  /** Lowest free memory seen in the bucket, bytes. */
  memFree: number | null;
  /** 0-100: share of the bucket the board was online. */
  onlinePct: number;
}

export interface BoardTelemetry {
  bucketMs: number;
  /** Oldest first, only buckets with data, last 240 buckets, including the current partial one. */
  points: TelemetryPoint[];
}

export interface TelemetryRecorderOptions {
  store: TelemetryStore;
  log: Logger;
  now?: () => number;
  bucketMs?: number;
}

/** What one slot says. */
export interface SlotValue {
  memFree: number | null;
  onlinePct: number;
}

// --- encoding --------------------------------------------------------------------------

export function slotIndex(bucket: number): number {
  return bucket % TELEMETRY_SLOTS;
}

export function encodeSlot(bucket: number, value: SlotValue): Buffer {
  const bytes = Buffer.alloc(TELEMETRY_SLOT_BYTES);
  bytes.writeUIntBE(bucket % BUCKET_NUMBER_RANGE, 0, 3);
  bytes.writeUInt32BE(value.memFree === null ? MEM_FREE_UNKNOWN : clampMemFree(value.memFree), 3);
  bytes.writeUInt8(Math.min(100, Math.max(0, Math.round(value.onlinePct))), 7);
  return bytes;
}

/**
 * The slots of a stored ring that belong to the 240 buckets ending with `currentBucket`,
 * by bucket number. Never throws: a missing, short or long value gives an empty map.
 */
export function decodeRing(value: Buffer | null | undefined, currentBucket: number): Map<number, SlotValue> {
  const slots = new Map<number, SlotValue>();
  if (!value || value.length !== TELEMETRY_RING_BYTES) return slots;
  for (let index = 0; index < TELEMETRY_SLOTS; index++) {
    const offset = index * TELEMETRY_SLOT_BYTES;
    const stored = value.readUIntBE(offset, 3);
    if (stored === 0) continue;
    const age = (currentBucket - stored) % BUCKET_NUMBER_RANGE;
    const ageWrapped = age < 0 ? age + BUCKET_NUMBER_RANGE : age;
    if (ageWrapped >= TELEMETRY_SLOTS) continue;
    const bucket = currentBucket - ageWrapped;
    const onlinePct = value.readUInt8(offset + 7);
    if (slotIndex(bucket) !== index || onlinePct > 100) continue;
    const memFree = value.readUInt32BE(offset + 3);
    slots.set(bucket, { memFree: memFree === MEM_FREE_UNKNOWN ? null : memFree, onlinePct });
  }
  return slots;
}

function clampMemFree(value: number): number {
  return Math.min(MEM_FREE_UNKNOWN - 1, Math.max(0, Math.floor(value)));
}

function lowest(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/** Two records of disjoint parts of one bucket (a partial one written before a restart). */
function combine(a: SlotValue, b: SlotValue): SlotValue {
  return { memFree: lowest(a.memFree, b.memFree), onlinePct: Math.min(100, a.onlinePct + b.onlinePct) };
}

// --- recorder --------------------------------------------------------------------------

interface Bucket {
  n: number;
  memFree: number | null;
  onlineMs: number;
  sampled: boolean;
}

interface Track {
  online: boolean;
  /** While online: the time from which online time is not counted into the bucket yet. */
  since: number;
  bucket: Bucket;
}

/** A finished (or, at stop, partial) bucket waiting to be written. */
interface Finished extends SlotValue {
  boardId: string;
  n: number;
  /** Already combined with what was stored for the same bucket. */
  merged: boolean;
}

function emptyBucket(n: number): Bucket {
  return { n, memFree: null, onlineMs: 0, sampled: false };
}

function hasData(bucket: Bucket): boolean {
  return bucket.sampled || bucket.onlineMs > 0;
}

export class TelemetryRecorder {
  readonly bucketMs: number;
  private readonly store: TelemetryStore;
  private readonly log: Logger;
  private readonly now: () => number;
  /** Boards with data in the current bucket, or online; nothing else is kept. */
  private readonly boards = new Map<string, Track>();
  private ready: Finished[] = [];
  private writing: Finished[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private flushQueued = false;
  /** Buckets up to this one may already hold a partial record (written by a stop()). */
  private mergeBefore: number;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(options: TelemetryRecorderOptions) {
    this.store = options.store;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.bucketMs = options.bucketMs ?? TELEMETRY_BUCKET_MS;
    if (!Number.isInteger(this.bucketMs) || this.bucketMs < 1) {
      throw new RangeError(`telemetry bucketMs must be a positive integer, not ${this.bucketMs}`);
    }
    this.mergeBefore = this.bucketOf(this.now());
  }

  /** Starts the timer that writes every finished bucket once, right after it ends. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  /** Stops the timer and writes the current partial buckets. */
  /** `write: false`: another manager is active now and records telemetry (manager-role.ts). */
  async stop(options: { write?: boolean } = {}): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (options.write === false) return;
    const now = this.now();
    const n = this.bucketOf(now);
    for (const [boardId, track] of this.boards) {
      this.advance(boardId, track, n);
      const bucket = track.bucket;
      const at = Math.max(now, bucket.n * this.bucketMs);
      this.countOnline(track, at);
      this.finish(boardId, bucket);
      track.bucket = emptyBucket(bucket.n);
      if (!track.online) this.boards.delete(boardId);
    }
    await this.flush();
    // What comes next for this bucket is added to the partial record just written.
    this.mergeBefore = Math.max(this.mergeBefore, n);
  }

  /** A heartbeat or hello arrived, with the board's free memory when it reported it. */
  sample(boardId: string, memFree: number | null, now = this.now()): void {
    const track = this.track(boardId, now);
    track.bucket.sampled = true;
    if (typeof memFree === 'number' && Number.isFinite(memFree) && memFree >= 0) {
      track.bucket.memFree = lowest(track.bucket.memFree, clampMemFree(memFree));
    }
  }

  online(boardId: string, now = this.now()): void {
    const track = this.track(boardId, now);
    if (track.online) return;
    track.online = true;
    track.since = Math.max(now, track.bucket.n * this.bucketMs);
  }

  offline(boardId: string, now = this.now()): void {
    const track = this.boards.get(boardId);
    if (!track?.online) return;
    this.advance(boardId, track, this.bucketOf(now));
    this.countOnline(track, Math.max(now, track.bucket.n * this.bucketMs));
    track.online = false;
  }

  /** The stored ring plus what is still in memory, oldest first. */
  async read(boardId: string, now = this.now()): Promise<BoardTelemetry> {
    assertBoardId(boardId);
    const current = this.bucketOf(now);
    const pendingBefore = this.pendingFor(boardId);
    let stored: Buffer | null = null;
    try {
      stored = await this.store.read(boardId);
    } catch (error) {
      this.log('warn', `could not read the telemetry of board ${boardId}: ${(error as Error).message}`, { boardId });
    }
    const slots = decodeRing(stored, current);
    const track = this.boards.get(boardId);
    if (track) this.advance(boardId, track, current);
    for (const pending of new Set([...pendingBefore, ...this.pendingFor(boardId)])) {
      const prior = slots.get(pending.n);
      slots.set(pending.n, prior && !pending.merged && pending.n <= this.mergeBefore ? combine(prior, pending) : pending);
    }
    this.addCurrent(slots, current, track?.bucket.n === current ? track : undefined, now);
    const points: TelemetryPoint[] = [];
    for (const n of [...slots.keys()].sort((a, b) => a - b)) {
      if (n <= current - TELEMETRY_SLOTS || n > current) continue;
      const { memFree, onlinePct } = slots.get(n)!;
      points.push({ t: n * this.bucketMs, memFree, onlinePct });
    }
    return { bucketMs: this.bucketMs, points };
  }

  /** The board was removed: drops what memory holds of it, and its key. */
  async forget(boardId: string): Promise<void> {
    this.boards.delete(boardId);
    this.ready = this.ready.filter((slot) => slot.boardId !== boardId);
    await this.flushing;
    await this.store.delete(boardId);
  }

  // --- internals -------------------------------------------------------------------------

  private bucketOf(t: number): number {
    return Math.floor(t / this.bucketMs);
  }

  /** The board's track, rolled forward to the bucket of `now`. */
  private track(boardId: string, now: number): Track {
    let track = this.boards.get(boardId);
    if (!track) {
      assertBoardId(boardId);
      track = { online: false, since: now, bucket: emptyBucket(this.bucketOf(now)) };
      this.boards.set(boardId, track);
    } else {
      this.advance(boardId, track, this.bucketOf(now));
    }
    return track;
  }

  /** Counts online time up to `at` into the current bucket. */
  private countOnline(track: Track, at: number): void {
    if (!track.online) return;
    const start = track.bucket.n * this.bucketMs;
    track.bucket.onlineMs += Math.max(0, at - Math.max(track.since, start));
    track.since = Math.max(track.since, at);
  }

  /**
   * Closes the board's bucket when `target` is a later one: it becomes a finished slot,
   * and so does every whole bucket in between that the board spent online.
   */
  private advance(boardId: string, track: Track, target: number): void {
    const bucket = track.bucket;
    if (target <= bucket.n) return;
    this.countOnline(track, (bucket.n + 1) * this.bucketMs);
    this.finish(boardId, bucket);
    if (track.online) {
      for (let n = Math.max(bucket.n + 1, target - TELEMETRY_SLOTS + 1); n < target; n++) {
        this.finish(boardId, { n, memFree: null, onlineMs: this.bucketMs, sampled: false });
      }
    }
    track.bucket = emptyBucket(target);
    track.since = target * this.bucketMs;
  }

  private finish(boardId: string, bucket: Bucket): void {
    if (!hasData(bucket)) return;
    const onlinePct = Math.min(100, Math.round((bucket.onlineMs * 100) / this.bucketMs));
    this.ready.push({ boardId, n: bucket.n, memFree: bucket.memFree, onlinePct, merged: false });
    if (this.ready.length >= MAX_UNWRITTEN) {
      const dropped = this.ready.splice(0, Math.ceil(MAX_UNWRITTEN / 10));
      this.log('warn', `telemetry writes are not getting through; dropped ${dropped.length} unwritten buckets`);
    }
    if (this.ready.length >= READY_FLUSH_LIMIT) void this.flush();
  }

  /**
   * The current bucket: what memory holds of it plus a partial record written before a
   * restart, with the online share of the time elapsed so far.
   */
  private addCurrent(slots: Map<number, SlotValue>, current: number, track: Track | undefined, now: number): void {
    const start = current * this.bucketMs;
    const at = Math.min(Math.max(now, start), start + this.bucketMs);
    const bucket = track?.bucket ?? emptyBucket(current);
    const onlineMs = bucket.onlineMs + (track?.online ? Math.max(0, at - Math.max(track.since, start)) : 0);
    const prior = slots.get(current);
    if (!hasData(bucket) && onlineMs === 0 && !prior) return;
    const priorMs = prior ? (prior.onlinePct * this.bucketMs) / 100 : 0;
    const elapsed = Math.max(1, at - start);
    slots.set(current, {
      memFree: lowest(bucket.memFree, prior?.memFree ?? null),
      onlinePct: Math.min(100, Math.round(((onlineMs + priorMs) * 100) / elapsed)),
    });
  }

  private pendingFor(boardId: string): Finished[] {
    return [...this.writing, ...this.ready].filter((slot) => slot.boardId === boardId);
  }

  private schedule(): void {
    const now = this.now();
    const delay = (this.bucketOf(now) + 1) * this.bucketMs - now;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        if (!this.running) return;
        this.roll();
        this.schedule();
      },
      Math.max(MIN_ROLL_DELAY_MS, delay),
    );
    this.timer.unref();
  }

  /** Closes every bucket that has ended and writes them all at once. */
  private roll(): void {
    const current = this.bucketOf(this.now());
    for (const [boardId, track] of this.boards) {
      this.advance(boardId, track, current);
      if (!track.online && !hasData(track.bucket)) this.boards.delete(boardId);
    }
    void this.flush();
  }

  /**
   * Writes the finished buckets: one write at a time, at most one more queued behind it
   * (it takes whatever is ready when it starts). Never rejects.
   */
  private flush(): Promise<void> {
    if (!this.flushQueued) {
      this.flushQueued = true;
      this.flushing = this.flushing.then(() => {
        this.flushQueued = false;
        return this.writeReady();
      });
    }
    return this.flushing;
  }

  private async writeReady(): Promise<void> {
    if (this.ready.length === 0) return;
    const slots = this.ready;
    this.ready = [];
    this.writing = slots;
    try {
      await this.mergeWithStored(slots);
      await this.store.writeSlots(
        slots.map((slot) => ({
          boardId: slot.boardId,
          offset: slotIndex(slot.n) * TELEMETRY_SLOT_BYTES,
          bytes: encodeSlot(slot.n, slot),
        })),
      );
    } catch (error) {
      const boards = new Set(slots.map((slot) => slot.boardId)).size;
      this.log('warn', `could not write the telemetry of ${boards} board${boards === 1 ? '' : 's'}: ${(error as Error).message}`, { boards });
    } finally {
      this.writing = [];
    }
  }

  /** Adds the partial records a stop() left for the buckets that are being written again. */
  private async mergeWithStored(slots: Finished[]): Promise<void> {
    const byBoard = new Map<string, Finished[]>();
    for (const slot of slots) {
      if (slot.n > this.mergeBefore || slot.merged) continue;
      const list = byBoard.get(slot.boardId) ?? [];
      list.push(slot);
      byBoard.set(slot.boardId, list);
    }
    if (byBoard.size === 0) return;
    const current = this.bucketOf(this.now());
    await Promise.all(
      [...byBoard].map(async ([boardId, list]) => {
        let stored: Buffer | null = null;
        try {
          stored = await this.store.read(boardId);
        } catch (error) {
          this.log('warn', `could not read the telemetry of board ${boardId} before writing it: ${(error as Error).message}`, { boardId });
        }
        const ring = decodeRing(stored, Math.max(current, ...list.map((slot) => slot.n)));
        for (const slot of list) {
          const prior = ring.get(slot.n);
          if (prior) Object.assign(slot, combine(prior, slot));
          slot.merged = true;
        }
      }),
    );
  }
}

/** Feeds the telemetry ring from the fleet: heartbeats (batched) and online changes. */
export function recordFleetTelemetry(fleet: Fleet, telemetry: TelemetryRecorder): void {
  fleet.on('board', (event) => {
    switch (event.type) {
      case 'boards.activity':
        for (const board of event.boards) telemetry.sample(board.id, board.memFree, board.lastSeen ?? Date.now());
        break;
      case 'board.online':
        telemetry.online(event.board.id);
        break;
      case 'board.offline':
        telemetry.offline(event.board.id);
        break;
      case 'board.removed':
        void telemetry.forget(event.boardId).catch(() => undefined);
        break;
      default:
    }
  });
}

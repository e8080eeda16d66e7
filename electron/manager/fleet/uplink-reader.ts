/**
 * Reads the boards' uplink streams (PROTOCOL.md §6) when Redis says they changed. Keyspace
 * notifications mark a board "dirty"; one pump at a time reads the dirty boards in batches
 * (one cm_uplink_read_many per Redis node, redis/uplink-calls.ts), hands every entry on in
 * stream order, then deletes what it read (one cm_uplink_trim_many per node).
 * Nothing polls: an idle fleet costs nothing here.
 *
 * A read often returns entries whose notifications have not arrived yet (they travel on the
 * subscriber's connection, the reply on another); each such late notification used to cost
 * a read that found nothing, about one read in nine during a broadcast. So every board's
 * notifications are counted against the entries read (NoticeCount): one for an entry already
 * read is dropped. Each XADD makes one notification, so the count can only err towards
 * reading again (entries trimmed unread); when notifications may have been lost (`markDirty`
 * from a resync) the board's count is forgotten, and a late one not seen within
 * EARLY_NOTICE_MS is no longer waited for.
 *
 * Entries of one command (start, output, result) are usually read one per round: boards
 * write them tens to hundreds of ms apart when a broadcast keeps their process busy (measured
 * with 2,000 virtual boards in one process: of the gaps between a board's consecutive entries,
 * a third under 1 ms, which one read takes together, and few between 1 and 20 ms), so holding
 * reads back a few ms would join few of them and would delay every single command.
 */
import type { FleetStore, UplinkEntry } from '../redis/fleet-store.js';
import { UPLINK_LIMITS } from './uplink-messages.js';

/**
 * What one round may fetch, so the manager never holds more than about 128 boards ×
 * (128 KiB + one 32 KiB entry) ≈ 20 MiB of uplink at once, whatever boards write — and the
 * reply stays under Redis's output buffer limit for normal clients (32 MiB, redis-server-config.ts).
 * Entries over the protocol's 32 KiB are never fetched at all (cm_uplink_read deletes them).
 */
const BOARDS_PER_READ = 128;
const ENTRIES_PER_BOARD = 128;
export const UPLINK_BYTES_PER_BOARD_READ = 128 * 1024;
/**
 * A round is one Lua call per node, which blocks that Redis while it copies: it stops adding
 * boards past 1 MiB (the boards left are read in the next round).
 */
const UPLINK_BYTES_PER_READ = 1024 * 1024;
const READ_LIMITS = {
  count: ENTRIES_PER_BOARD,
  maxBytes: UPLINK_BYTES_PER_BOARD_READ,
  maxEntryBytes: UPLINK_LIMITS.entryBytes,
  maxTotalBytes: UPLINK_BYTES_PER_READ,
};

/** How long a notification of an entry that was read before it came is waited for. */
const EARLY_NOTICE_MS = 1_000;

/** Notifications of one board against the entries read (see the header). */
interface NoticeCount {
  /** Notifications of entries not read yet. */
  unread: number;
  /** `unread` when the board's current read was sent. */
  sent: number;
  /** Notifications that came while the board was being read. */
  during: number;
  /** Entries read whose notifications have not come yet (dropped when they come), and since when. */
  early: number;
  earlyAt: number;
}

export type UplinkHandler = (boardId: string, entry: UplinkEntry) => void;
export type UplinkErrorHandler = (boardId: string, error: Error) => void;
/** What one read of a board looked at: uplink bytes (oversized entries included), the stream's length, and its state hash's size. */
export interface UplinkUsage {
  bytes: number;
  length: number;
  stateFields: number;
  stateBytes: number;
}
export type UplinkUsageHandler = (boardId: string, usage: UplinkUsage) => void;

export class UplinkReader {
  private readonly dirty = new Set<string>();
  /** Last entry handled per board; reading continues after it. */
  private readonly cursors = new Map<string, string>();
  private readonly skipped = new Set<string>();
  private readonly notices = new Map<string, NoticeCount>();
  /** Boards of the round being fetched now. */
  private readonly reading = new Set<string>();
  /** The last read failed (Redis unreachable): what is marked may never come, so it proves nothing. */
  private failing = false;
  private pumping = false;
  private stopped = false;

  constructor(
    private readonly store: FleetStore,
    private readonly isKnown: (boardId: string) => boolean,
    private readonly onEntry: UplinkHandler,
    private readonly onError: UplinkErrorHandler,
    private readonly onUsage: UplinkUsageHandler = () => {},
  ) {}

  /** Redis announced an entry on the board's uplink (a keyspace notification). */
  notified(boardId: string): void {
    if (this.stopped || !this.isKnown(boardId)) return;
    const count = this.noticeCount(boardId);
    if (this.reading.has(boardId)) {
      count.during++;
      return;
    }
    if (count.early > 0 && performance.now() - count.earlyAt < EARLY_NOTICE_MS) {
      count.early--;
      return;
    }
    count.early = 0;
    count.unread++;
    this.markDirty(boardId, false);
  }

  /**
   * Reads the board's uplink soon. `lost`: notifications may have been missed, so how many
   * came is unknown (Infinity) until a read empties the stream: until then no read entry is
   * taken for one whose notification is still to come.
   */
  markDirty(boardId: string, lost = true): void {
    if (this.stopped || !this.isKnown(boardId)) return;
    if (lost) this.noticesUnknown(boardId);
    this.dirty.add(boardId);
    this.schedule();
  }

  private noticesUnknown(boardId: string): void {
    Object.assign(this.noticeCount(boardId), { unread: Infinity, sent: Infinity, early: 0 });
  }

  private schedule(): void {
    if (!this.pumping) {
      this.pumping = true;
      setImmediate(() => void this.pump());
    }
  }

  forget(boardId: string): void {
    this.dirty.delete(boardId);
    this.cursors.delete(boardId);
    this.notices.delete(boardId);
  }

  /** Drops what was fetched for a board in the current round (it was just suspended). */
  skip(boardId: string): void {
    this.skipped.add(boardId);
    this.dirty.delete(boardId);
    this.noticesUnknown(boardId);
  }

  stop(): void {
    this.stopped = true;
    this.dirty.clear();
    this.notices.clear();
  }

  /**
   * Whether the board wrote entries the service has not handled yet (marked, or in the round
   * being fetched). Behind a backlog (a broadcast to thousands of boards) its heartbeats wait
   * here: liveness must not call it offline for the reader's delay.
   */
  hasUnread(boardId: string): boolean {
    return !this.failing && (this.dirty.has(boardId) || this.reading.has(boardId));
  }

  /** Resolves once everything marked so far has been read (used by tests and shutdown). */
  async idle(): Promise<void> {
    while (this.pumping) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  /** A board of a round that did not read it: dirty again, its notifications still unread. */
  private readAgain(boardId: string): void {
    this.dirty.add(boardId);
    const count = this.notices.get(boardId);
    if (count) count.unread += count.sent + count.during;
  }

  private noticeCount(boardId: string): NoticeCount {
    let count = this.notices.get(boardId);
    if (!count) this.notices.set(boardId, (count = { unread: 0, sent: 0, during: 0, early: 0, earlyAt: 0 }));
    return count;
  }

  /**
   * After a read of `read` entries: which notifications were of entries it read, and whether
   * some came of entries after them (true: read the board again). Notifications and entries
   * come in the same order, so the `sent` oldest entries read were the ones notified before.
   */
  private settleNotices(boardId: string, read: number, more: boolean): boolean {
    const count = this.notices.get(boardId);
    if (!count) return false;
    const covered = Math.min(count.sent, read);
    const early = read - covered;
    // Notified before the read but beyond it: still to read, unless the read emptied the stream (those entries were trimmed unread).
    if (more) count.unread += count.sent - covered;
    const after = count.during - early;
    count.sent = 0;
    count.during = 0;
    if (after > 0) {
      count.unread += after;
      count.early = 0;
      return true;
    }
    count.early = -after;
    count.earlyAt = performance.now();
    if (count.unread === 0 && count.early === 0) this.notices.delete(boardId);
    return false;
  }

  private async pump(): Promise<void> {
    try {
      while (this.dirty.size > 0 && !this.stopped) {
        const batch: Array<[string, string]> = [];
        for (const boardId of this.dirty) {
          batch.push([boardId, this.cursors.get(boardId) ?? '0-0']);
          this.dirty.delete(boardId);
          if (batch.length === BOARDS_PER_READ) break;
        }
        for (const [boardId] of batch) {
          this.reading.add(boardId);
          const count = this.notices.get(boardId);
          if (count) {
            count.sent = count.unread;
            count.unread = 0;
            count.during = 0;
          }
        }
        let results;
        try {
          results = await this.store.readUplinks(batch, READ_LIMITS);
        } catch (error) {
          // Redis unreachable: keep the boards dirty and try again shortly.
          for (const [boardId] of batch) this.readAgain(boardId);
          this.reading.clear();
          this.failing = true;
          await new Promise((resolve) => setTimeout(resolve, 200));
          continue;
        }
        // Handled below, synchronously: from here on the board's entries are no longer unread.
        this.reading.clear();
        this.failing = false;
        const handled: Array<[string, string]> = [];
        for (const { boardId, entries, error, bytes, length, stateFields, stateBytes, unread } of results) {
          if (unread) {
            this.readAgain(boardId);
            continue;
          }
          if (error) {
            this.noticesUnknown(boardId);
            this.onError(boardId, error);
            continue;
          }
          if (!this.isKnown(boardId)) continue;
          this.onUsage(boardId, { bytes: bytes ?? 0, length: length ?? entries.length, stateFields: stateFields ?? 0, stateBytes: stateBytes ?? 0 });
          // The usage check may have suspended the board and cleared its uplink: drop the rest.
          if (!this.isKnown(boardId) || this.skipped.delete(boardId)) continue;
          for (const entry of entries) this.onEntry(boardId, entry);
          // A full round (by count or by bytes) may have left more behind.
          const more = length !== undefined ? length > entries.length : entries.length === ENTRIES_PER_BOARD;
          if (this.settleNotices(boardId, entries.length, more)) this.dirty.add(boardId);
          const last = entries[entries.length - 1];
          if (!last) continue;
          this.cursors.set(boardId, last.eid);
          handled.push([boardId, last.eid]);
          if (more) this.dirty.add(boardId);
        }
        // Not awaited: the next round need not wait for the deletion (it reads after the cursors).
        void this.store.trimUplinks(handled).catch(() => undefined);
      }
    } finally {
      this.pumping = false;
      if (this.dirty.size > 0 && !this.stopped) this.schedule();
    }
  }
}

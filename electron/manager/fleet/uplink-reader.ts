/**
 * Reads the boards' uplink streams (PROTOCOL.md §6) when Redis says they changed. Keyspace
 * notifications mark a board "dirty"; one pump at a time reads the dirty boards in batches
 * with a single XREAD, hands every entry on in stream order, then deletes what it read.
 * Nothing polls: an idle fleet costs nothing here.
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

export type UplinkHandler = (boardId: string, entry: UplinkEntry) => void;
export type UplinkErrorHandler = (boardId: string, error: Error) => void;
/** What one read of a board's uplink looked at: bytes (oversized entries included) and the stream's length. */
export type UplinkUsageHandler = (boardId: string, usage: { bytes: number; length: number }) => void;

export class UplinkReader {
  private readonly dirty = new Set<string>();
  /** Last entry handled per board; reading continues after it. */
  private readonly cursors = new Map<string, string>();
  private readonly skipped = new Set<string>();
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

  markDirty(boardId: string): void {
    if (this.stopped || !this.isKnown(boardId)) return;
    this.dirty.add(boardId);
    if (!this.pumping) {
      this.pumping = true;
      setImmediate(() => void this.pump());
    }
  }

  forget(boardId: string): void {
    this.dirty.delete(boardId);
    this.cursors.delete(boardId);
  }

  /** Drops what was fetched for a board in the current round (it was just suspended). */
  skip(boardId: string): void {
    this.skipped.add(boardId);
    this.dirty.delete(boardId);
  }

  stop(): void {
    this.stopped = true;
    this.dirty.clear();
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

  private async pump(): Promise<void> {
    try {
      while (this.dirty.size > 0 && !this.stopped) {
        const batch: Array<[string, string]> = [];
        for (const boardId of this.dirty) {
          batch.push([boardId, this.cursors.get(boardId) ?? '0-0']);
          this.dirty.delete(boardId);
          if (batch.length === BOARDS_PER_READ) break;
        }
        for (const [boardId] of batch) this.reading.add(boardId);
        let results;
        try {
          results = await this.store.readUplinks(batch, ENTRIES_PER_BOARD, UPLINK_LIMITS.entryBytes, UPLINK_BYTES_PER_BOARD_READ);
        } catch (error) {
          // Redis unreachable: keep the boards dirty and try again shortly.
          for (const [boardId] of batch) this.dirty.add(boardId);
          this.reading.clear();
          this.failing = true;
          await new Promise((resolve) => setTimeout(resolve, 200));
          continue;
        }
        // Handled below, synchronously: from here on the board's entries are no longer unread.
        this.reading.clear();
        this.failing = false;
        for (const { boardId, entries, error, bytes, length } of results) {
          if (error) {
            this.onError(boardId, error);
            continue;
          }
          if (!this.isKnown(boardId)) continue;
          this.onUsage(boardId, { bytes: bytes ?? 0, length: length ?? entries.length });
          // The usage check may have suspended the board and cleared its uplink: drop the rest.
          if (!this.isKnown(boardId) || this.skipped.delete(boardId)) continue;
          for (const entry of entries) this.onEntry(boardId, entry);
          const last = entries[entries.length - 1];
          if (!last) continue;
          this.cursors.set(boardId, last.eid);
          void this.store.trimUplink(boardId, last.eid).catch(() => undefined);
          // A full round (by count or by bytes) may have left more behind.
          if (length !== undefined ? length > entries.length : entries.length === ENTRIES_PER_BOARD) this.dirty.add(boardId);
        }
      }
    } finally {
      this.pumping = false;
      if (this.dirty.size > 0 && !this.stopped) this.markDirty(this.dirty.values().next().value!);
    }
  }
}

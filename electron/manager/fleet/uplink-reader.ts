/**
 * Reads the boards' uplink streams (PROTOCOL.md §6) when Redis says they changed. Keyspace
 * notifications mark a board "dirty"; one pump at a time reads the dirty boards in batches
 * with a single XREAD, hands every entry on in stream order, then deletes what it read.
 * Nothing polls: an idle fleet costs nothing here.
 */
import type { FleetStore, UplinkEntry } from '../redis/fleet-store.js';

const BOARDS_PER_READ = 256;
const ENTRIES_PER_BOARD = 128;

export type UplinkHandler = (boardId: string, entry: UplinkEntry) => void;
export type UplinkErrorHandler = (boardId: string, error: Error) => void;

export class UplinkReader {
  private readonly dirty = new Set<string>();
  /** Last entry handled per board; reading continues after it. */
  private readonly cursors = new Map<string, string>();
  private pumping = false;
  private stopped = false;

  constructor(
    private readonly store: FleetStore,
    private readonly isKnown: (boardId: string) => boolean,
    private readonly onEntry: UplinkHandler,
    private readonly onError: UplinkErrorHandler,
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

  stop(): void {
    this.stopped = true;
    this.dirty.clear();
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
        let results;
        try {
          results = await this.store.readUplinks(batch, ENTRIES_PER_BOARD);
        } catch (error) {
          // Redis unreachable: keep the boards dirty and try again shortly.
          for (const [boardId] of batch) this.dirty.add(boardId);
          await new Promise((resolve) => setTimeout(resolve, 200));
          continue;
        }
        for (const { boardId, entries, error } of results) {
          if (error) {
            this.onError(boardId, error);
            continue;
          }
          for (const entry of entries) this.onEntry(boardId, entry);
          const last = entries[entries.length - 1];
          if (!last) continue;
          this.cursors.set(boardId, last.eid);
          void this.store.trimUplink(boardId, last.eid).catch(() => undefined);
          if (entries.length === ENTRIES_PER_BOARD) this.dirty.add(boardId);
        }
      }
    } finally {
      this.pumping = false;
      if (this.dirty.size > 0 && !this.stopped) this.markDirty(this.dirty.values().next().value!);
    }
  }
}

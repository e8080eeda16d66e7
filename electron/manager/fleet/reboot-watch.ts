/**
 * After a reboot command succeeds, the board has only said it is about to restart: it is
 * back when it is online again after going away. A board that was flashed by hand and not
 * reset since restarts into its ROM bootloader (its boot mode is latched at "download")
 * and never comes back by itself: the watch then says so, with what to do.
 */
import type { BoardEvent } from './fleet.js';

export interface RebootWatchOptions {
  /** How long a board may take to come back (at least 60 s, or 3 heartbeats). */
  graceMs(boardId: string): number;
  /** Whether this board was flashed by hand and has not had a hardware reset since. */
  needsReset(boardId: string): boolean;
  now?: () => number;
}

export type RebootOutcome = { back: true } | { back: false; message: string };

interface Watched {
  sawOffline: boolean;
  deadline: number;
  settle: (outcome: RebootOutcome) => void;
}

export class RebootWatch {
  private readonly watched = new Map<string, Watched[]>();
  private readonly now: () => number;

  constructor(private readonly options: RebootWatchOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Resolves once the board is back online, or with why not after its grace period. */
  expect(boardId: string): Promise<RebootOutcome> {
    return new Promise((settle) => {
      const list = this.watched.get(boardId) ?? [];
      list.push({ sawOffline: false, deadline: this.now() + this.options.graceMs(boardId), settle });
      this.watched.set(boardId, list);
    });
  }

  /** Feed every board event. */
  onBoard(event: BoardEvent): void {
    if (event.type !== 'board.online' && event.type !== 'board.offline') return;
    const list = this.watched.get(event.board.id);
    if (!list) return;
    if (event.type === 'board.offline') {
      for (const item of list) item.sawOffline = true;
      return;
    }
    const back = list.filter((item) => item.sawOffline);
    if (back.length === 0) return;
    this.watched.set(
      event.board.id,
      list.filter((item) => !item.sawOffline),
    );
    for (const item of back) item.settle({ back: true });
  }

  /** Call about once a second: boards past their grace period are reported missing. */
  sweep(): void {
    const now = this.now();
    for (const [boardId, list] of this.watched) {
      const late = list.filter((item) => now >= item.deadline);
      if (late.length === 0) continue;
      const rest = list.filter((item) => now < item.deadline);
      if (rest.length > 0) this.watched.set(boardId, rest);
      else this.watched.delete(boardId);
      const message = this.options.needsReset(boardId)
        ? 'the board did not come back: it was flashed with BOOT/RESET pressed by hand and has not been reset since, so it restarted into its bootloader. Press RESET on the board once (without BOOT).'
        : `the board did not come back online within ${Math.round(this.options.graceMs(boardId) / 1000)} s (is it powered, and in reach of the wifi?)`;
      for (const item of late) item.settle({ back: false, message });
    }
  }

  get size(): number {
    return [...this.watched.values()].reduce((sum, list) => sum + list.length, 0);
  }
}

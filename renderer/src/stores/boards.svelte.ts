/**
 * Every board the service knows, kept current from events. Events are applied in batches
 * at most 4 times a second (a big fleet sends thousands), and a full list replaces
 * everything after (re)connecting, so nothing missed while disconnected stays wrong.
 */
import { tick } from 'svelte';
import type { ApiEvent, BoardSummary } from '../../../electron/manager/api/contract.js';
import { UpdateBatcher } from '../lib/update-batcher.js';
import { applyBoardEvents, isBoardEvent, type BoardEventOf } from '../lib/board-events.js';
import { notifications } from './notifications.svelte.js';
import { api } from './api.js';

export interface ActivitySample {
  t: number;
  memFree: number | null;
}

class BoardsStore {
  /** Boards by id; replaced (not mutated) on every batch, so views re-derive cheaply. */
  byId = $state.raw(new Map<string, BoardSummary>());
  all = $state.raw<BoardSummary[]>([]);
  loaded = $state(false);
  /** Heartbeat samples of boards whose telemetry is open (board id → samples). */
  private readonly watchers = new Map<string, (sample: ActivitySample) => void>();
  private readonly batcher = new UpdateBatcher<BoardEventOf>((batch) => this.apply(batch), 4);

  handle(event: ApiEvent): void {
    if (!isBoardEvent(event)) return;
    if (event.type === 'boards.activity') {
      for (const activity of event.boards) this.watchers.get(activity.id)?.({ t: activity.lastSeen ?? Date.now(), memFree: activity.memFree });
    }
    this.batcher.push(event);
  }

  async sync(): Promise<void> {
    this.batcher.clear();
    // Marks for the UI benchmark: from asking for the fleet to its rows on screen.
    performance.mark('cm:boards-requested');
    const list = await api.call('boards.list', {});
    this.byId = new Map(list.map((board) => [board.id, board]));
    this.all = list;
    this.loaded = true;
  }

  byName(name: string): BoardSummary | undefined {
    for (const board of this.all) if (board.name === name) return board;
    return undefined;
  }

  /** Live heartbeat samples of one board (the Telemetry tab); returns the unsubscribe. */
  watch(boardId: string, listener: (sample: ActivitySample) => void): () => void {
    this.watchers.set(boardId, listener);
    return () => {
      if (this.watchers.get(boardId) === listener) this.watchers.delete(boardId);
    };
  }

  private apply(batch: BoardEventOf[]): void {
    const started = performance.now();
    const next = new Map(this.byId);
    const offline = applyBoardEvents(next, batch);
    this.byId = next;
    this.all = [...next.values()];
    // For the UI benchmark: a batch, applied and on screen.
    void tick().then(() => performance.measure('cm:boards-batch', { start: started, detail: { events: batch.length } }));
    if (offline.length === 1) notifications.push('warning', `${offline[0]} went offline`, `#/board/${encodeURIComponent(offline[0]!)}/code`);
    else if (offline.length > 1)
      notifications.push('warning', `${offline.length} boards went offline: ${offline.slice(0, 3).join(', ')}${offline.length > 3 ? ', …' : ''}`);
  }
}

export const boards = new BoardsStore();

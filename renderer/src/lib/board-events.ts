/**
 * Board events applied to the page's map of boards (pure, so a batch of 10,000 can be
 * tested without a browser): online/offline/changed replace a board, activity updates its
 * last seen, free memory and busy state, removed deletes it.
 */
import type { ApiEvent, BoardActivity, BoardSummary } from '../../../electron/manager/api/contract.js';

export type BoardEventOf = Extract<ApiEvent, { type: `board.${string}` | 'boards.activity' }>;

export function isBoardEvent(event: ApiEvent): event is BoardEventOf {
  return event.type.startsWith('board.') || event.type === 'boards.activity';
}

/** Applies a batch of board events to a map of boards; returns names that went offline. */
export function applyBoardEvents(boards: Map<string, BoardSummary>, batch: readonly BoardEventOf[]): string[] {
  const wentOffline: string[] = [];
  for (const event of batch) {
    switch (event.type) {
      case 'boards.activity':
        for (const activity of event.boards) applyActivity(boards, activity);
        break;
      case 'board.removed':
        boards.delete(event.boardId);
        break;
      default: {
        const before = boards.get(event.board.id);
        // A revoked or suspended board going offline is said by its badge (and the alarm), not as news.
        if (event.type === 'board.offline' && before?.online !== false && !event.board.disabled) wentOffline.push(event.board.name);
        boards.set(event.board.id, event.board);
      }
    }
  }
  return wentOffline;
}

function applyActivity(boards: Map<string, BoardSummary>, activity: BoardActivity): void {
  const board = boards.get(activity.id);
  if (!board) return;
  boards.set(activity.id, { ...board, lastSeen: activity.lastSeen, memFree: activity.memFree, busy: activity.busy });
}

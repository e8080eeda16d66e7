/**
 * What the fleet view shows: the boards matching the search and filters, in the chosen
 * order, and the selection rules (click, shift-click ranges, select all filtered). Pure
 * functions over board summaries, so 10,000 boards can be tested without a browser.
 */
import type { BoardSummary } from '../../../electron/manager/api/contract.js';

export type StatusFilter = 'all' | 'online' | 'offline' | 'busy';
export type SortKey = 'name' | 'status' | 'lastSeen' | 'memFree' | 'platform';

export interface FleetQuery {
  search: string;
  status: StatusFilter;
  /** Only boards with this tag ('' = any). */
  tag: string;
  sort: SortKey;
  descending: boolean;
}

export const DEFAULT_QUERY: FleetQuery = { search: '', status: 'all', tag: '', sort: 'name', descending: false };

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

function matchesSearch(board: BoardSummary, words: string[]): boolean {
  if (words.length === 0) return true;
  const haystack = `${board.name} ${board.tags.join(' ')} ${board.platform ?? ''} ${board.ip ?? ''} ${board.micropython ?? ''}`.toLowerCase();
  return words.every((word) => haystack.includes(word));
}

function compare(a: BoardSummary, b: BoardSummary, key: SortKey): number {
  switch (key) {
    case 'status': {
      const rank = (board: BoardSummary) => (board.online ? (board.busy ? 1 : 0) : 2);
      return rank(a) - rank(b);
    }
    case 'lastSeen':
      // Most recently seen first when ascending: that is what "last seen" sorting means to people.
      return (b.lastSeen ?? -1) - (a.lastSeen ?? -1);
    case 'memFree':
      return (a.memFree ?? -1) - (b.memFree ?? -1);
    case 'platform':
      return collator.compare(a.platform ?? '', b.platform ?? '');
    case 'name':
      return 0;
  }
}

/** The boards to show, filtered and sorted (name breaks ties, so the order is stable). */
export function queryBoards(boards: readonly BoardSummary[], query: FleetQuery): BoardSummary[] {
  const words = query.search.toLowerCase().split(/\s+/).filter(Boolean);
  const result = boards.filter((board) => {
    if (query.status === 'online' && !board.online) return false;
    if (query.status === 'offline' && board.online) return false;
    if (query.status === 'busy' && !(board.online && board.busy)) return false;
    if (query.tag && !board.tags.includes(query.tag)) return false;
    return matchesSearch(board, words);
  });
  const direction = query.descending ? -1 : 1;
  result.sort((a, b) => direction * (compare(a, b, query.sort) || collator.compare(a.name, b.name)));
  return result;
}

/** Every tag in use, alphabetically, with how many boards carry it. */
export function tagCounts(boards: readonly BoardSummary[]): Array<{ tag: string; count: number }> {
  const counts = new Map<string, number>();
  for (const board of boards) for (const tag of board.tags) counts.set(tag, (counts.get(tag) ?? 0) + 1);
  return [...counts].map(([tag, count]) => ({ tag, count })).sort((a, b) => collator.compare(a.tag, b.tag));
}

/**
 * The selection after a click on row `index` of `visible`: a plain click toggles that
 * board, a shift-click selects the range from the last clicked row (the anchor).
 */
export function clickSelection(
  selected: ReadonlySet<string>,
  visible: readonly BoardSummary[],
  index: number,
  anchor: number | null,
  shift: boolean,
): { selected: Set<string>; anchor: number } {
  const next = new Set(selected);
  const board = visible[index];
  if (!board) return { selected: next, anchor: anchor ?? index };
  if (shift && anchor !== null && visible[anchor]) {
    const [from, to] = anchor < index ? [anchor, index] : [index, anchor];
    for (let row = from; row <= to; row++) next.add(visible[row]!.id);
    return { selected: next, anchor };
  }
  if (next.has(board.id)) next.delete(board.id);
  else next.add(board.id);
  return { selected: next, anchor: index };
}

/** Drops selected ids that no longer exist (removed boards). */
export function pruneSelection(selected: ReadonlySet<string>, boards: ReadonlyMap<string, BoardSummary>): Set<string> {
  const next = new Set<string>();
  for (const id of selected) if (boards.has(id)) next.add(id);
  return next;
}

/** A BOARDS pattern naming exactly these boards (the service's selector syntax). */
export function boardsPattern(names: readonly string[]): string {
  return names.join(',');
}

/** The visible window of a virtual list: which rows to render for a scroll position. */
export function visibleRange(scrollTop: number, viewportHeight: number, rowHeight: number, count: number, overscan = 8): { start: number; end: number } {
  const start = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const end = Math.min(count, Math.ceil((scrollTop + viewportHeight) / rowHeight) + overscan);
  return { start, end };
}

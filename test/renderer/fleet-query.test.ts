import { describe, expect, it } from 'vitest';
import type { BoardSummary } from '../../electron/manager/api/contract.js';
import { DEFAULT_QUERY, boardsPattern, clickSelection, pruneSelection, queryBoards, tagCounts, visibleRange } from '../../renderer/src/lib/fleet-query.js';

function board(name: string, patch: Partial<BoardSummary> = {}): BoardSummary {
  return {
    id: `id-${name}`,
    name,
    online: true,
    lastSeen: 1_000,
    platform: 'esp8266',
    micropython: '1.27.0',
    client: '1.0',
    ip: '10.0.0.1',
    memFree: 30_000,
    heartbeatS: 5,
    enrolledAt: 0,
    busy: null,
    tags: [],
    needsReset: false,
    virtual: false,
    disabled: null,
    ...patch,
  };
}

const fleet = [
  board('sim-10', { tags: ['garden'] }),
  board('sim-2', { online: false, lastSeen: 500 }),
  board('kitchen', { tags: ['garden', 'indoor'], busy: 'c1', memFree: 10_000 }),
  board('attic', { online: false, lastSeen: null, platform: 'esp32' }),
];

describe('fleet query', () => {
  it('sorts by name naturally, and by status with name as the tie-breaker', () => {
    expect(queryBoards(fleet, DEFAULT_QUERY).map((item) => item.name)).toEqual(['attic', 'kitchen', 'sim-2', 'sim-10']);
    expect(queryBoards(fleet, { ...DEFAULT_QUERY, sort: 'status' }).map((item) => item.name)).toEqual(['sim-10', 'kitchen', 'attic', 'sim-2']);
    expect(queryBoards(fleet, { ...DEFAULT_QUERY, sort: 'name', descending: true }).map((item) => item.name)).toEqual(['sim-10', 'sim-2', 'kitchen', 'attic']);
    expect(queryBoards(fleet, { ...DEFAULT_QUERY, sort: 'lastSeen' }).map((item) => item.name)).toEqual(['kitchen', 'sim-10', 'sim-2', 'attic']);
  });

  it('filters by status, tag and search words (name, tag, platform, IP)', () => {
    expect(queryBoards(fleet, { ...DEFAULT_QUERY, status: 'offline' }).map((item) => item.name)).toEqual(['attic', 'sim-2']);
    expect(queryBoards(fleet, { ...DEFAULT_QUERY, status: 'busy' }).map((item) => item.name)).toEqual(['kitchen']);
    expect(queryBoards(fleet, { ...DEFAULT_QUERY, tag: 'garden' }).map((item) => item.name)).toEqual(['kitchen', 'sim-10']);
    expect(queryBoards(fleet, { ...DEFAULT_QUERY, search: 'INDOOR' }).map((item) => item.name)).toEqual(['kitchen']);
    expect(queryBoards(fleet, { ...DEFAULT_QUERY, search: 'esp32' }).map((item) => item.name)).toEqual(['attic']);
    expect(queryBoards(fleet, { ...DEFAULT_QUERY, search: 'sim garden' }).map((item) => item.name)).toEqual(['sim-10']);
  });

  it('counts tags', () => {
    expect(tagCounts(fleet)).toEqual([
      { tag: 'garden', count: 2 },
      { tag: 'indoor', count: 1 },
    ]);
  });

  it('selects with clicks and shift-click ranges, and forgets removed boards', () => {
    const shown = queryBoards(fleet, DEFAULT_QUERY);
    let state = clickSelection(new Set(), shown, 0, null, false);
    expect([...state.selected]).toEqual(['id-attic']);
    state = clickSelection(state.selected, shown, 2, state.anchor, true);
    expect([...state.selected].sort()).toEqual(['id-attic', 'id-kitchen', 'id-sim-2']);
    state = clickSelection(state.selected, shown, 1, state.anchor, false);
    expect(state.selected.has('id-kitchen')).toBe(false);
    const remaining = new Map(fleet.filter((item) => item.name !== 'attic').map((item) => [item.id, item]));
    expect([...pruneSelection(state.selected, remaining)]).toEqual(['id-sim-2']);
    expect(boardsPattern(['a', 'b-1'])).toBe('a,b-1');
  });

  it('sorts and filters 10,000 boards', () => {
    const many = Array.from({ length: 10_000 }, (_, index) => board(`esp-${index}`, { online: index % 3 !== 0 }));
    const online = queryBoards(many, { ...DEFAULT_QUERY, status: 'online', sort: 'name' });
    expect(online).toHaveLength(6_666);
    expect(online[0]!.name).toBe('esp-1');
    expect(online[online.length - 1]!.name).toBe('esp-9998');
  });

  it('renders only the rows in view (plus a few either side)', () => {
    expect(visibleRange(0, 520, 52, 10_000, 4)).toEqual({ start: 0, end: 14 });
    expect(visibleRange(52 * 5_000, 520, 52, 10_000, 4)).toEqual({ start: 4_996, end: 5_014 });
    expect(visibleRange(52 * 9_999, 520, 52, 10_000, 4)).toEqual({ start: 9_995, end: 10_000 });
  });
});

/**
 * The service's alarm list as an event (service-alarms.ts): sent at once when an alarm comes
 * or goes, from either source; a flood that only counts on is sent at most once a second;
 * board events that change nothing about suspension send nothing.
 */
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ServiceAlarms } from '../../electron/manager/service-alarms.js';
import type { BoardSuspendedAlarm } from '../../electron/manager/fleet/board-access.js';
import type { ConnectionsRefusedAlarm } from '../../electron/manager/redis/connection-guard.js';
import type { BoardEvent } from '../../electron/manager/fleet/fleet.js';
import type { BoardSummary, ServiceAlarm } from '../../electron/manager/api/contract.js';

/** Stand-ins with the sources' own events: the fleet's 'board', the guard's 'alarm' and 'cleared'. */
class FakeFleet extends EventEmitter<{ board: [BoardEvent] }> {
  suspended: BoardSuspendedAlarm[] = [];
  alarms(): BoardSuspendedAlarm[] {
    return this.suspended.map((alarm) => ({ ...alarm }));
  }
  /** Suspends or enables a board as the fleet does: its record first, then a board.changed. */
  set(id: string, disabled: BoardSummary['disabled']): void {
    this.suspended = this.suspended.filter((alarm) => alarm.boardId !== id);
    if (disabled?.kind === 'suspended') this.suspended.push({ kind: 'board-suspended', boardId: id, board: id, reason: disabled.reason, at: disabled.at });
    this.emit('board', { type: 'board.changed', board: { id, name: id, disabled } as BoardSummary });
  }
}
class FakeGuard extends EventEmitter<{ alarm: [ConnectionsRefusedAlarm]; cleared: [ConnectionsRefusedAlarm] }> {
  episode: ConnectionsRefusedAlarm | undefined;
  alarms(): ConnectionsRefusedAlarm[] {
    return this.episode ? [{ ...this.episode }] : [];
  }
  refuse(count: number): void {
    this.episode = this.episode
      ? { ...this.episode, count: this.episode.count + count }
      : { kind: 'connections-refused', count, since: 1, at: 1, maxClients: 1000 };
    this.emit('alarm', this.episode);
  }
  clear(): void {
    const episode = this.episode!;
    this.episode = undefined;
    this.emit('cleared', episode);
  }
}

describe('the alarm list as an event', () => {
  let fleet: FakeFleet;
  let guard: FakeGuard;
  let feed: ServiceAlarms;
  let sent: ServiceAlarm[][];

  beforeEach(() => {
    vi.useFakeTimers();
    fleet = new FakeFleet();
    guard = new FakeGuard();
    feed = new ServiceAlarms({ fleet, guard });
    sent = [];
    feed.on('changed', (alarms) => sent.push(alarms));
  });
  afterEach(() => {
    feed.stop();
    vi.useRealTimers();
  });

  it('a board suspended and enabled again: the list is sent at once each time', () => {
    fleet.set('kitchen', { kind: 'suspended', reason: 'its state hash holds 9 fields', at: 5 });
    expect(sent).toEqual([[{ kind: 'board-suspended', boardId: 'kitchen', board: 'kitchen', reason: 'its state hash holds 9 fields', at: 5 }]]);
    fleet.set('kitchen', null);
    expect(sent[1]).toEqual([]);
  });

  it('a revoked board is no alarm, and board events that change nothing send nothing', () => {
    fleet.set('garage', { kind: 'revoked', reason: 'revoked by the user', at: 5 });
    fleet.set('garage', null);
    fleet.emit('board', { type: 'boards.activity', boards: [] });
    expect(sent).toEqual([]);
  });

  it('a removed suspended board takes its alarm with it', () => {
    fleet.set('shed', { kind: 'suspended', reason: 'x', at: 5 });
    fleet.suspended = [];
    fleet.emit('board', { type: 'board.removed', boardId: 'shed', name: 'shed' });
    expect(sent.map((alarms) => alarms.length)).toEqual([1, 0]);
  });

  it('refused connections: the first refusal at once, the count at most once a second, the end at once', () => {
    guard.refuse(10);
    expect(sent).toEqual([[expect.objectContaining({ kind: 'connections-refused', count: 10 })]]);
    for (let tick = 0; tick < 9; tick++) guard.refuse(10);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1_000);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toEqual([expect.objectContaining({ count: 100 })]);
    guard.clear();
    expect(sent[2]).toEqual([]);
    vi.advanceTimersByTime(5_000);
    expect(sent).toHaveLength(3);
  });

  it('both sources in one list, as status has it; stop() lets go of both', () => {
    fleet.set('kitchen', { kind: 'suspended', reason: 'x', at: 5 });
    guard.refuse(3);
    expect(sent[1]!.map((alarm) => alarm.kind)).toEqual(['board-suspended', 'connections-refused']);
    expect(feed.list()).toEqual(sent[1]);
    feed.stop();
    expect([fleet.listenerCount('board'), guard.listenerCount('alarm'), guard.listenerCount('cleared')]).toEqual([0, 0, 0]);
  });
});

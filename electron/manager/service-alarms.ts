/**
 * The service's alarms (`status.alarms`) as one list, and an event with the whole list
 * whenever it changes, so the UI (over the events socket), the tray and the desktop notices
 * learn of a suspended board or refused connections at once rather than at their next poll.
 *
 * Two sources: boards suspended for going over their budget (the fleet: a board's
 * `disabled` turns `suspended`, or stops being so when it is enabled, re-keyed or removed),
 * and the connection guard (refusals began, went on, ended). A new or gone alarm is sent at
 * once; an alarm that only counts on (the guard raises it up to ten times a second while a
 * flood lasts) at most once per `updateIntervalMs`, so a flood does not become a flood of
 * events for every window and the tray.
 */
import { EventEmitter } from 'node:events';
import type { ServiceAlarm } from './api/contract.js';
import type { BoardEvent } from './fleet/fleet.js';
import type { BoardSuspendedAlarm } from './fleet/board-access.js';
import type { ConnectionsRefusedAlarm } from './redis/connection-guard.js';

export interface ServiceAlarmEvents {
  changed: [ServiceAlarm[]];
}

/** What the alarms are read from: the fleet's suspended boards, the guard's refusals. */
export interface AlarmSources {
  fleet: {
    alarms(): BoardSuspendedAlarm[];
    on(event: 'board', listener: (event: BoardEvent) => void): unknown;
    off(event: 'board', listener: (event: BoardEvent) => void): unknown;
  };
  guard?: {
    alarms(): ConnectionsRefusedAlarm[];
    on(event: 'alarm' | 'cleared', listener: () => void): unknown;
    off(event: 'alarm' | 'cleared', listener: () => void): unknown;
  };
}

/** An update that only changes an alarm's figures is sent at most this often. */
export const ALARM_UPDATE_INTERVAL_MS = 1_000;

/** Which alarms there are, without their figures: a change here is news, sent at once. */
function identityOf(alarms: readonly ServiceAlarm[]): string {
  return alarms.map((alarm) => (alarm.kind === 'board-suspended' ? `suspended:${alarm.boardId}:${alarm.at}` : `refused:${alarm.since}`)).join(',');
}

export class ServiceAlarms extends EventEmitter<ServiceAlarmEvents> {
  private sentIdentity = '';
  private sentText = '[]';
  private pending: NodeJS.Timeout | undefined;
  /** Boards the fleet has suspended, as last seen in its events (so most board events cost nothing). */
  private readonly suspended = new Set<string>();
  private stopped = false;

  constructor(
    private readonly sources: AlarmSources,
    private readonly updateIntervalMs = ALARM_UPDATE_INTERVAL_MS,
  ) {
    super();
    for (const alarm of sources.fleet.alarms()) this.suspended.add(alarm.boardId);
    const current = this.list();
    this.sentIdentity = identityOf(current);
    this.sentText = JSON.stringify(current);
    sources.fleet.on('board', this.onBoard);
    sources.guard?.on('alarm', this.onGuard);
    sources.guard?.on('cleared', this.onGuard);
  }

  /** Every alarm now: suspended boards (oldest first), then refused connections. */
  list(): ServiceAlarm[] {
    return [...this.sources.fleet.alarms(), ...(this.sources.guard?.alarms() ?? [])];
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.pending);
    this.sources.fleet.off('board', this.onBoard);
    this.sources.guard?.off('alarm', this.onGuard);
    this.sources.guard?.off('cleared', this.onGuard);
  }

  private readonly onBoard = (event: BoardEvent): void => {
    if (event.type === 'boards.activity') return;
    if (event.type === 'board.removed') {
      if (this.suspended.delete(event.boardId)) this.check();
      return;
    }
    const suspended = event.board.disabled?.kind === 'suspended';
    if (suspended === this.suspended.has(event.board.id)) return;
    if (suspended) this.suspended.add(event.board.id);
    else this.suspended.delete(event.board.id);
    this.check();
  };

  private readonly onGuard = (): void => this.check();

  /** Sends the list if it changed: at once when an alarm came or went, else within the update interval. */
  private check(): void {
    if (this.stopped) return;
    const alarms = this.list();
    const identity = identityOf(alarms);
    if (identity !== this.sentIdentity) {
      this.send(alarms, identity);
      return;
    }
    if (this.pending || JSON.stringify(alarms) === this.sentText) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      if (this.stopped) return;
      const latest = this.list();
      if (JSON.stringify(latest) !== this.sentText) this.send(latest, identityOf(latest));
    }, this.updateIntervalMs);
    this.pending.unref();
  }

  private send(alarms: ServiceAlarm[], identity: string): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    this.sentIdentity = identity;
    this.sentText = JSON.stringify(alarms);
    this.emit('changed', alarms);
  }
}

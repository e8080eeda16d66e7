/**
 * When the desktop app tells the user something with a system notification, and in what
 * words: boards that went offline (after a delay, grouped, never repeated for a flapping
 * board), a flash that finished, a job that finished. The shell shows each DesktopNotice
 * with Electron's Notification and opens `route` in the window when it is clicked.
 *
 * Offline boards: a board is announced only if it is still offline `offlineDelayMs` after it
 * went (wifi blips and restarts are not news). Boards that go offline while a first one is
 * being waited for join its window and are announced together, once each has been offline
 * for the delay (a router restart is one notice, not twenty). A board announced is not
 * announced again for 5 minutes. Timers are injected, so tests drive time themselves.
 *
 * Alarms (a board suspended for going over its budget, Redis refusing connections): one
 * notice per alarm raised, at most one per kind in 5 minutes (ten boards suspended at once,
 * or a flood that stops and starts, are one notice: the tray and the UI list them all).
 * An alarm already known (still raised when the service restarts) is not announced again.
 */
import type { ServiceAlarm } from '../manager/api/contract.js';

export interface DesktopNotice {
  title: string;
  body: string;
  /** UI route to open when clicked, e.g. '#/board/<name>/code' or '#/jobs/<id>'. */
  route?: string;
}

export interface NotificationPolicyOptions {
  show(notice: DesktopNotice): void;
  /** A board must stay offline this long before it is announced (default 15 s); boards going offline within one window are grouped in one notice. */
  offlineDelayMs?: number;
  timers?: { set(fn: () => void, ms: number): unknown; clear(handle: unknown): void };
}

export const DEFAULT_OFFLINE_DELAY_MS = 15_000;
/** A board announced offline is not announced again within this time (a flapping board). */
export const OFFLINE_REPEAT_MS = 5 * 60_000;
/** At most one alarm notice of each kind within this time. */
export const ALARM_REPEAT_MS = 5 * 60_000;
/** Names listed in one grouped notice; the rest are counted ("and 4 more"). */
export const NAMES_SHOWN = 3;

interface Board {
  id: string;
  name: string;
}

/** Boards that went offline while its first one was being waited for: announced together. */
interface OfflineWindow {
  /** Still open to boards going offline (closes when the first board's delay is over). */
  open: boolean;
  /** Boards still offline, in the order they went; `due` once offline for the whole delay. */
  boards: Map<string, { name: string; due: boolean; timer: unknown }>;
  timer: unknown;
}

const realTimers = {
  set: (fn: () => void, ms: number): unknown => {
    const timer = setTimeout(fn, ms);
    // Pending notices never keep the process alive.
    timer.unref?.();
    return timer;
  },
  clear: (handle: unknown) => clearTimeout(handle as NodeJS.Timeout),
};

/** The route of a board's page in the UI. */
export function boardRoute(name: string): string {
  return `#/board/${encodeURIComponent(name)}/code`;
}

export function countOf(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** "kitchen", "kitchen and garage", "kitchen, garage, shed and 2 more". */
export function listNames(names: readonly string[], shown = NAMES_SHOWN): string {
  if (names.length <= 1) return names[0] ?? '';
  if (names.length <= shown) return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  return `${names.slice(0, shown).join(', ')} and ${names.length - shown} more`;
}

function seconds(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 120 ? `${Math.round(s / 60)} minutes` : countOf(s, 'second');
}

/** The notice for boards announced together (one board: its own page; several: the fleet). */
export function offlineNotice(boards: readonly Board[], delayMs: number): DesktopNotice {
  const waited = `not heard from for ${seconds(delayMs)}`;
  if (boards.length === 1) {
    const board = boards[0]!;
    return { title: 'Board offline', body: `${board.name} went offline (${waited}). Check its power and wifi.`, route: boardRoute(board.name) };
  }
  return {
    title: 'Boards offline',
    body: `${boards.length} boards went offline: ${listNames(boards.map((board) => board.name))} (${waited}).`,
    route: '#/',
  };
}

export interface FlashOutcome {
  ok: boolean;
  port: string;
  /** The board's name, when it was set up (provisioned). */
  board?: string;
  message?: string;
  /** The flash job, for its page when the flash failed. */
  job?: string;
}

export function flashNotice(result: FlashOutcome): DesktopNotice {
  if (result.ok) {
    return {
      title: result.board ? `${result.board} is ready` : 'Board flashed',
      body: result.message ?? `The board on ${result.port} was flashed.`,
      route: result.board ? boardRoute(result.board) : result.job ? `#/jobs/${encodeURIComponent(result.job)}` : '#/',
    };
  }
  return {
    title: 'Flashing failed',
    body: `${result.board ?? `The board on ${result.port}`}: ${result.message ?? 'the flash did not finish'}`,
    route: result.job ? `#/jobs/${encodeURIComponent(result.job)}` : '#/flash',
  };
}

export interface JobOutcome {
  id: string;
  title: string;
  ok: number;
  failed: number;
  total: number;
}

/** "Upload main.py to 12 boards: 11 ok, 1 failed". */
export function jobNotice(job: JobOutcome): DesktopNotice {
  const counts = job.failed > 0 ? `${job.ok} ok, ${job.failed} failed` : job.ok === job.total ? `${job.ok === 1 ? '' : 'all '}${job.ok} ok` : `${job.ok} ok`;
  return {
    title: job.failed > 0 ? (job.ok > 0 ? 'Job finished with failures' : 'Job failed') : 'Job finished',
    body: `${job.title}: ${counts}`,
    route: `#/jobs/${encodeURIComponent(job.id)}`,
  };
}

/** Which alarm this is, so the same one seen again (the list is sent whole on each change) is not news. */
function alarmIdentity(alarm: ServiceAlarm): string {
  return alarm.kind === 'board-suspended' ? `${alarm.kind}:${alarm.boardId}:${alarm.at}` : `${alarm.kind}:${alarm.since}`;
}

export function alarmNotice(alarm: ServiceAlarm): DesktopNotice {
  if (alarm.kind === 'board-suspended') {
    return {
      title: 'Board suspended',
      body: `${alarm.board} was suspended: ${alarm.reason}. It cannot connect until you enable it on its page.`,
      route: boardRoute(alarm.board),
    };
  }
  return {
    title: 'Redis is refusing connections',
    body:
      `The boards' port refused ${alarm.count.toLocaleString('en-US')} connections: all ${alarm.maxClients.toLocaleString('en-US')} slots were taken. ` +
      'Someone may be flooding it; connections that do not log in are closed.',
    route: '#/',
  };
}

export class NotificationPolicy {
  private readonly show: (notice: DesktopNotice) => void;
  private readonly delayMs: number;
  private readonly timers: NonNullable<NotificationPolicyOptions['timers']>;
  private readonly windows = new Set<OfflineWindow>();
  /** Boards announced offline in the last OFFLINE_REPEAT_MS → the timer that forgets them. */
  private readonly recentlyAnnounced = new Map<string, unknown>();
  /** Alarms in the latest list (their identities), and the kinds announced in the last ALARM_REPEAT_MS. */
  private knownAlarms = new Set<string>();
  private readonly recentAlarmKinds = new Map<ServiceAlarm['kind'], unknown>();
  private disposed = false;

  constructor(options: NotificationPolicyOptions) {
    this.show = options.show;
    this.delayMs = options.offlineDelayMs ?? DEFAULT_OFFLINE_DELAY_MS;
    this.timers = options.timers ?? realTimers;
  }

  boardOffline(board: { id: string; name: string }): void {
    if (this.disposed || this.recentlyAnnounced.has(board.id) || this.windowOf(board.id)) return;
    let window = [...this.windows].find((candidate) => candidate.open);
    if (!window) {
      const opened: OfflineWindow = { open: true, boards: new Map(), timer: undefined };
      opened.timer = this.timers.set(() => {
        opened.open = false;
        this.settle(opened);
      }, this.delayMs);
      this.windows.add(opened);
      window = opened;
    }
    const joined = window;
    const entry = { name: board.name, due: false, timer: undefined as unknown };
    entry.timer = this.timers.set(() => {
      entry.due = true;
      this.settle(joined);
    }, this.delayMs);
    joined.boards.set(board.id, entry);
  }

  /** Back before its notice: it is not announced. */
  boardOnline(board: { id: string; name: string }): void {
    this.forget(board.id);
  }

  /** Removed by the user: a notice that it went offline would be noise. */
  boardRemoved(board: { id: string }): void {
    this.forget(board.id);
  }

  flashDone(result: FlashOutcome): void {
    if (!this.disposed) this.show(flashNotice(result));
  }

  jobDone(job: JobOutcome): void {
    if (!this.disposed) this.show(jobNotice(job));
  }

  /** The service's whole alarm list, as it changed: an alarm not in the previous list is announced (one per kind per 5 minutes). */
  alarms(list: readonly ServiceAlarm[]): void {
    if (this.disposed) return;
    const known = this.knownAlarms;
    this.knownAlarms = new Set(list.map(alarmIdentity));
    for (const alarm of list) {
      if (known.has(alarmIdentity(alarm)) || this.recentAlarmKinds.has(alarm.kind)) continue;
      this.recentAlarmKinds.set(
        alarm.kind,
        this.timers.set(() => this.recentAlarmKinds.delete(alarm.kind), ALARM_REPEAT_MS),
      );
      this.show(alarmNotice(alarm));
    }
  }

  /** Drops the offline notices not sent yet (the service stopped: its boards are not news); the 5-minute memory stays. */
  cancelPendingOffline(): void {
    for (const window of this.windows) this.dropWindow(window);
  }

  /** Cancels every pending notice; nothing is shown afterwards. */
  dispose(): void {
    this.disposed = true;
    this.cancelPendingOffline();
    for (const timer of this.recentlyAnnounced.values()) this.timers.clear(timer);
    this.recentlyAnnounced.clear();
    for (const timer of this.recentAlarmKinds.values()) this.timers.clear(timer);
    this.recentAlarmKinds.clear();
  }

  private windowOf(boardId: string): OfflineWindow | undefined {
    return [...this.windows].find((window) => window.boards.has(boardId));
  }

  private forget(boardId: string): void {
    const window = this.windowOf(boardId);
    const entry = window?.boards.get(boardId);
    if (!window || !entry) return;
    this.timers.clear(entry.timer);
    window.boards.delete(boardId);
    this.settle(window);
  }

  /** Once the window is closed and each of its boards has been offline for the delay: one notice. */
  private settle(window: OfflineWindow): void {
    if (window.open) return;
    if ([...window.boards.values()].some((board) => !board.due)) return;
    const announced = [...window.boards].map(([id, { name }]) => ({ id, name }));
    this.dropWindow(window);
    if (announced.length === 0 || this.disposed) return;
    for (const board of announced) {
      this.recentlyAnnounced.set(
        board.id,
        this.timers.set(() => this.recentlyAnnounced.delete(board.id), OFFLINE_REPEAT_MS),
      );
    }
    this.show(offlineNotice(announced, this.delayMs));
  }

  private dropWindow(window: OfflineWindow): void {
    this.timers.clear(window.timer);
    for (const board of window.boards.values()) this.timers.clear(board.timer);
    this.windows.delete(window);
  }
}

/**
 * Which system notifications a user gets, and what they say: offline boards after a delay,
 * grouped, not repeated for a flapping board; flashes and jobs that finished; alarms
 * (a suspended board, refused connections), one per kind per 5 minutes. Time is
 * vitest's fake clock: no test waits for real.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ALARM_REPEAT_MS,
  NotificationPolicy,
  listNames,
  type DesktopNotice,
  type NotificationPolicyOptions,
} from '../../electron/app/desktop-notifications.js';
import type { ServiceAlarm } from '../../electron/manager/api/contract.js';

const board = (name: string) => ({ id: `id-${name}`, name });
const [kitchen, garage, shed, attic, porch] = ['kitchen', 'garage', 'shed', 'attic', 'porch'].map(board) as [
  ReturnType<typeof board>,
  ReturnType<typeof board>,
  ReturnType<typeof board>,
  ReturnType<typeof board>,
  ReturnType<typeof board>,
];

describe('offline notices', () => {
  let shown: DesktopNotice[];
  let policy: NotificationPolicy;
  const start = (options: Partial<NotificationPolicyOptions> = {}) => {
    policy = new NotificationPolicy({
      show: (notice) => shown.push(notice),
      timers: { set: (fn, ms) => setTimeout(fn, ms), clear: (handle) => clearTimeout(handle as NodeJS.Timeout) },
      ...options,
    });
  };

  beforeEach(() => {
    vi.useFakeTimers();
    shown = [];
    start();
  });
  afterEach(() => {
    policy.dispose();
    vi.useRealTimers();
  });

  it('a board still offline after 15 s is announced once, with a link to its page', () => {
    policy.boardOffline(kitchen);
    vi.advanceTimersByTime(14_999);
    expect(shown).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(shown).toEqual([
      { title: 'Board offline', body: 'kitchen went offline (not heard from for 15 seconds). Check its power and wifi.', route: '#/board/kitchen/code' },
    ]);
    vi.advanceTimersByTime(60 * 60_000);
    expect(shown).toHaveLength(1);
  });

  it('a board back online before the delay is not announced', () => {
    policy.boardOffline(kitchen);
    vi.advanceTimersByTime(10_000);
    policy.boardOnline(kitchen);
    vi.advanceTimersByTime(60_000);
    expect(shown).toEqual([]);
  });

  it('a board removed while offline is not announced', () => {
    policy.boardOffline(kitchen);
    policy.boardRemoved(kitchen);
    vi.advanceTimersByTime(60_000);
    expect(shown).toEqual([]);
  });

  it('boards going offline within one window are one notice, sent when the last of them has been offline 15 s', () => {
    policy.boardOffline(kitchen);
    vi.advanceTimersByTime(5_000);
    policy.boardOffline(garage);
    vi.advanceTimersByTime(9_000);
    policy.boardOffline(shed);
    vi.advanceTimersByTime(1_000); // kitchen's 15 s are over: the window closes, shed has waited 1 s only
    expect(shown).toEqual([]);
    vi.advanceTimersByTime(13_999);
    expect(shown).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(shown).toEqual([{ title: 'Boards offline', body: '3 boards went offline: kitchen, garage and shed (not heard from for 15 seconds).', route: '#/' }]);
  });

  it('a grouped notice names at most 3 boards, then says how many more', () => {
    for (const one of [kitchen, garage, shed, attic, porch]) policy.boardOffline(one);
    vi.advanceTimersByTime(15_000);
    expect(shown.map((notice) => notice.body)).toEqual(['5 boards went offline: kitchen, garage, shed and 2 more (not heard from for 15 seconds).']);
  });

  it('a board of the group that came back is left out of the notice', () => {
    policy.boardOffline(kitchen);
    policy.boardOffline(garage);
    vi.advanceTimersByTime(3_000);
    policy.boardOnline(garage);
    vi.advanceTimersByTime(12_000);
    expect(shown.map((notice) => notice.body)).toEqual(['kitchen went offline (not heard from for 15 seconds). Check its power and wifi.']);
  });

  it('a board going offline after the window closed gets a notice of its own', () => {
    policy.boardOffline(kitchen);
    vi.advanceTimersByTime(15_000);
    policy.boardOffline(garage);
    vi.advanceTimersByTime(15_000);
    expect(shown.map((notice) => notice.body)).toEqual([
      'kitchen went offline (not heard from for 15 seconds). Check its power and wifi.',
      'garage went offline (not heard from for 15 seconds). Check its power and wifi.',
    ]);
  });

  it('a flapping board is announced at most once in 5 minutes', () => {
    for (let flap = 0; flap < 10; flap++) {
      policy.boardOffline(kitchen);
      vi.advanceTimersByTime(20_000);
      policy.boardOnline(kitchen);
      vi.advanceTimersByTime(5_000);
    }
    // 10 flaps in 250 s: one notice.
    expect(shown).toHaveLength(1);
    vi.advanceTimersByTime(5 * 60_000);
    policy.boardOffline(kitchen);
    vi.advanceTimersByTime(15_000);
    expect(shown).toHaveLength(2);
  });

  it('repeated offline events for a board already waited for change nothing', () => {
    policy.boardOffline(kitchen);
    vi.advanceTimersByTime(10_000);
    policy.boardOffline(kitchen);
    vi.advanceTimersByTime(5_000);
    expect(shown).toHaveLength(1);
    vi.advanceTimersByTime(60_000);
    expect(shown).toHaveLength(1);
  });

  it('the delay can be set, and the notice says it', () => {
    policy.dispose();
    start({ offlineDelayMs: 60_000 });
    policy.boardOffline(kitchen);
    vi.advanceTimersByTime(59_999);
    expect(shown).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(shown[0]?.body).toBe('kitchen went offline (not heard from for 60 seconds). Check its power and wifi.');
  });

  it('without injected timers it uses the real ones (faked here by vitest)', () => {
    policy.dispose();
    policy = new NotificationPolicy({ show: (notice) => shown.push(notice) });
    policy.boardOffline(kitchen);
    vi.advanceTimersByTime(15_000);
    expect(shown).toHaveLength(1);
  });

  it('pending offline notices can be dropped (the service stopped); later ones still come', () => {
    policy.boardOffline(kitchen);
    policy.boardOffline(garage);
    vi.advanceTimersByTime(5_000);
    policy.cancelPendingOffline();
    vi.advanceTimersByTime(60_000);
    expect(shown).toEqual([]);
    policy.boardOffline(kitchen);
    vi.advanceTimersByTime(15_000);
    expect(shown).toHaveLength(1);
  });

  it('after dispose nothing is shown and no timer is left', () => {
    policy.boardOffline(kitchen);
    policy.dispose();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(60_000);
    policy.jobDone({ id: 'j1', title: 'Reboot 1 board', ok: 1, failed: 0, total: 1 });
    expect(shown).toEqual([]);
  });
});

describe('flash and job notices', () => {
  const shown: DesktopNotice[] = [];
  const policy = new NotificationPolicy({ show: (notice) => shown.push(notice), timers: { set: () => 0, clear: () => undefined } });
  afterEach(() => {
    shown.length = 0;
  });

  it('a board flashed and set up: its name, the outcome, its page', () => {
    policy.flashDone({ ok: true, port: '/dev/ttyUSB0', board: 'kitchen', message: 'kitchen is online', job: 'j1' });
    expect(shown).toEqual([{ title: 'kitchen is ready', body: 'kitchen is online', route: '#/board/kitchen/code' }]);
  });

  it('a flash that failed: the port, the reason, the job that has every step', () => {
    policy.flashDone({ ok: false, port: '/dev/ttyUSB0', message: 'no answer from the bootloader: hold BOOT and press RESET', job: 'j2' });
    policy.flashDone({ ok: false, port: 'COM3' });
    expect(shown).toEqual([
      { title: 'Flashing failed', body: 'The board on /dev/ttyUSB0: no answer from the bootloader: hold BOOT and press RESET', route: '#/jobs/j2' },
      { title: 'Flashing failed', body: 'The board on COM3: the flash did not finish', route: '#/flash' },
    ]);
  });

  it('a job: its title and how many boards ended ok or failed', () => {
    policy.jobDone({ id: 'j3', title: 'Upload to 12 boards', ok: 11, failed: 1, total: 12 });
    policy.jobDone({ id: 'j4', title: 'Reboot 3 boards', ok: 3, failed: 0, total: 3 });
    policy.jobDone({ id: 'j5', title: 'Run code on 2 boards: print(1)', ok: 0, failed: 2, total: 2 });
    policy.jobDone({ id: 'j6', title: 'Reboot 1 board', ok: 1, failed: 0, total: 1 });
    expect(shown).toEqual([
      { title: 'Job finished with failures', body: 'Upload to 12 boards: 11 ok, 1 failed', route: '#/jobs/j3' },
      { title: 'Job finished', body: 'Reboot 3 boards: all 3 ok', route: '#/jobs/j4' },
      { title: 'Job failed', body: 'Run code on 2 boards: print(1): 0 ok, 2 failed', route: '#/jobs/j5' },
      { title: 'Job finished', body: 'Reboot 1 board: 1 ok', route: '#/jobs/j6' },
    ]);
  });

  it('names are listed as a person would', () => {
    expect(listNames(['a'])).toBe('a');
    expect(listNames(['a', 'b'])).toBe('a and b');
    expect(listNames(['a', 'b', 'c'])).toBe('a, b and c');
    expect(listNames(['a', 'b', 'c', 'd'])).toBe('a, b, c and 1 more');
  });
});

describe('alarm notices', () => {
  let shown: DesktopNotice[];
  let policy: NotificationPolicy;
  const suspended = (board: string, at = 1): ServiceAlarm => ({
    kind: 'board-suspended',
    boardId: `id-${board}`,
    board,
    reason: 'its uplink holds 2001 entries (budget 2000)',
    at,
  });
  const refused = (count: number, since = 1): ServiceAlarm => ({ kind: 'connections-refused', count, since, at: since, maxClients: 1000 });

  beforeEach(() => {
    vi.useFakeTimers();
    shown = [];
    policy = new NotificationPolicy({
      show: (notice) => shown.push(notice),
      timers: { set: (fn, ms) => setTimeout(fn, ms), clear: (handle) => clearTimeout(handle as NodeJS.Timeout) },
    });
  });
  afterEach(() => {
    policy.dispose();
    vi.useRealTimers();
  });

  it('a suspended board: its name, why, and its page (where Enable is)', () => {
    policy.alarms([suspended('kitchen')]);
    expect(shown).toEqual([
      {
        title: 'Board suspended',
        body: 'kitchen was suspended: its uplink holds 2001 entries (budget 2000). It cannot connect until you enable it on its page.',
        route: '#/board/kitchen/code',
      },
    ]);
  });

  it('refused connections: how many, and that boards get back in', () => {
    policy.alarms([refused(1234)]);
    expect(shown).toEqual([
      {
        title: 'Redis is refusing connections',
        body: "The boards' port refused 1,234 connections: all 1,000 slots were taken. Someone may be flooding it; connections that do not log in are closed.",
        route: '#/',
      },
    ]);
  });

  it('the same alarm sent again (its count going on, another alarm added) is not news', () => {
    policy.alarms([refused(10)]);
    policy.alarms([refused(500)]);
    policy.alarms([suspended('kitchen'), refused(900)]);
    policy.alarms([suspended('kitchen'), refused(1000)]);
    expect(shown.map((notice) => notice.title)).toEqual(['Redis is refusing connections', 'Board suspended']);
  });

  it('at most one notice per kind in 5 minutes; after that a new alarm is announced again', () => {
    policy.alarms([suspended('kitchen')]);
    policy.alarms([suspended('kitchen'), suspended('garage')]);
    policy.alarms([refused(10, 1)]);
    policy.alarms([]);
    policy.alarms([refused(10, 2)]);
    expect(shown.map((notice) => notice.title)).toEqual(['Board suspended', 'Redis is refusing connections']);
    vi.advanceTimersByTime(ALARM_REPEAT_MS);
    policy.alarms([suspended('shed', 3)]);
    expect(shown.map((notice) => notice.body.split(' ')[0])).toEqual(['kitchen', 'The', 'shed']);
  });

  it('an alarm still raised after the service restarted is not announced twice', () => {
    policy.alarms([suspended('kitchen')]);
    vi.advanceTimersByTime(ALARM_REPEAT_MS);
    policy.alarms([suspended('kitchen')]);
    expect(shown).toHaveLength(1);
  });

  it('after dispose, alarms make no notice', () => {
    policy.dispose();
    policy.alarms([suspended('kitchen')]);
    expect(shown).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});

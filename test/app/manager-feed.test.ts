/**
 * The desktop app following a real service (its own redis-server, virtual boards on the
 * wire protocol): the tray's counts as boards come and go, its alarm lines, and the system
 * notices a user gets when a board stays offline, a job or a flash finishes, a board is
 * suspended for going over its budget.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startManager, waitFor } from '../helpers/lab.js';
import { startPlainRedis } from '../helpers/plain-redis.js';
import { startVirtualFleet, type VirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';
import { NotificationPolicy, type DesktopNotice } from '../../electron/app/desktop-notifications.js';
import { feedFromManager, type FeedTrayState, type ManagerFeed } from '../../electron/app/manager-feed.js';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import type { ApiEvent } from '../../electron/manager/api/contract.js';

describe('the desktop app following the service', () => {
  let service: Awaited<ReturnType<typeof startManager>>;
  let boards: VirtualFleet | undefined;
  let feed: ManagerFeed;
  let policy: NotificationPolicy;
  const counts: FeedTrayState[] = [];
  const notices: DesktopNotice[] = [];
  const lastCounts = () => counts[counts.length - 1];
  const notice = (match: (notice: DesktopNotice) => boolean, what: string) => waitFor(() => notices.find(match), 20_000, what);

  beforeAll(async () => {
    service = await startManager({ heartbeatS: 1 });
    // A short delay: the test waits for the notice itself, not for a time.
    policy = new NotificationPolicy({ show: (shown) => notices.push(shown), offlineDelayMs: 1_000 });
    feed = feedFromManager(service.manager, { tray: (change) => counts.push(change), notifications: policy });
  });
  afterAll(async () => {
    feed?.stop();
    policy?.dispose();
    await boards?.close();
    await service?.close();
  });

  it('the tray gets the board counts as boards are added and come online, once per change', async () => {
    expect(counts).toEqual([{ online: 0, total: 0, alarms: [] }]);
    boards = await startVirtualFleet({ api: service.api, count: 2, prefix: 'feed', board: { reconnectMinMs: 100, bootDelayMs: 200 } });
    await waitFor(() => lastCounts()?.online === 2, 10_000, 'both boards online in the tray');
    expect(lastCounts()).toEqual({ online: 2, total: 2, alarms: [] });
    expect(counts).toContainEqual({ online: 0, total: 2, alarms: [] });
    counts.forEach((current, index) => {
      if (index > 0) expect(current).not.toEqual(counts[index - 1]);
    });
  });

  it('a board that stops is announced offline (after the delay), and the tray counts it', async () => {
    await boards!.byName('feed-2')!.stop();
    await waitFor(() => lastCounts()?.online === 1, 10_000, 'one board online in the tray');
    expect(lastCounts()).toEqual({ online: 1, total: 2, alarms: [] });
    const offline = await notice((shown) => shown.title === 'Board offline', 'the offline notice');
    expect(offline).toEqual({
      title: 'Board offline',
      body: 'feed-2 went offline (not heard from for 1 second). Check its power and wifi.',
      route: '#/board/feed-2/code',
    });
    boards!.byName('feed-2')!.start();
    await waitFor(() => lastCounts()?.online === 2, 10_000, 'feed-2 back in the tray');
  });

  it('a job that finishes is announced with its counts; a tag job (done at once) is not', async () => {
    await service.api.call('jobs.start', { kind: 'tag', boards: 'feed-*', add: ['kitchen'], remove: [] });
    const job = await service.api.call('jobs.start', { kind: 'exec', boards: 'feed-*', code: 'print(6 * 7)' });
    const done = await notice((shown) => shown.route === `#/jobs/${job.id}`, 'the job notice');
    expect(done).toEqual({ title: 'Job finished', body: 'Run code on 2 boards: print(6 * 7): all 2 ok', route: `#/jobs/${job.id}` });
    expect(notices.filter((shown) => shown.body.startsWith('Tag '))).toEqual([]);
  });

  it('a flash that fails is announced with the reason and the job to look at', async () => {
    const port = '/dev/ttyCM-FEED-NOT-PLUGGED';
    const job = await service.api.call('jobs.start', { kind: 'provision', port, name: 'porch', wifiSsid: 'home', wifiPassword: 'secret-wifi' });
    const failed = await notice((shown) => shown.route === `#/jobs/${job.id}`, 'the flash notice');
    expect(failed.title).toBe('Flashing failed');
    expect(failed.body).toMatch(/^porch: there is no serial port \/dev\/ttyCM-FEED-NOT-PLUGGED/);
    expect(failed.body).not.toContain('secret-wifi');
  });

  it('a board over its budget is suspended: offline at once, the tray says so, one notice names it (no offline notice), the UI gets the same list; Enable brings it back', async () => {
    const events: ApiEvent[] = [];
    const subscription = await service.api.events((event) => events.push(event));
    const offlineNotices = vi.spyOn(policy, 'boardOffline');
    // feed-1 (online) misbehaves with its own credentials.
    const { id, user, password } = boards!.byName('feed-1')!.config as { id: string; user: string; password: string };
    const connection = await RespConnection.connect({ host: '127.0.0.1', port: service.redisPort });
    try {
      await connection.call('AUTH', user, password);
      // Its state hash is for a few short fields (16 KiB at most): 20 KB in one is over budget.
      await connection.call('HSET', boardKeys(id).state, 'junk', 'x'.repeat(20_000));
    } finally {
      connection.destroy();
    }
    await waitFor(() => lastCounts()?.alarms.length, 10_000, 'the alarm in the tray');
    expect(lastCounts()!.alarms).toEqual([{ kind: 'board-suspended', text: '1 board suspended: feed-1' }]);
    // Offline because it was suspended (its connections closed), not for missed heartbeats.
    await waitFor(() => lastCounts()?.online === 1, 10_000, 'feed-1 offline in the tray');
    // The tray hears it in-process; the UI's socket a moment later.
    const offline = await waitFor(
      () => events.find((event) => event.type === 'board.offline' && event.board.name === 'feed-1'),
      10_000,
      'board.offline on the socket',
    );
    expect(offline).toMatchObject({ reason: 'suspended' });
    const suspended = await notice((shown) => shown.title === 'Board suspended', 'the suspension notice');
    expect(suspended).toEqual({
      title: 'Board suspended',
      body: expect.stringMatching(
        /^feed-1 was suspended: it stored 20 KiB in \d+ fields? of its status record .*It cannot connect until you enable it on its page\.$/,
      ),
      route: '#/board/feed-1/code',
    });
    expect(offlineNotices).not.toHaveBeenCalled();
    const pushed = await waitFor(
      () => events.find((event) => event.type === 'service.alarms' && event.alarms.length > 0),
      5_000,
      'service.alarms on the socket',
    );
    expect(pushed).toEqual({ type: 'service.alarms', alarms: (await service.api.call('status', {})).alarms });

    await service.api.call('boards.enable', { board: 'feed-1' });
    await waitFor(() => lastCounts()?.alarms.length === 0 && lastCounts()?.online === 2, 20_000, 'the alarm gone and feed-1 back online in the tray');
    await waitFor(() => events.some((event) => event.type === 'service.alarms' && event.alarms.length === 0), 5_000, 'the empty list on the socket');
    expect(notices.filter((shown) => shown.title === 'Board suspended')).toHaveLength(1);
    offlineNotices.mockRestore();
    subscription.close();
  });

  it('stop() lets go of the service: its listeners are gone, a second stop is harmless', () => {
    const fleet = service.manager.fleet;
    const jobs = service.manager.jobService;
    const listening = () => ({
      board: fleet.listenerCount('board'),
      job: jobs.listenerCount('job'),
      alarms: service.manager.listenerCount('alarms'),
      stopped: service.manager.listenerCount('stopped'),
    });
    const before = listening();
    feed.stop();
    feed.stop();
    expect(listening()).toEqual({ board: before.board - 1, job: before.job - 1, alarms: before.alarms - 1, stopped: before.stopped - 1 });
  });

  it('a feed lets go by itself when the service stops', async () => {
    const second = feedFromManager(service.manager, { tray: () => undefined, notifications: policy });
    const jobs = service.manager.jobService;
    const listening = { job: jobs.listenerCount('job'), stopped: service.manager.listenerCount('stopped') };
    await boards?.close();
    boards = undefined;
    await service.manager.stop();
    expect({ job: jobs.listenerCount('job'), stopped: service.manager.listenerCount('stopped') }).toEqual({
      job: listening.job - 1,
      stopped: listening.stopped - 1,
    });
    second.stop();
  });
});

describe('the desktop app on a manager that stands by', () => {
  it('shows no boards while another manager is active, and follows the fleet once it takes over', async () => {
    const redis = await startPlainRedis();
    const active = await startManager({ redisUrl: redis.url(), redisPort: undefined, leaseTtlMs: 3_000 });
    const standby = await startManager({ redisUrl: redis.url(), redisPort: undefined, leaseTtlMs: 3_000 });
    const policy = new NotificationPolicy({ show: () => undefined, offlineDelayMs: 1_000 });
    const counts: FeedTrayState[] = [];
    let boards: VirtualFleet | undefined;
    let feed: ManagerFeed | undefined;
    try {
      expect(standby.manager.isActive).toBe(false);
      // It used to throw here: a standby has no fleet.
      feed = feedFromManager(standby.manager, { tray: (change) => counts.push(change), notifications: policy });
      expect(counts).toEqual([{ online: 0, total: 0, alarms: [] }]);
      boards = await startVirtualFleet({ api: active.api, count: 1, prefix: 'standby', board: { reconnectMinMs: 100 } });
      await waitFor(async () => (await active.api.call('status', {})).boards.online === 1, 10_000, 'the board online on the active manager');
      await active.close();
      await waitFor(() => counts[counts.length - 1]?.online === 1, 20_000, 'the board online in the tray of the manager that took over');
      expect(counts[counts.length - 1]).toEqual({ online: 1, total: 1, alarms: [] });
    } finally {
      feed?.stop();
      policy.dispose();
      await boards?.close();
      await active.close();
      await standby.close();
      redis.kill();
    }
  });
});

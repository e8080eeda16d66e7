/**
 * The desktop app following a real service (its own redis-server, virtual boards on the
 * wire protocol): the tray's counts as boards come and go, and the system notices a user
 * gets when a board stays offline, a job or a flash finishes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startManager, waitFor } from '../helpers/lab.js';
import { startVirtualFleet, type VirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';
import { NotificationPolicy, type DesktopNotice } from '../../electron/app/desktop-notifications.js';
import { feedFromManager, type ManagerFeed } from '../../electron/app/manager-feed.js';

describe('the desktop app following the service', () => {
  let service: Awaited<ReturnType<typeof startManager>>;
  let boards: VirtualFleet | undefined;
  let feed: ManagerFeed;
  let policy: NotificationPolicy;
  const counts: Array<{ online: number; total: number }> = [];
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
    expect(counts).toEqual([{ online: 0, total: 0 }]);
    boards = await startVirtualFleet({ api: service.api, count: 2, prefix: 'feed', board: { reconnectMinMs: 100, bootDelayMs: 200 } });
    await waitFor(() => lastCounts()?.online === 2, 10_000, 'both boards online in the tray');
    expect(lastCounts()).toEqual({ online: 2, total: 2 });
    expect(counts).toContainEqual({ online: 0, total: 2 });
    counts.forEach((current, index) => {
      if (index > 0) expect(current).not.toEqual(counts[index - 1]);
    });
  });

  it('a board that stops is announced offline (after the delay), and the tray counts it', async () => {
    await boards!.byName('feed-2')!.stop();
    await waitFor(() => lastCounts()?.online === 1, 10_000, 'one board online in the tray');
    expect(lastCounts()).toEqual({ online: 1, total: 2 });
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

  it('stop() lets go of the service: its listeners are gone, a second stop is harmless', () => {
    const fleet = service.manager.fleet;
    const jobs = service.manager.jobService;
    const before = { board: fleet.listenerCount('board'), job: jobs.listenerCount('job'), stopped: service.manager.listenerCount('stopped') };
    feed.stop();
    feed.stop();
    expect({ board: fleet.listenerCount('board'), job: jobs.listenerCount('job'), stopped: service.manager.listenerCount('stopped') }).toEqual({
      board: before.board - 1,
      job: before.job - 1,
      stopped: before.stopped - 1,
    });
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

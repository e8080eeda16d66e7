/**
 * Follows a running Manager in the same process and tells the desktop app what it needs:
 * the board counts and the service's alarms for the tray (when they change), and to the
 * NotificationPolicy boards going offline and coming back, flashes and jobs that finished,
 * alarms that were raised. It reads the manager's own events (the fleet's 'board', the
 * JobService's 'job', the Manager's 'alarms'), the ones the API's event socket carries to
 * the UI, so the tray and the window never disagree.
 *
 * Which jobs make a notice: run code, upload and reboot (they take a while: the user may be
 * elsewhere when they end) and flash/provision (a flash notice). Tag and remove jobs are done
 * by the time the UI answers the click, so a notice would only repeat what is on screen.
 */
import type { Manager } from '../manager/manager.js';
import type { BoardEvent } from '../manager/fleet/fleet.js';
import type { JobEvent } from '../manager/fleet/job-service.js';
import type { JobKind, JobSummary, JobTarget } from '../manager/fleet/job-model.js';
import type { ServiceAlarm } from '../manager/api/contract.js';
import type { FlashOutcome, NotificationPolicy } from './desktop-notifications.js';
import { trayAlarms, type TrayAlarm } from './tray-model.js';

export interface ManagerFeed {
  stop(): void;
}

/** The tray's part that comes from the service. */
export interface FeedTrayState {
  online: number;
  total: number;
  alarms: TrayAlarm[];
}

/** Job kinds announced with jobDone when they finish. */
export const NOTIFIED_JOB_KINDS: ReadonlySet<JobKind> = new Set(['exec', 'upload', 'reboot']);
/** Finished jobs remembered so a late repeat of a 'done' event is not announced twice. */
const FINISHED_REMEMBERED = 500;

/** A finished flash or provision job, as the flash notice tells it. */
export function flashOutcome(job: JobSummary, target: JobTarget | undefined): FlashOutcome {
  const port = job.port ?? target?.board ?? 'the serial port';
  // A flash without setup names its target after the port: no board name to show then.
  const board = target && target.board !== job.port ? target.board : undefined;
  return {
    ok: job.counts.ok > 0 && job.counts.failed === 0,
    port,
    ...(board ? { board } : {}),
    ...(target?.message ? { message: target.message } : {}),
    job: job.id,
  };
}

export function feedFromManager(manager: Manager, sinks: { tray(state: FeedTrayState): void; notifications: NotificationPolicy }): ManagerFeed {
  // The fleet and jobs of the active manager; none while it stands by (another manager on the
  // same Redis is active), new ones each time it becomes active.
  let fleet: Manager['fleet'] | undefined;
  let jobs: Manager['jobService'] | undefined;
  const { notifications } = sinks;
  const finished = new Set<string>();
  let stopped = false;
  let lastTray = '';
  let alarms: TrayAlarm[] = trayAlarms(manager.alarms());

  const sendCounts = () => {
    const counts = fleet?.counts() ?? { online: 0, total: 0 };
    const state: FeedTrayState = { online: counts.online, total: counts.total, alarms };
    const key = JSON.stringify(state);
    if (key === lastTray) return;
    lastTray = key;
    sinks.tray(state);
  };

  const onAlarms = (list: ServiceAlarm[]) => {
    notifications.alarms(list);
    alarms = trayAlarms(list);
    sendCounts();
  };

  const onBoard = (event: BoardEvent) => {
    switch (event.type) {
      case 'board.online':
        notifications.boardOnline(event.board);
        break;
      case 'board.offline':
        // A board suspended has its own notice; one revoked was the user's doing.
        if (!event.board.disabled) notifications.boardOffline(event.board);
        break;
      case 'board.removed':
        notifications.boardRemoved({ id: event.boardId });
        break;
      case 'board.enrolled':
        break;
      default:
        // Activity (once a second) and changes (tags, names) do not change the counts.
        return;
    }
    sendCounts();
  };

  const onJob = ({ job, targets }: JobEvent) => {
    if (job.state !== 'done' || finished.has(job.id)) return;
    finished.add(job.id);
    if (finished.size > FINISHED_REMEMBERED) finished.delete(finished.values().next().value!);
    if (job.kind === 'flash' || job.kind === 'provision') {
      // The event carries the boards that changed; the job itself has them all.
      const target = targets.find((changed) => changed.index === 0) ?? jobTarget(job.id);
      notifications.flashDone(flashOutcome(job, target));
    } else if (NOTIFIED_JOB_KINDS.has(job.kind)) {
      notifications.jobDone({ id: job.id, title: job.title, ok: job.counts.ok, failed: job.counts.failed, total: job.total });
    }
  };

  const jobTarget = (id: string): JobTarget | undefined => {
    try {
      return jobs?.get(id).targets[0];
    } catch {
      return undefined;
    }
  };

  const follow = () => {
    fleet?.off('board', onBoard);
    jobs?.off('job', onJob);
    fleet = manager.isActive ? manager.fleet : undefined;
    jobs = manager.isActive ? manager.jobService : undefined;
    fleet?.on('board', onBoard);
    jobs?.on('job', onJob);
  };
  const onRole = () => {
    follow();
    sendCounts();
  };

  const stop = () => {
    if (stopped) return;
    stopped = true;
    fleet?.off('board', onBoard);
    jobs?.off('job', onJob);
    manager.off('role', onRole);
    manager.off('alarms', onAlarms);
    manager.off('stopped', stop);
    // Boards of a service that stopped are not news.
    notifications.cancelPendingOffline();
  };

  follow();
  manager.on('role', onRole);
  manager.on('alarms', onAlarms);
  manager.on('stopped', stop);
  // Alarms raised before the app followed the service (a board suspended earlier) are news too.
  notifications.alarms(manager.alarms());
  sendCounts();
  return { stop };
}

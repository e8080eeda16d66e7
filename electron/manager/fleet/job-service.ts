/**
 * Runs jobs and keeps them: every bulk action of the UI (and any client) becomes a job with
 * a status per board, fed by the commands it sent (through the fleet's command events) or
 * by the USB service's progress (flash, provision). Jobs are saved to Redis as they change
 * and kept 24 h (at most MAX_JOBS), so a reload, a closed window or a restarted service
 * still shows them. Events go out at most 4 times a second per job, with only the boards
 * that changed.
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import type { JobStore } from '../redis/job-store.js';
import type { StagedFiles } from '../transfer/staged-files.js';
import type { Fleet, BoardEvent } from './fleet.js';
import type { BoardState } from './board-registry.js';
import type { CommandView } from './command-dispatcher.js';
import { FINAL_STATUSES } from './command-dispatcher.js';
import type { CommandRequest } from './command-ops.js';
import {
  FINAL_TARGET_STATUSES,
  JOB_PHASES_KEPT,
  clipOutput,
  emptyCounts,
  parseStoredJob,
  pendingStatus,
  summarizeJob,
  targetStatusOf,
  type JobKind,
  type JobProgress,
  type JobSummary,
  type JobTarget,
  type JobEvent,
  type JobRequest,
  type JobView,
} from './job-model.js';
import { runUsbJob, type UsbJobRunner } from './usb-job.js';
import { RebootWatch } from './reboot-watch.js';
import { count, titleOf } from './job-titles.js';
import { isPackageJob, launchPackageJob, packageTargetInterrupted, type PackageJobOptions, type PackageJobRequest } from './package-install-job.js';
import { ManagerError, type ErrorKind } from '../errors.js';
import { liveJob, saveJobs, scheduleJobEvent, trimJobs, type LiveJob } from './live-job.js';

export const JOB_KEPT_MS = 24 * 3_600_000;
export const MAX_JOBS = 200;
const SAVE_INTERVAL_MS = 1_000;

export type { JobEvent, JobRequest } from './job-model.js';

export interface JobServiceEvents {
  job: [event: JobEvent];
}

export class JobNotFoundError extends ManagerError {
  override name = 'JobNotFoundError';
  readonly kind: ErrorKind = 'not_found';
}

export class JobService extends EventEmitter<JobServiceEvents> {
  private readonly jobs = new Map<string, LiveJob>();
  /** cid → where its outcome goes. */
  private readonly byCommand = new Map<string, { job: LiveJob; index: number }>();
  /** Per target, the last known status of each of its commands. */
  private readonly commandStatus = new Map<string, CommandView['status']>();
  private saveTimer: NodeJS.Timeout | undefined;
  /** Install/uninstall jobs still running on boards: aborted by cancel; `stopping` by stop. */
  private readonly packageRuns = new Map<string, AbortController>();
  /** Each board's latest install/uninstall run: the next waits for it (package-install-job.ts). */
  private readonly boardPackageRuns = new Map<string, Promise<void>>();
  private readonly stopping = new AbortController();
  private readonly onCommand = (view: CommandView) => this.commandChanged(view);
  private readonly onBoard = (event: BoardEvent) => {
    this.reboots.onBoard(event);
    this.boardChanged(event);
  };
  /** Rebooted boards expected back (a reboot job's board is ok only once it is online again). */
  private readonly reboots = new RebootWatch({
    graceMs: (boardId) => this.options.rebootGraceMs ?? Math.max(60_000, 3 * (this.options.fleet.registry.get(boardId)?.hb ?? 5) * 1000),
    needsReset: (boardId) => this.options.fleet.registry.get(boardId)?.needsReset ?? false,
  });

  constructor(
    private readonly options: {
      fleet: Fleet;
      store: JobStore;
      staged: StagedFiles;
      usb: UsbJobRunner;
      log: Logger;
      /** How long a rebooted board may take to come back (default: 60 s, or 3 heartbeats). */
      rebootGraceMs?: number;
      /** board-install: where packages come from and are cached (package-install-job.ts). */
      packages?: PackageJobOptions;
    },
  ) {
    super();
    this.setMaxListeners(0);
    // Every board of a running install waits on it.
    setMaxListeners(0, this.stopping.signal);
  }

  /** Loads the last day's jobs; unfinished ones re-attach to their commands. */
  async start(): Promise<void> {
    await this.options.store.prune(Date.now() - JOB_KEPT_MS, MAX_JOBS);
    for (const stored of await this.options.store.list(Date.now() - JOB_KEPT_MS, MAX_JOBS)) {
      let view: JobView;
      try {
        view = parseStoredJob(stored.summary, stored.targets);
      } catch (error) {
        this.options.log('warn', `ignoring an unreadable job record: ${(error as Error).message}`);
        continue;
      }
      this.restore(view);
    }
    this.options.fleet.on('command', this.onCommand);
    this.options.fleet.on('board', this.onBoard);
    this.saveTimer = setInterval(() => {
      this.reboots.sweep();
      void saveJobs(this.jobs.values(), this.options.store, this.options.log);
    }, SAVE_INTERVAL_MS);
    this.saveTimer.unref();
  }

  /** `save: false`: another manager is active now and owns the jobs' records (manager-role.ts). */
  async stop(options: { save?: boolean } = {}): Promise<void> {
    this.stopping.abort();
    clearInterval(this.saveTimer);
    this.options.fleet.off('command', this.onCommand);
    this.options.fleet.off('board', this.onBoard);
    for (const job of this.jobs.values()) if (job.eventTimer) clearTimeout(job.eventTimer);
    if (options.save !== false) await saveJobs(this.jobs.values(), this.options.store, this.options.log);
  }

  list(): JobSummary[] {
    return [...this.jobs.values()].map((job) => summarizeJob(job.view)).sort((a, b) => b.createdAt - a.createdAt);
  }

  get(id: string): JobView {
    const job = this.jobs.get(id);
    if (!job) throw new JobNotFoundError(`no job ${id} (jobs are kept for 24 hours)`);
    return { ...summarizeJob(job.view), targets: job.view.targets };
  }

  /** Starts a job; resolves once every board has its commands queued (not when they finish). */
  async launch(request: JobRequest): Promise<JobSummary> {
    if (request.kind === 'flash' || request.kind === 'provision') {
      const job = this.create(
        request.kind,
        titleOf(request),
        [{ board: request.kind === 'provision' ? request.name : (request.provision?.name ?? request.port) }],
        request.port,
      );
      void runUsbJob(this.options.usb, job.view.id, request, {
        progress: (progress) => this.setProgress(job, progress),
        finished: (outcome) => this.finishTarget(job, 0, outcome.ok ? 'ok' : 'failed', outcome.message, outcome.boardId),
      });
      return summarizeJob(job.view);
    }
    const boards = this.options.fleet.select(request.boards);
    if (request.kind === 'install' || request.kind === 'uninstall') return this.launchPackages(request, boards);
    // Check everything before anything is sent: a missing staged file fails the whole job.
    const files =
      request.kind === 'upload'
        ? await Promise.all(request.files.map(async (file) => ({ path: file.path, data: await this.options.staged.read(file.file) })))
        : [];
    const job = this.create(
      request.kind,
      titleOf(request, boards.length),
      boards.map((board) => ({ board: board.name, boardId: board.id })),
      null,
    );
    if (request.kind === 'tag') {
      await this.immediate(job, boards, async () => {
        await this.options.fleet.tagBoards(boards, request.add, request.remove);
      });
    } else if (request.kind === 'remove') {
      await this.immediate(job, boards, (board) => this.options.fleet.remove(board.id));
    } else {
      const requests: CommandRequest[] =
        request.kind === 'exec'
          ? [{ op: 'exec', code: request.code, timeoutMs: request.timeoutMs }]
          : request.kind === 'reboot'
            ? [{ op: 'reboot' }]
            : files.map((file) => ({ op: 'put', path: file.path, data: file.data }));
      job.view.targets.forEach((target) => (target.total = requests.length));
      await Promise.all(
        boards.map(async (board, index) => {
          for (const command of requests) {
            const view = await this.options.fleet.send(board, command, {
              expireMs: request.expireMs,
              timeoutMs: request.kind === 'exec' ? request.timeoutMs : undefined,
            });
            this.attach(job, index, view);
          }
        }),
      );
    }
    this.touchSummary(job);
    return summarizeJob(job.view);
  }

  /** Cancels what has not started yet (commands still queued for their boards). */
  async cancel(id: string): Promise<JobSummary> {
    const job = this.jobs.get(id);
    if (!job) throw new JobNotFoundError(`no job ${id}`);
    this.packageRuns.get(id)?.abort();
    for (const target of job.view.targets) {
      if (FINAL_TARGET_STATUSES.has(target.status)) continue;
      for (const cid of target.cids) await this.options.fleet.dispatcher.cancel(cid).catch(() => undefined);
    }
    return summarizeJob(job.view);
  }

  // --- internals ---------------------------------------------------------------------------

  /** Install/uninstall: everything is prepared on the host first; any problem rejects with nothing sent (package-install-job.ts). */
  private async launchPackages(request: PackageJobRequest, boards: BoardState[]): Promise<JobSummary> {
    const job = this.create(
      request.kind,
      titleOf(request, boards.length),
      boards.map((board) => ({ board: board.name, boardId: board.id })),
      null,
    );
    const cancelled = new AbortController();
    setMaxListeners(0, cancelled.signal);
    this.packageRuns.set(job.view.id, cancelled);
    try {
      await launchPackageJob(request, boards, {
        ...this.options.packages,
        fleet: this.options.fleet,
        log: this.options.log,
        boardRuns: this.boardPackageRuns,
        stopping: this.stopping.signal,
        cancelled: cancelled.signal,
        progress: (progress) => this.setProgress(job, progress),
        target: (index) => ({
          sent: (cid) => job.view.targets[index]!.cids.push(cid),
          running: () => this.setTarget(job, index, { status: 'running' }),
          progress: (done, total) => this.setTarget(job, index, { done, total }),
          finished: (status, message, install) => {
            job.view.targets[index]!.install = install;
            this.finishTarget(job, index, status, message);
          },
        }),
        ended: () => this.packageRuns.delete(job.view.id),
      });
    } catch (error) {
      this.packageRuns.delete(job.view.id);
      job.view.targets.forEach((_, index) => this.finishTarget(job, index, 'failed', (error as Error).message));
      throw error;
    }
    return summarizeJob(job.view);
  }

  private setTarget(job: LiveJob, index: number, change: Partial<JobTarget>): void {
    const target = job.view.targets[index]!;
    if (FINAL_TARGET_STATUSES.has(target.status)) return;
    Object.assign(target, change);
    this.markTarget(job, index);
  }

  private create(kind: JobKind, title: string, targets: Array<{ board: string; boardId?: string }>, port: string | null): LiveJob {
    const view: JobView = {
      id: `j${Date.now().toString(36)}${randomBytes(5).toString('hex')}`,
      kind,
      title,
      createdAt: Date.now(),
      finishedAt: null,
      state: 'running',
      counts: emptyCounts(),
      total: targets.length,
      progress: null,
      phases: [],
      port,
      // A board that is offline waits from the start (its command is sent a moment later).
      targets: targets.map((target) => ({
        board: target.board,
        boardId: target.boardId ?? null,
        status: pendingStatus(!target.boardId || this.boardOnline(target.boardId)),
        message: null,
        done: 0,
        total: 0,
        cids: [],
        output: null,
      })),
    };
    const job = this.track(view);
    view.targets.forEach((_, index) => job.unsent.add(index));
    view.targets.forEach((target, index) => this.refreshTarget(job, index));
    void this.options.store.prune(Date.now() - JOB_KEPT_MS, MAX_JOBS - 1).catch(() => undefined);
    // Keeps memory bounded like the store: the newest MAX_JOBS, none older than a day.
    trimJobs(this.jobs, Date.now() - JOB_KEPT_MS, MAX_JOBS);
    this.changed(job);
    return job;
  }

  private track(view: JobView): LiveJob {
    const job = liveJob(view);
    this.jobs.set(view.id, job);
    return job;
  }

  /** A job saved before the service (re)started: unfinished boards re-attach to their commands, if still known. */
  private restore(view: JobView): void {
    const job = this.track(view);
    if (view.state === 'done') return;
    view.targets.forEach((target, index) => {
      if (FINAL_TARGET_STATUSES.has(target.status)) return;
      if (isPackageJob(view.kind)) {
        // Its sequence of commands ran in the service that stopped: nothing re-attaches to it.
        target.status = 'failed';
        target.message = packageTargetInterrupted(view.kind);
        return;
      }
      if (target.cids.length === 0) {
        target.status = 'failed';
        target.message = 'the service stopped before this finished';
        return;
      }
      for (const cid of target.cids) {
        const command = this.options.fleet.dispatcher.get(cid);
        this.byCommand.set(cid, { job, index });
        this.commandStatus.set(cid, command?.status ?? 'lost');
      }
      this.refreshTarget(job, index);
    });
    this.checkDone(job);
  }

  private attach(job: LiveJob, index: number, view: CommandView): void {
    const target = job.view.targets[index]!;
    target.cids.push(view.cid);
    target.total = Math.max(target.total, target.cids.length);
    this.byCommand.set(view.cid, { job, index });
    this.commandStatus.set(view.cid, view.status);
    if (FINAL_STATUSES.has(view.status)) this.commandChanged(view);
    else this.refreshTarget(job, index);
  }

  private async immediate(job: LiveJob, boards: BoardState[], action: (board: BoardState) => Promise<void>): Promise<void> {
    if (job.view.kind === 'tag') {
      // One call tags every board (all or nothing).
      try {
        await action(boards[0]!);
        job.view.targets.forEach((_, index) => this.finishTarget(job, index, 'ok', null));
      } catch (error) {
        job.view.targets.forEach((_, index) => this.finishTarget(job, index, 'failed', (error as Error).message));
      }
      return;
    }
    for (const [index, board] of boards.entries()) {
      try {
        await action(board);
        this.finishTarget(job, index, 'ok', null);
      } catch (error) {
        this.finishTarget(job, index, 'failed', (error as Error).message);
      }
    }
  }

  private commandChanged(view: CommandView): void {
    const where = this.byCommand.get(view.cid);
    if (!where) return;
    this.commandStatus.set(view.cid, view.status);
    const target = where.job.view.targets[where.index]!;
    if (FINAL_STATUSES.has(view.status)) {
      this.byCommand.delete(view.cid);
      if (view.status !== 'ok') target.message = view.error ?? view.status;
      if (view.op === 'exec') {
        const output = view.output.map((chunk) => chunk.text).join('');
        target.output = output ? clipOutput(output) : null;
      }
    }
    this.refreshTarget(where.job, where.index);
  }

  private boardChanged(event: BoardEvent): void {
    if (event.type !== 'board.online' && event.type !== 'board.offline') return;
    for (const job of this.jobs.values()) {
      if (job.view.state === 'done' || job.view.port) continue;
      job.view.targets.forEach((target, index) => {
        if (target.boardId === event.board.id && (target.status === 'queued' || target.status === 'waiting')) this.refreshTarget(job, index);
      });
    }
  }

  private refreshTarget(job: LiveJob, index: number): void {
    const target = job.view.targets[index]!;
    if (isPackageJob(job.view.kind)) {
      // Its run decides running/ok/failed; here only a board that has not started follows its liveness.
      const pending = pendingStatus(target.boardId ? this.boardOnline(target.boardId) : false);
      if ((target.status === 'queued' || target.status === 'waiting') && target.status !== pending) this.setTarget(job, index, { status: pending });
      return;
    }
    if (FINAL_TARGET_STATUSES.has(target.status) || target.cids.length === 0) return;
    // Commands of the board not sent yet count as queued: the first file written is not the board done.
    const unsent: CommandView['status'][] = Array.from({ length: Math.max(0, target.total - target.cids.length) }, () => 'queued');
    const statuses = [...target.cids.map((cid) => this.commandStatus.get(cid) ?? 'lost'), ...unsent];
    const online = target.boardId ? this.boardOnline(target.boardId) : false;
    let status = targetStatusOf(statuses, online);
    target.done = statuses.filter((status) => status === 'ok').length;
    // A reboot is done when the board is back, not when it said it would restart.
    if (status === 'ok' && job.view.kind === 'reboot' && target.boardId && target.message !== 'restarting') {
      status = 'running';
      target.message = 'restarting';
      void this.reboots.expect(target.boardId).then((outcome) => {
        if (outcome.back) this.finishTarget(job, index, 'ok', 'back online');
        else this.finishTarget(job, index, 'failed', outcome.message);
      });
    } else if (status === 'ok' && job.view.kind === 'reboot') return;
    if (status === 'ok' && job.view.kind === 'upload') target.message = `${count(target.total, 'file')} written, sha256 checked`;
    if (FINAL_TARGET_STATUSES.has(status)) for (const cid of target.cids) this.commandStatus.delete(cid);
    if (status === target.status && !FINAL_TARGET_STATUSES.has(status) && status !== 'running') return;
    target.status = status;
    this.markTarget(job, index);
    this.checkDone(job);
  }

  private boardOnline(boardId: string): boolean {
    return this.options.fleet.registry.get(boardId)?.online ?? false;
  }

  private finishTarget(job: LiveJob, index: number, status: 'ok' | 'failed', message: string | null, boardId?: string | null): void {
    const target = job.view.targets[index]!;
    for (const cid of target.cids) this.commandStatus.delete(cid);
    target.status = status;
    target.message = message;
    if (boardId) target.boardId = boardId;
    this.markTarget(job, index);
    this.checkDone(job);
  }

  private setProgress(job: LiveJob, progress: JobProgress): void {
    job.view.progress = progress;
    // Events are sent a few times a second with the latest progress only: the phases list
    // keeps the ones in between (a re-flash, the BOOT/RESET prompt) for whoever shows them.
    const phases = job.view.phases;
    if (phases[phases.length - 1]?.phase !== progress.phase) {
      phases.push({ phase: progress.phase, message: progress.message, at: Date.now() });
      if (phases.length > JOB_PHASES_KEPT) phases.splice(0, phases.length - JOB_PHASES_KEPT);
    }
    const target = job.view.targets[0];
    if (job.view.port && target && target.status === 'queued') {
      target.status = 'running';
      this.markTarget(job, 0);
    }
    this.touchSummary(job);
  }

  private checkDone(job: LiveJob): void {
    if (job.view.state === 'done' || !job.view.targets.every((target) => FINAL_TARGET_STATUSES.has(target.status))) return;
    job.view.state = 'done';
    job.view.finishedAt = Date.now();
    this.touchSummary(job, true);
  }

  private markTarget(job: LiveJob, index: number): void {
    job.unsent.add(index);
    job.unsaved.add(index);
    this.changed(job);
  }

  private touchSummary(job: LiveJob, now = false): void {
    job.summaryUnsaved = true;
    this.changed(job, now);
  }

  /** Schedules an event for the job (at most every 250 ms; at once when it finishes). */
  private changed(job: LiveJob, now = false): void {
    scheduleJobEvent(job, now, (event) => this.emit('job', event));
  }
}

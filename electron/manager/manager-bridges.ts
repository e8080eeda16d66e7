/**
 * Which half of the manager bridge (manager-bridge.ts) runs, following the role: the active
 * half while this manager holds the lease, the standby half otherwise. The Manager tells it
 * each role change; it answers which routes go to the active manager and how.
 */
import { ActiveBridge, StandbyBridge, isForwarded } from './manager-bridge.js';
import { StandbyError, type ManagerRole } from './manager-role.js';
import type { ManagerBridgeStore } from './redis/manager-bridge-store.js';
import type { ApiEvent, RouteInput, RouteName, ServiceStatus } from './api/contract.js';
import { RequestError } from './api/api-errors.js';
import type { Logger } from './log.js';

type UploadJob = Extract<RouteInput<'jobs.start'>, { kind: 'upload' }>;

/**
 * The most an upload started on a standby takes along (its files travel through Redis once,
 * base64 in the request's body, which must stay within MAX_BODY_BYTES: manager-bridge-store.ts).
 */
const MAX_FORWARDED_BYTES = 16 * 1024 * 1024;

/** How long a standby's status waits for the active manager's counts. */
const STANDBY_STATUS_WAIT_MS = 2_000;

export interface ManagerBridgesOptions {
  store: ManagerBridgeStore;
  /** This manager's id (its lease's). */
  id: string;
  role: () => ManagerRole | undefined;
  /** Runs a route on this manager (what an active one does for a standby's request). */
  run: (route: RouteName, input: unknown) => Promise<unknown>;
  /** Shows an event to this manager's own clients. */
  broadcast: (event: ApiEvent) => void;
  /** This manager's staged files (an upload job started on a standby takes its files along). */
  readStaged: (id: string) => Promise<Buffer>;
  stage: (data: Buffer) => Promise<string>;
  log: Logger;
}

export class ManagerBridges {
  private active: ActiveBridge | undefined;
  private standby: StandbyBridge | undefined;
  private stopped = false;

  constructor(private readonly options: ManagerBridgesOptions) {}

  /** This manager became active with `epoch`: stops following, starts answering. */
  async activate(epoch: number): Promise<void> {
    await this.stopStandby();
    const { store, id, run, stage, log } = this.options;
    this.active = new ActiveBridge({ store, id, epoch, run, stage, log, superseded: (reason) => this.options.role()?.superseded(reason) });
    try {
      await this.active.start();
    } catch (error) {
      // The fleet runs anyway (a Redis user without stream groups, say): only the standbys go unanswered.
      log('warn', `standby managers will not be answered: ${(error as Error).message}`);
    }
    // What clients saw came from another manager until now (events may have been lost in between): they load everything again.
    this.options.broadcast({ type: 'resync' });
  }

  /** This manager stands by (at start, or after acting): stops answering, starts following. */
  async standBy(): Promise<void> {
    const wasActive = this.active !== undefined;
    await this.active?.stop();
    this.active = undefined;
    if (this.standby || this.stopped) return;
    const bridge = new StandbyBridge({
      store: this.options.store,
      id: this.options.id,
      broadcast: this.options.broadcast,
      resyncOnFirstFrame: wasActive,
      activeName: () => {
        const active = this.options.role()?.info().active;
        return active ? `${active.host}, pid ${active.pid}` : 'none yet';
      },
      log: this.options.log,
    });
    this.standby = bridge;
    try {
      await bridge.start();
    } catch (error) {
      this.options.log('warn', `standing by without the active manager's fleet (its routes answer 503): ${(error as Error).message}`);
      await this.stopStandby();
    }
  }

  /** An event of this (active) manager's fleet: to its own clients and to the standbys'. */
  broadcast(event: ApiEvent): void {
    this.options.broadcast(event);
    this.active?.publish(event);
  }

  /**
   * A standby has the active manager answer the fleet's routes; undefined: this manager
   * answers (it is active, or the route is its own: status, USB, its network settings).
   */
  forward(name: RouteName, input: unknown): Promise<unknown> | undefined {
    if (this.active || name === 'status' || !isForwarded(name, input)) return undefined;
    const role = this.options.role();
    // No other manager active (none yet, or this one's own lease from before it was superseded): nobody would answer.
    const holder = role?.info().active;
    if (!this.standby || !holder || holder.id === this.options.id)
      return Promise.reject(new StandbyError(role?.standbyMessage() ?? 'the manager is not started'));
    if (name === 'jobs.start' && (input as RouteInput<'jobs.start'>).kind === 'upload') return this.forwardUpload(this.standby, input as UploadJob);
    return this.standby.forward(name, input);
  }

  /** An upload job: its files are staged on this computer, so they go along (at most MAX_FORWARDED_BYTES in all). */
  private async forwardUpload(standby: StandbyBridge, input: UploadJob): Promise<unknown> {
    const files: Record<string, string> = {};
    let bytes = 0;
    for (const { file } of input.files) {
      if (Object.hasOwn(files, file)) continue;
      const data = await this.options.readStaged(file);
      bytes += data.length;
      if (bytes > MAX_FORWARDED_BYTES) {
        throw new RequestError(
          400,
          'bad_request',
          `these files are more than ${MAX_FORWARDED_BYTES / 1024 / 1024} MiB, the most a standby passes on to the active manager at once: upload them in parts, or from the computer that runs the fleet`,
        );
      }
      files[file] = data.toString('base64');
    }
    return standby.forward('jobs.start', input, undefined, files);
  }

  /** On a standby: the active manager's status (its fleet's counts); undefined when it does not answer soon. */
  async activeStatus(): Promise<ServiceStatus | undefined> {
    const holder = this.options.role()?.info().active;
    if (!this.standby || !holder || holder.id === this.options.id) return undefined;
    return (await this.standby.forward('status', {}, STANDBY_STATUS_WAIT_MS).catch(() => undefined)) as ServiceStatus | undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.active?.stop();
    this.active = undefined;
    await this.stopStandby();
  }

  private async stopStandby(): Promise<void> {
    const bridge = this.standby;
    this.standby = undefined;
    await bridge?.stop();
  }
}

/**
 * What only the active manager runs (manager-role.ts): the fleet (uplink reader, liveness
 * sweeps, command expiry), telemetry, USB, jobs and virtual boards, on a FleetStore fenced
 * with the lease epoch. Started at each activation, as after a restart (everything is
 * restored from Redis), and stopped when the manager stops or stands by.
 */
import path from 'node:path';
import { FleetStore } from './redis/fleet-store.js';
import { Fleet, type FleetOptions } from './fleet/fleet.js';
import { UsbService } from './usb/usb-service.js';
import { JobService } from './fleet/job-service.js';
import { JobStore } from './redis/job-store.js';
import type { StagedFiles } from './transfer/staged-files.js';
import { SimService } from './virtual/sim-service.js';
import { recordFleetTelemetry, TelemetryRecorder } from './fleet/telemetry.js';
import { TelemetryStore } from './redis/telemetry-store.js';
import type { ApiClient } from './api/client.js';
import type { ApiContext } from './api/routes.js';
import type { ApiEvent } from './api/contract.js';
import type { RedisClient } from './redis/redis-connection.js';
import type { Logger } from './log.js';

export interface ActiveServicesOptions {
  redis: RedisClient;
  /** The lease epoch every fenced write carries. */
  epoch: number;
  log: Logger;
  fleet: Omit<FleetOptions, 'store' | 'log'>;
  staged: StagedFiles;
  firmwareFolder: string;
  extraSerialPorts?: string[];
  serialPortPollMs?: number;
  rebootGraceMs?: number;
  /** Data folder (packages/ cache), board-install's index and PyPI (default $CLOUDMANAGER_PACKAGE_INDEX, $CLOUDMANAGER_PYPI_URL). */
  packages: { root: string; indexUrl?: string; pypiUrl?: string };
  api: () => ApiClient;
  /** Told about a replica that missed a per-node change, and when Redis refuses the epoch (another manager took over). */
  replicaFailed: (address: string, error: Error) => void;
  superseded: (reason: string) => void;
}

export class ActiveServices {
  private constructor(
    readonly store: FleetStore,
    readonly fleet: Fleet,
    readonly telemetry: TelemetryRecorder,
    readonly usb: UsbService,
    readonly jobs: JobService,
    readonly sim: SimService,
    private readonly log: Logger,
  ) {}

  /** Builds and starts everything; on a failure, what was started is stopped again and the error thrown. */
  static async start(options: ActiveServicesOptions): Promise<ActiveServices> {
    const { redis, log } = options;
    const store = new FleetStore(redis, options.replicaFailed);
    store.epoch = options.epoch;
    store.on('stale', (message) => options.superseded(message));
    const fleet = new Fleet({ ...options.fleet, store, log });
    const telemetry = new TelemetryRecorder({ store: new TelemetryStore(redis), log });
    recordFleetTelemetry(fleet, telemetry);
    const usb = new UsbService({ fleet, log, firmwareFolder: options.firmwareFolder, extraPorts: options.extraSerialPorts });
    const jobs = new JobService({
      fleet,
      store: new JobStore(redis),
      staged: options.staged,
      usb,
      log,
      rebootGraceMs: options.rebootGraceMs,
      packages: {
        cacheDir: path.join(options.packages.root, 'packages'),
        indexUrl: options.packages.indexUrl ?? (process.env.CLOUDMANAGER_PACKAGE_INDEX || undefined),
        pypiUrl: options.packages.pypiUrl ?? process.env.CLOUDMANAGER_PYPI_URL,
      },
    });
    const sim = new SimService({ api: options.api, takenNames: () => fleet.registry.names() });
    const services = new ActiveServices(store, fleet, telemetry, usb, jobs, sim, log);
    try {
      await fleet.start();
      telemetry.start();
      await jobs.start();
      await usb.watchPorts(options.serialPortPollMs);
    } catch (error) {
      await services.stop(true);
      throw error;
    }
    return services;
  }

  /** Sends the fleet's, the jobs' and USB's events to the API's listeners. */
  broadcastTo(broadcast: (event: ApiEvent) => void): void {
    this.fleet.on('board', (event) => broadcast(event));
    this.fleet.on('command', (command) => broadcast({ type: 'command', command }));
    this.fleet.on('output', (event) => broadcast({ type: 'output', ...event }));
    this.usb.on('progress', (event) => broadcast({ type: 'usb.progress', ...event }));
    this.jobs.on('job', (event) => broadcast({ type: 'job', ...event }));
    this.usb.on('port', (change) => broadcast({ type: 'usb.port', ...change }));
  }

  /**
   * Stops acting. `superseded`: another manager may be active already, so nothing is written
   * any more (history, board records, job state, telemetry buckets are the new one's); the
   * fenced writes still under way are refused by Redis anyway.
   */
  async stop(superseded: boolean): Promise<void> {
    const step = async (what: string, action: () => Promise<unknown> | undefined) => {
      try {
        await action();
      } catch (error) {
        this.log(superseded ? 'debug' : 'warn', `while stopping ${what}: ${(error as Error).message}`);
      }
    };
    await step('USB', () => this.usb.stop());
    await step('virtual boards', () => this.sim.stop());
    await step('jobs', () => this.jobs.stop({ save: !superseded }));
    await step('the fleet', () => this.fleet.stop({ superseded }));
    await step('telemetry', () => this.telemetry.stop({ write: !superseded }));
    await step('notifications', () => this.store.close());
  }
}

/**
 * The API's view of the service: the fleet's parts come from `services`, which throws
 * StandbyError (503) while this manager stands by (manager-role.ts); the rest is the manager's.
 */
export function standbyAwareContext(services: () => ActiveServices, manager: Omit<ApiContext, 'fleet' | 'usb' | 'jobs' | 'sim' | 'telemetry'>): ApiContext {
  return {
    ...manager,
    get fleet() {
      return services().fleet;
    },
    get usb() {
      return services().usb;
    },
    get jobs() {
      return services().jobs;
    },
    get sim() {
      return services().sim;
    },
    telemetry: (boardId) => services().telemetry.read(boardId),
  };
}

/**
 * A complete fleet for integration tests: a manager with its own embedded redis-server
 * (temp data folder, free port, short heartbeat) and virtual boards connected to it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Manager, type ManagerOptions } from '../../electron/manager/manager.js';
import { ApiClient } from '../../electron/manager/api/client.js';
import { startVirtualFleet, type VirtualFleet, type VirtualFleetOptions } from '../../electron/manager/virtual/virtual-fleet.js';
import type { LogLevel } from '../../electron/manager/log.js';
import { freePort, freeUdpPort } from './free-port.js';
import { RedisFaultProxy } from '../lab/redis-fault-proxy.js';

export interface LabOptions {
  boards?: number;
  prefix?: string;
  heartbeatS?: number;
  manager?: Partial<ManagerOptions>;
  fleet?: Partial<VirtualFleetOptions>;
  /** Boards reach Redis through a fault proxy (lab.proxy) that can lose or delay replies. */
  proxy?: boolean;
}

export interface Lab {
  manager: Manager;
  api: ApiClient;
  fleet: VirtualFleet;
  logs: Array<{ level: LogLevel; message: string }>;
  dataDir: string;
  redisPort: number;
  proxy: RedisFaultProxy | null;
  close(): Promise<void>;
}

export async function waitFor<T>(check: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export async function startManager(options: Partial<ManagerOptions> & { heartbeatS?: number } = {}) {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'cm-test-')));
  const redisPort = options.redisPort ?? (await freePort());
  const logs: Array<{ level: LogLevel; message: string }> = [];
  const manager = new Manager({
    dataDir,
    redisPort,
    heartbeatS: 1,
    // Test files run in parallel: each service its own discovery port, never the shared 18268.
    discoveryPort: await freeUdpPort(),
    log: (level, message) => {
      if (level !== 'debug' || process.env.CM_TEST_DEBUG) logs.push({ level, message });
    },
    ...options,
  });
  await manager.start();
  const api = new ApiClient(manager.apiUrl, manager.apiToken);
  return {
    manager,
    api,
    logs,
    dataDir,
    redisPort,
    /** Stops the service and removes its data folder if this helper made it. */
    async close() {
      await manager.stop();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function startLab(options: LabOptions = {}): Promise<Lab> {
  const service = await startManager({ heartbeatS: options.heartbeatS ?? 1, ...options.manager });
  const { manager, api, logs, dataDir, redisPort } = service;
  const proxy = options.proxy ? await RedisFaultProxy.start({ port: redisPort }) : null;
  const fleet = await startVirtualFleet({
    api,
    count: options.boards ?? 2,
    prefix: options.prefix ?? 'sim',
    ...options.fleet,
    board: { reconnectMinMs: 100, bootDelayMs: 200, ...(proxy ? { port: proxy.port } : {}), ...options.fleet?.board },
  });
  await waitFor(async () => (await api.call('status', {})).boards.online === fleet.boards.length, 10_000, 'boards online');
  return {
    manager,
    api,
    fleet,
    logs,
    dataDir,
    redisPort,
    proxy,
    async close() {
      await fleet.close();
      await proxy?.close();
      await service.close();
    },
  };
}

/**
 * Redis Cluster and Sentinel on loopback for tests, started with the redis-server the app
 * would run (its own lookup). The logic is scripts/redis-cluster-lib.mjs, the same as
 * `npm run cluster:up`; here every lab gets a random free port range and a temp folder,
 * and stop() removes both the processes and the folder.
 */
import { fileURLToPath } from 'node:url';
import { findRedisServerBinary } from '../../electron/manager/redis/redis-binary.js';
import {
  killClusterPrimary,
  killSentinelPrimary,
  startCluster,
  startSentinel,
  stopLab,
  type Failover,
  type Lab,
  type LabRole,
} from '../../scripts/redis-cluster-lib.mjs';

const packageRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface RedisLab {
  /** The data nodes (sentinels not included); a killed node reads role 'down'. */
  nodes: Array<{ port: number; role: LabRole }>;
  /** `redis+cluster://127.0.0.1:p1,…` or `redis+sentinel://127.0.0.1:s1,…/mymaster`. */
  url: string;
  /** Cluster: every node; Sentinel: the sentinels (what ioredis's `Cluster` / `sentinels` take). */
  seeds: Array<{ host: string; port: number }>;
  /** The lab's folder (a folder per node, the state file); removed by stop(). */
  dir: string;
  /** Kills (-9) a primary and resolves once its replica has taken over and the lab is healthy again. */
  killPrimary(port?: number | 'any'): Promise<Failover>;
  stop(): Promise<void>;
}

/** A random base in 20000–29999 so parallel test files rarely probe the same ports (a cluster's bus ports are +10000). */
const randomBase = () => 20_000 + Math.floor(Math.random() * 9_000);

async function redisServer(): Promise<string> {
  return (await findRedisServerBinary({ packageRoot })).path;
}

function view<T extends object>(lab: Lab, seeds: Array<{ host: string; port: number }>, killPrimary: RedisLab['killPrimary'], extra: T): RedisLab & T {
  const common: RedisLab = {
    // A getter: roles change with a failover.
    get nodes() {
      return lab.nodes.map(({ port, role }) => ({ port, role }));
    },
    url: lab.url,
    seeds,
    dir: lab.dir,
    killPrimary,
    stop: () => stopLab(lab),
  };
  return Object.assign(common, extra);
}

export async function startClusterLab(options: { masters?: number; replicas?: number } = {}): Promise<RedisLab> {
  const lab = await startCluster({ redisServer: await redisServer(), masters: options.masters ?? 3, replicas: options.replicas ?? 1, port: randomBase() });
  const seeds = lab.nodes.map(({ port }) => ({ host: '127.0.0.1', port }));
  return view(lab, seeds, (port = 'any') => killClusterPrimary(lab, port), {});
}

/** One primary, one replica, three sentinels (quorum 2) watching it as `mymaster`. */
export async function startSentinelLab(): Promise<RedisLab & { name: string }> {
  const lab = await startSentinel({ redisServer: await redisServer(), port: randomBase() });
  const seeds = (lab.sentinels ?? []).map(({ port }) => ({ host: '127.0.0.1', port }));
  return view(lab, seeds, () => killSentinelPrimary(lab), { name: lab.name ?? 'mymaster' });
}

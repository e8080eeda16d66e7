/**
 * The manager lease (docs/ARCHITECTURE.md "Several managers"): of the managers on one
 * Redis, the one holding `cm:{mgr}:lease` is active; the others stand by. Each acquisition
 * takes a new epoch (INCR cm:{mgr}:epoch), the fencing token the board functions check
 * (cloudmanager.lua): a manager that lost its lease without noticing (paused, cut off) is
 * refused with STALE before it changes a board's data. Acquire, renew and release are Lua
 * functions on `{mgr}` keys only (one slot of a Cluster).
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { managerKeys } from './keys.js';
import { callLoadingFunctions } from './function-call.js';
import { isCluster, type RedisClient } from './redis-connection.js';
import { primaryOf } from './redis-nodes.js';
import { readOrCreateSecret } from '../data-dir.js';

/** Default lease TTL: a killed active manager is taken over after at most this. */
export const DEFAULT_LEASE_TTL_MS = 10_000;

/** Who holds the lease, as stored in it. */
export interface LeaseHolder {
  id: string;
  epoch: number;
  host: string;
  pid: number;
  apiUrl: string;
  since: number;
}

export type LeaseAttempt = { held: true; epoch: number; holder: LeaseHolder } | { held: false; holder: LeaseHolder | undefined; ttlMs: number };

export interface ManagerLeaseOptions {
  /** This manager's id (default: random, new at each start). */
  id?: string;
  ttlMs?: number;
  /** The API URL the lease tells the others (with this computer's name and the process id). */
  apiUrl: () => string;
  /** Loads the function library (a fresh or flushed Redis has none yet). */
  loadFunctions: () => Promise<void>;
  /** Replication with a Cluster or Sentinel: wait for a replica to have the lease (best effort). */
  replicated?: boolean;
}

/**
 * The manager id of a data folder, made at its first start. One service runs per folder, so
 * a service restarted after a kill finds its own lease and goes on at once (with its epoch)
 * instead of standing by for a TTL; another computer's manager has its own folder and id.
 */
export async function managerIdOf(dataDir: string): Promise<string> {
  return (await readOrCreateSecret(path.join(dataDir, 'manager-id'))).slice(0, 16);
}

/** How long an acquisition waits for a replica to confirm it (WAIT). */
const REPLICA_WAIT_MS = 200;

function parseHolder(value: unknown): LeaseHolder | undefined {
  try {
    const holder = JSON.parse(String(value)) as Partial<LeaseHolder>;
    if (typeof holder.id !== 'string' || typeof holder.epoch !== 'number') return undefined;
    return {
      id: holder.id,
      epoch: holder.epoch,
      host: String(holder.host ?? ''),
      pid: Number(holder.pid ?? 0),
      apiUrl: String(holder.apiUrl ?? ''),
      since: Number(holder.since ?? 0),
    };
  } catch {
    return undefined;
  }
}

export class ManagerLease {
  readonly id: string;
  readonly ttlMs: number;
  /** The epoch this manager holds, or held last (a renewal after an expiry nobody else used keeps it). */
  private epoch: number | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly options: ManagerLeaseOptions,
  ) {
    this.id = options.id ?? randomUUID();
    this.ttlMs = options.ttlMs ?? DEFAULT_LEASE_TTL_MS;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs < 100) throw new Error(`lease TTL must be an integer of at least 100 ms, not ${this.ttlMs}`);
  }

  /**
   * Acquires the lease, or renews it when this manager holds it. A held lease with another
   * epoch than the one this manager had means it lost it in between (the caller stops acting).
   */
  async acquire(): Promise<LeaseAttempt> {
    const described = { host: os.hostname(), pid: process.pid, apiUrl: this.options.apiUrl(), since: Date.now() };
    const reply = (await this.fcall(
      'cm_lease_acquire',
      this.id,
      String(this.ttlMs),
      JSON.stringify(described),
      this.epoch === undefined ? '' : String(this.epoch),
    )) as [string, string, string | number];
    if (reply[0] === 'ok') {
      const epoch = Number(reply[1]);
      const fresh = epoch !== this.epoch;
      this.epoch = epoch;
      if (fresh && this.options.replicated) await this.waitForReplica();
      return { held: true, epoch, holder: parseHolder(reply[2])! };
    }
    return { held: false, holder: parseHolder(reply[1]), ttlMs: Number(reply[2]) };
  }

  /** Gives the lease up (only if this manager holds it): a standby takes over at its next try. */
  async release(): Promise<boolean> {
    return Number(await this.fcall('cm_lease_release', this.id)) === 1;
  }

  /** Who holds the lease now (undefined: nobody). */
  async holder(): Promise<LeaseHolder | undefined> {
    return parseHolder(await this.redis.get(managerKeys.lease));
  }

  private async fcall(fn: string, ...args: string[]): Promise<unknown> {
    return callLoadingFunctions(() => this.redis.call('FCALL', fn, '2', managerKeys.lease, managerKeys.epoch, ...args), this.options.loadFunctions);
  }

  /**
   * Replication is asynchronous: a primary that dies right after granting the lease may
   * take it with it, and a replica promoted without it would let a second manager in (the
   * epochs still fence the boards: the new epoch is at least as high). WAIT narrows that
   * window; it does not close it.
   */
  private async waitForReplica(): Promise<void> {
    try {
      const node = isCluster(this.redis) ? primaryOf(this.redis, managerKeys.lease) : this.redis;
      await node?.call('WAIT', '1', String(REPLICA_WAIT_MS));
    } catch {
      // Best effort: no replica, or it is slow.
    }
  }
}

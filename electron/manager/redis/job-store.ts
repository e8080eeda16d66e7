/**
 * Jobs in Redis, so they survive a closed window, a reload and a restart of the service:
 * one hash per job (its summary, and one field per board so a 10,000-board job is written
 * in small pieces, never one value over Redis's 1 MiB limit) and a sorted set of job ids
 * by creation time for listing and pruning.
 */
import { jobKey, managerKeys } from './keys.js';
import type { RedisClient } from './redis-connection.js';

/** A job as stored: its summary fields and its targets, both as opaque JSON text. */
export interface StoredJob {
  summary: string;
  targets: Map<number, string>;
}

export class JobStore {
  // Every key here carries the {mgr} tag: one Cluster slot, so the pipelines below stay on one node.
  constructor(private readonly redis: RedisClient) {}

  /** Writes a job's summary and the targets that changed (index → JSON). */
  async save(id: string, createdAt: number, summary: string, targets: Map<number, string>): Promise<void> {
    const key = jobKey(id);
    const pipeline = this.redis.pipeline();
    pipeline.zadd(managerKeys.jobs, createdAt, id);
    pipeline.hset(key, 'summary', summary);
    // Chunks of 500 fields keep each command small.
    const entries = [...targets];
    for (let index = 0; index < entries.length; index += 500) {
      pipeline.hset(key, ...entries.slice(index, index + 500).flatMap(([target, json]) => [`t:${target}`, json]));
    }
    const results = await pipeline.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0];
  }

  /** The newest `limit` jobs created after `since`, newest first. */
  async list(since: number, limit: number): Promise<StoredJob[]> {
    const ids = await this.redis.zrevrangebyscore(managerKeys.jobs, '+inf', since, 'LIMIT', 0, limit);
    const jobs: StoredJob[] = [];
    for (const id of ids) {
      const job = await this.get(id);
      if (job) jobs.push(job);
    }
    return jobs;
  }

  async get(id: string): Promise<StoredJob | null> {
    const fields = await this.redis.hgetall(jobKey(id));
    if (!fields.summary) return null;
    const targets = new Map<number, string>();
    for (const [field, json] of Object.entries(fields)) {
      if (field.startsWith('t:')) targets.set(Number(field.slice(2)), json);
    }
    return { summary: fields.summary, targets };
  }

  /** Deletes jobs older than `before`, and all but the newest `keep`. */
  async prune(before: number, keep: number): Promise<void> {
    const old = await this.redis.zrangebyscore(managerKeys.jobs, '-inf', `(${before}`);
    const surplus = await this.redis.zrevrange(managerKeys.jobs, keep, -1);
    const doomed = [...new Set([...old, ...surplus])];
    if (doomed.length === 0) return;
    await this.redis.del(...doomed.map(jobKey));
    await this.redis.zrem(managerKeys.jobs, ...doomed);
  }
}

/**
 * A job the job service keeps in memory (job-service.ts), with what changed since its last
 * event and its last save: events go out at most 4 times a second per job, with only the
 * boards that changed; saves write only the changed boards, and a failed save is tried
 * again with the next one.
 */
import type { Logger } from '../log.js';
import type { JobStore } from '../redis/job-store.js';
import { summarizeJob, type JobEvent, type JobView } from './job-model.js';

const EVENT_INTERVAL_MS = 250;

export interface LiveJob {
  view: JobView;
  /** Targets changed since the last event / the last save. */
  unsent: Set<number>;
  unsaved: Set<number>;
  summaryUnsaved: boolean;
  eventTimer: NodeJS.Timeout | null;
}

/** A job to keep: nothing of it sent yet, all of it unsaved. */
export function liveJob(view: JobView): LiveJob {
  const job: LiveJob = { view, unsent: new Set(), unsaved: new Set(), summaryUnsaved: true, eventTimer: null };
  view.targets.forEach((_, index) => job.unsaved.add(index));
  return job;
}

/** Schedules an event for the job (at most every 250 ms; at once when it finishes). */
export function scheduleJobEvent(job: LiveJob, now: boolean, emit: (event: JobEvent) => void): void {
  if (now || job.view.state === 'done') {
    if (job.eventTimer) clearTimeout(job.eventTimer);
    job.eventTimer = null;
    emitJob(job, emit);
    return;
  }
  if (job.eventTimer) return;
  job.eventTimer = setTimeout(() => {
    job.eventTimer = null;
    emitJob(job, emit);
  }, EVENT_INTERVAL_MS);
}

function emitJob(job: LiveJob, emit: (event: JobEvent) => void): void {
  const targets = [...job.unsent].map((index) => ({ ...job.view.targets[index]!, index }));
  job.unsent.clear();
  emit({ job: summarizeJob(job.view), targets });
}

/** Saves what changed of each job since its last save. */
export async function saveJobs(jobs: Iterable<LiveJob>, store: JobStore, log: Logger): Promise<void> {
  for (const job of jobs) {
    if (!job.summaryUnsaved && job.unsaved.size === 0) continue;
    const targets = new Map([...job.unsaved].map((index) => [index, JSON.stringify(job.view.targets[index])]));
    const { targets: _all, ...summary } = job.view;
    job.unsaved.clear();
    job.summaryUnsaved = false;
    try {
      await store.save(job.view.id, job.view.createdAt, JSON.stringify(summary), targets);
    } catch (error) {
      // Try again with the next save.
      for (const index of targets.keys()) job.unsaved.add(index);
      job.summaryUnsaved = true;
      log('warn', `could not save job ${job.view.id}: ${(error as Error).message}`);
    }
  }
}

/** Keeps memory bounded like the store: the newest `max` jobs, none created before `cutoff`. */
export function trimJobs(jobs: Map<string, LiveJob>, cutoff: number, max: number): void {
  const byAge = [...jobs.values()].sort((a, b) => b.view.createdAt - a.view.createdAt);
  byAge.forEach((job, rank) => {
    if (job.view.state === 'done' && (rank >= max || job.view.createdAt < cutoff)) jobs.delete(job.view.id);
  });
}

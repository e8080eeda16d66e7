/**
 * Jobs kept by the service (bulk actions, flashing): the recent list, and the full detail
 * of jobs a view has opened, kept current from job events (which carry only the boards
 * that changed).
 */
import type { ApiEvent, JobSummary, JobView } from '../../../electron/manager/api/contract.js';
import { applyJobEvent, upsertSummary } from '../lib/job-events.js';
import { api } from './api.js';
import { notifications } from './notifications.svelte.js';

class JobsStore {
  list = $state.raw<JobSummary[]>([]);
  /** Jobs opened in a view: id → full view. */
  details = $state.raw(new Map<string, JobView>());
  /** Jobs being loaded: an event that arrives meanwhile means the loaded copy may be old. */
  private readonly loading = new Map<string, { changed: boolean }>();

  handle(event: ApiEvent): void {
    if (event.type !== 'job') return;
    const load = this.loading.get(event.job.id);
    if (load) load.changed = true;
    const before = this.list.find((job) => job.id === event.job.id);
    this.list = upsertSummary(this.list, event.job);
    const detail = this.details.get(event.job.id);
    if (detail) {
      const next = new Map(this.details);
      next.set(event.job.id, applyJobEvent(detail, event));
      this.details = next;
    }
    if (before && before.state !== 'done' && event.job.state === 'done') this.announce(event.job);
  }

  async sync(): Promise<void> {
    this.list = await api.call('jobs.list', {});
    for (const id of this.details.keys()) await this.open(id).catch(() => undefined);
  }

  /** Loads a job's detail (and keeps it current). */
  async open(id: string): Promise<JobView> {
    let view: JobView;
    // Events only carry what changed: one that arrives while the job loads would be lost
    // (and the copy stale), so load again until a load went by without one.
    for (let attempt = 0; ; attempt++) {
      const load = { changed: false };
      this.loading.set(id, load);
      try {
        view = await api.call('jobs.get', { id });
      } finally {
        if (this.loading.get(id) === load) this.loading.delete(id);
      }
      if (!load.changed || attempt >= 5) break;
    }
    const next = new Map(this.details);
    next.set(id, view);
    this.details = next;
    return view;
  }

  close(id: string): void {
    if (!this.details.has(id)) return;
    const next = new Map(this.details);
    next.delete(id);
    this.details = next;
  }

  private announce(job: JobSummary): void {
    const failed = job.counts.failed;
    const kind = failed > 0 ? 'warning' : 'success';
    const text =
      job.kind === 'flash' || job.kind === 'provision'
        ? `${job.title}: ${failed > 0 ? 'failed' : 'done'}`
        : `${job.title}: ${job.counts.ok} ok${failed ? `, ${failed} failed` : ''}`;
    notifications.push(kind, text, `#/jobs/${job.id}`);
  }
}

export const jobs = new JobsStore();

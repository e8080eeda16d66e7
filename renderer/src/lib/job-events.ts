/** Job events merged into the page's job list and open job views (pure functions). */
import type { ApiEvent, JobSummary, JobView } from '../../../electron/manager/api/contract.js';

export type JobEventOf = Extract<ApiEvent, { type: 'job' }>;

/** Merges a job event into a full job view (returns a new object). */
export function applyJobEvent(view: JobView, event: JobEventOf): JobView {
  const targets = [...view.targets];
  for (const { index, ...target } of event.targets) targets[index] = target;
  return { ...event.job, targets };
}

export function upsertSummary(list: readonly JobSummary[], job: JobSummary): JobSummary[] {
  const next = list.filter((item) => item.id !== job.id);
  next.push(job);
  return next.sort((a, b) => b.createdAt - a.createdAt);
}

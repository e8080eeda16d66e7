/** Following a job the service runs (board-reboot, board-install, board-uninstall) until its boards are done. */
import type { ApiClient } from '../manager/api/client.js';
import type { JobView } from '../manager/api/contract.js';
import { EXIT, numberOption, type VerbContext } from './cli-framework.js';

/** `--expire SECONDS` (default an hour, at most a week) in ms: how long a command waits for an offline board. */
export function expireOption(values: VerbContext['values']): number {
  return Math.round(numberOption(values, 'expire', 3600, 1, 7 * 24 * 3600) * 1000);
}

const finished = (status: string) => status === 'ok' || status === 'failed';

/**
 * Polls job `id` until every board is done, or (without `waitOffline`) only boards waiting
 * for their board to come back are left; `onPoll` sees every state read.
 */
export async function pollJob(
  api: ApiClient,
  id: string,
  options: { waitOffline: boolean; pollMs: number; onPoll?: (job: JobView) => void },
): Promise<JobView> {
  for (;;) {
    const job = await api.call('jobs.get', { id });
    options.onPoll?.(job);
    const open = job.targets.filter((target) => !finished(target.status));
    if (open.length === 0 || (!options.waitOffline && open.every((target) => target.status === 'waiting'))) return job;
    await new Promise((resolve) => setTimeout(resolve, options.pollMs));
  }
}

/** The exit code of a followed job: failed > queued (a board still to do) > ok. */
export function jobExitCode(job: JobView): number {
  if (job.targets.some((target) => target.status === 'failed')) return EXIT.failed;
  return job.targets.some((target) => !finished(target.status)) ? EXIT.queued : EXIT.ok;
}

/**
 * The Install panel's logic (board page and fleet bulk action), as pure functions: what the
 * user typed turned into a checked `jobs.start` request, the result line of a board, and
 * what its progress bar shows. The service checks everything again; these checks only
 * catch in the page what a user can fix before sending (with the same limits).
 */
import type { JobProgress, JobTarget, TargetStatus } from '../../../electron/manager/api/contract.js';
import { checkBoardFolder } from './file-drop.js';
import { formatBytes, percent, plural } from './format.js';

/** The service's limits for an install job (api/contract.ts). */
export const MAX_PACKAGES = 20;
export const MAX_SPEC_LENGTH = 500;
export const MAX_INDEX_URL_LENGTH = 2000;
export const DEFAULT_TARGET = '/lib';

/** What the Install form holds, as typed. */
export interface InstallForm {
  /** One or more package specs, one per line or separated by commas. */
  packages: string;
  /** Empty: the service's default index. */
  index: string;
  /** Empty: /lib. */
  target: string;
  /** Upload the .py sources instead of compiling them to .mpy. */
  source: boolean;
}

export function emptyInstallForm(): InstallForm {
  return { packages: '', index: '', target: DEFAULT_TARGET, source: false };
}

/** The `install` job request without the boards (the form does not know them). */
export interface InstallRequest {
  kind: 'install';
  boards: string;
  packages: string[];
  index?: string;
  target?: string;
  source?: boolean;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; field: 'packages' | 'index' | 'target'; error: string };

/**
 * Splits the packages field into specs: lines and commas separate them (a spec never holds
 * either: pins are `name@1.0` or `name==1.0`), blanks are dropped, repeats kept once.
 */
export function parsePackageList(text: string): Checked<string[]> {
  const specs: string[] = [];
  for (const piece of text.split(/[\n\r,]+/)) {
    const spec = piece.trim();
    if (spec === '' || specs.includes(spec)) continue;
    const problem = specProblem(spec);
    if (problem) return { ok: false, field: 'packages', error: problem };
    specs.push(spec);
  }
  if (specs.length === 0) return { ok: false, field: 'packages', error: 'Name at least one package, e.g. logging, logging@0.6 or github:org/repo.' };
  if (specs.length > MAX_PACKAGES)
    return { ok: false, field: 'packages', error: `At most ${MAX_PACKAGES} packages at once (you gave ${specs.length}): install the rest in a second go.` };
  return { ok: true, value: specs };
}

function specProblem(spec: string): string | null {
  if (spec.length > MAX_SPEC_LENGTH) return `“${spec.slice(0, 40)}…” is longer than ${MAX_SPEC_LENGTH} characters.`;
  if (/\s/.test(spec)) {
    const hint = /^[A-Za-z0-9._-]+\s+[0-9]/.test(spec) ? ` For a version write ${spec.split(/\s+/).slice(0, 2).join('@')}.` : '';
    return `“${spec}” has a space in it: put each package on its own line or separate them with commas.${hint}`;
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    if (!/^https?:\/\//i.test(spec)) return `“${spec}”: a package URL starts with http:// or https://.`;
    const url = parseUrl(spec);
    if (!url || url.hostname === '') return `“${spec}” is not a valid URL.`;
    return null;
  }
  // A path is read on the computer that runs the service, which has no idea where the page's
  // "current folder" is: it must be absolute.
  if (/^(\.{1,2}[\\/]|~[\\/])/.test(spec) || (/[\\/]/.test(spec) && !/^([\\/]|[A-Za-z]:[\\/]|github:|gitlab:)/.test(spec)))
    return `“${spec}” looks like a relative path: give the full path of the folder or file on this computer (e.g. /home/me/mypkg).`;
  return null;
}

function parseUrl(text: string): URL | null {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

/** The index URL field: empty means the service's default; otherwise an http(s) URL. */
export function checkIndexUrl(text: string): Checked<string | undefined> {
  const trimmed = text.trim();
  if (trimmed === '') return { ok: true, value: undefined };
  if (trimmed.length > MAX_INDEX_URL_LENGTH) return { ok: false, field: 'index', error: `The index URL is longer than ${MAX_INDEX_URL_LENGTH} characters.` };
  const url = parseUrl(trimmed);
  if (!url || !/^https?:$/.test(url.protocol) || url.hostname === '')
    return {
      ok: false,
      field: 'index',
      error: 'The index URL must be an http:// or https:// address, e.g. https://micropython.org/pi/v2 (or leave it empty).',
    };
  return { ok: true, value: trimmed };
}

/** Checks the whole form; the request carries only what differs from the defaults. */
export function installRequest(form: InstallForm, boards: string): Checked<InstallRequest> {
  const packages = parsePackageList(form.packages);
  if (!packages.ok) return packages;
  const index = checkIndexUrl(form.index);
  if (!index.ok) return index;
  const folder = checkBoardFolder(form.target.trim() === '' ? DEFAULT_TARGET : form.target);
  if (!folder.ok) return { ok: false, field: 'target', error: folder.error };
  if (folder.folder === '/') return { ok: false, field: 'target', error: 'Install into a folder (for example /lib), not the root of the board.' };
  const request: InstallRequest = { kind: 'install', boards, packages: packages.value };
  if (index.value) request.index = index.value;
  if (folder.folder !== DEFAULT_TARGET) request.target = folder.folder;
  if (form.source) request.source = true;
  return { ok: true, value: request };
}

/** The numbers an install or uninstall reports per board (JobTarget.install). */
export interface InstallNumbers {
  uploadedFiles: number;
  skippedFiles: number;
  removedFiles: number;
  bytes: number;
}

/** "3 uploaded, 2 skipped, 12.5 KB sent" (", 1 old removed" when an older version's files went); uninstall: "4 files removed". */
export function installResultLine(kind: 'install' | 'uninstall', numbers: InstallNumbers): string {
  if (kind === 'uninstall') return `${plural(numbers.removedFiles, 'file')} removed`;
  const parts = [`${numbers.uploadedFiles} uploaded`, `${numbers.skippedFiles} skipped`, `${formatBytes(numbers.bytes)} sent`];
  if (numbers.removedFiles > 0) parts.push(`${numbers.removedFiles} old removed`);
  return parts.join(', ');
}

/** The job's `progress.phase` once the host's work is done and the boards are under way. */
export const BOARDS_PHASE = 'boards';

/** What one board's progress bar shows. */
export interface InstallBar {
  /** 0–100, or null for "under way, amount unknown" (an animated bar). */
  value: number | null;
  text: string;
  tone: 'accent' | 'ok' | 'danger';
  status: TargetStatus | 'preparing';
}

type TargetLike = Pick<JobTarget, 'status' | 'message' | 'done' | 'total'> & { install?: InstallNumbers | null };

/**
 * A board's bar: the host's phase (resolving, downloading, compiling: `job.progress`) while
 * the host prepares, then files done of planned, then the result line or the error.
 */
export function installBar(kind: 'install' | 'uninstall', progress: JobProgress | null, target: TargetLike | undefined): InstallBar {
  // The service reports the host's phases (resolve, download, compile), then 'boards' once every board's run started.
  const onHost = progress !== null && progress.phase !== BOARDS_PHASE;
  const final = target?.status === 'ok' || target?.status === 'failed';
  if (onHost && !final && (!target || target.total === 0))
    return { value: percent(progress.done, progress.total), text: progress.message, tone: 'accent', status: 'preparing' };
  if (!target) return { value: null, text: kind === 'install' ? 'Preparing the packages on this computer…' : 'Starting…', tone: 'accent', status: 'preparing' };
  switch (target.status) {
    case 'ok':
      // The service's line is the same one, plus any warning (e.g. an unreadable record it replaced).
      return { value: 100, text: target.message ?? (target.install ? installResultLine(kind, target.install) : 'done'), tone: 'ok', status: 'ok' };
    case 'failed':
      return { value: 100, text: target.message ?? 'failed', tone: 'danger', status: 'failed' };
    case 'waiting':
      return {
        value: percent(target.done, target.total) ?? 0,
        text: 'Waiting for the board to come online: it continues when the board is back.',
        tone: 'accent',
        status: 'waiting',
      };
    case 'queued':
      return { value: percent(target.done, target.total) ?? 0, text: 'Queued', tone: 'accent', status: 'queued' };
    case 'running':
      return {
        value: percent(target.done, target.total),
        text: target.total > 0 ? `${target.done} of ${plural(target.total, 'file')}` : 'Reading what is on the board…',
        tone: 'accent',
        status: 'running',
      };
  }
}

/**
 * `jobs.start` for an install answers once every file is resolved and downloaded; the job it
 * makes may be announced (with its host phase in `progress`) before that. The newest job of
 * `kind` created since the page sent the request, if there is one.
 */
export function preparingJob<T extends { kind: string; createdAt: number; state: string }>(list: readonly T[], kind: string, since: number): T | undefined {
  return list.filter((job) => job.kind === kind && job.state === 'running' && job.createdAt >= since).sort((a, b) => b.createdAt - a.createdAt)[0];
}

/**
 * Jobs: a bulk action (run code, upload files, reboot, tag, remove, flash) kept by the
 * service with a status per board, so it outlives the window that started it. This file
 * holds the shapes and the pure rules that turn command outcomes into per-board status.
 */
import type { CommandStatus } from './command-dispatcher.js';
import type { UsbJobRequest } from './usb-job.js';
import type { PackageJobRequest } from './package-install-job.js';

/** What a client asks for (`jobs.start`, validated by the API's contract). */
export type JobRequest =
  | { kind: 'exec'; boards: string; code: string; timeoutMs?: number; expireMs?: number }
  | { kind: 'upload'; boards: string; files: Array<{ file: string; path: string }>; expireMs?: number }
  | { kind: 'reboot'; boards: string; expireMs?: number }
  | { kind: 'tag'; boards: string; add: string[]; remove: string[] }
  | { kind: 'remove'; boards: string }
  | UsbJobRequest
  | PackageJobRequest;

export interface JobEvent {
  job: JobSummary;
  /** Boards whose status changed since the last event (all of them in the first event). */
  targets: Array<JobTarget & { index: number }>;
}

export type JobKind = 'exec' | 'upload' | 'reboot' | 'tag' | 'remove' | 'flash' | 'provision' | 'install' | 'uninstall';
/** Per board: queued (board online, not started), waiting (board offline), running, ok, failed. */
export type TargetStatus = 'queued' | 'waiting' | 'running' | 'ok' | 'failed';
export type JobState = 'running' | 'done';

export const TARGET_STATUSES: readonly TargetStatus[] = ['queued', 'waiting', 'running', 'ok', 'failed'];
export const FINAL_TARGET_STATUSES: ReadonlySet<TargetStatus> = new Set(['ok', 'failed']);

/** Output of `exec` kept per board in a job (the full output stays with the command). */
export const JOB_OUTPUT_BYTES = 1_024;
export const JOB_PHASES_KEPT = 40;

export interface JobTarget {
  /** Board name (for flash jobs: the name being provisioned, or the port). */
  board: string;
  boardId: string | null;
  status: TargetStatus;
  /** Error, or a short result ("3 files, 12.5 KB"). */
  message: string | null;
  /** Commands (files) finished ok, of `total`. */
  done: number;
  total: number;
  cids: string[];
  /** exec: the start of what the board printed. */
  output: string | null;
  /** install/uninstall: what was done to the board's files (absent for other kinds). */
  install?: InstallNumbers | null;
}

/** A board's package install or uninstall in numbers; bytes are file bytes sent (the record not counted). */
export interface InstallNumbers {
  uploadedFiles: number;
  skippedFiles: number;
  removedFiles: number;
  bytes: number;
}

export interface JobProgress {
  phase: string;
  message: string;
  done?: number;
  total?: number;
}

export interface JobSummary {
  id: string;
  kind: JobKind;
  title: string;
  createdAt: number;
  finishedAt: number | null;
  state: JobState;
  counts: Record<TargetStatus, number>;
  total: number;
  /** Flash and provision jobs: the step under way. */
  progress: JobProgress | null;
  /** Flash and provision jobs: each phase they went through, in order (at most JOB_PHASES_KEPT). */
  phases: Array<{ phase: string; message: string; at: number }>;
  /** Flash and provision jobs: the serial port. */
  port: string | null;
}

export interface JobView extends JobSummary {
  targets: JobTarget[];
}

export function emptyCounts(): Record<TargetStatus, number> {
  return { queued: 0, waiting: 0, running: 0, ok: 0, failed: 0 };
}

export function countTargets(targets: readonly JobTarget[]): Record<TargetStatus, number> {
  const counts = emptyCounts();
  for (const target of targets) counts[target.status]++;
  return counts;
}

export function summarizeJob(job: JobView): JobSummary {
  const { targets: _targets, ...summary } = job;
  return { ...summary, counts: countTargets(job.targets), total: job.targets.length };
}

const FAILED_COMMAND: ReadonlySet<CommandStatus> = new Set(['error', 'timeout', 'expired', 'cancelled', 'lost']);

/**
 * A board's status from the statuses of its commands in the job (one per file for an
 * upload): running as soon as one runs; failed once all ended and any failed; ok when all
 * ended ok; before that queued, or waiting while the board is offline.
 */
export function targetStatusOf(statuses: readonly CommandStatus[], boardOnline: boolean): TargetStatus {
  if (statuses.length === 0) return 'failed';
  let finished = 0;
  let failed = 0;
  let running = false;
  for (const status of statuses) {
    if (status === 'ok') finished++;
    else if (FAILED_COMMAND.has(status)) {
      finished++;
      failed++;
    } else if (status === 'running') running = true;
  }
  if (finished === statuses.length) return failed > 0 ? 'failed' : 'ok';
  if (running || finished > 0) return 'running';
  return pendingStatus(boardOnline);
}

/** A job as the store kept it (its summary, and each board's target by index); throws on an unreadable record. */
export function parseStoredJob(summary: string, targets: Iterable<[number, string]>): JobView {
  const parsed = JSON.parse(summary) as JobView;
  const view: JobView = { ...parsed, phases: parsed.phases ?? [], targets: [] };
  for (const [index, json] of targets) view.targets[index] = JSON.parse(json) as JobTarget;
  view.targets = view.targets.filter(Boolean);
  return view;
}

/** A board's status before any of its commands started: queued, or waiting while it is offline. */
export function pendingStatus(boardOnline: boolean): TargetStatus {
  return boardOnline ? 'queued' : 'waiting';
}

/** Keeps the first `limit` bytes of text (UTF-8), marking the cut. */
export function clipOutput(text: string, limit = JOB_OUTPUT_BYTES): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= limit) return text;
  return (
    bytes
      .subarray(0, limit)
      .toString('utf8')
      .replace(/\uFFFD$/, '') + '…'
  );
}

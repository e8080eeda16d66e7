/**
 * Uploads from the page: each file goes to the service once (raw bytes, with progress),
 * then one job sends them to every chosen board and reports per board. What the page
 * shows while the files travel to the service lives here; the rest is the job.
 */
import type { JobSummary } from '../../../electron/manager/api/contract.js';
import { boardPathFor, type PickedFile } from '../lib/file-drop.js';
import { errorMessage } from '../lib/api.js';
import { api } from './api.js';
import { jobs } from './jobs.svelte.js';
import { notifications } from './notifications.svelte.js';

/** The most a board transfer takes (the service refuses larger files). */
export const MAX_UPLOAD_BYTES = 16 * 1024 * 1024;

export interface UploadState {
  id: number;
  title: string;
  /** Bytes sent to the service so far, of `total`. */
  sent: number;
  total: number;
  phase: 'sending' | 'queued' | 'failed';
  error: string | null;
  job: JobSummary | null;
}

class UploadsStore {
  active = $state<UploadState[]>([]);
  private next = 1;

  /** Uploads `files` into `folder` on the boards `boardsPattern` names; returns the job. */
  async start(boardsPattern: string, boardCount: number, files: PickedFile[], folder: string): Promise<JobSummary | null> {
    const tooBig = files.find((picked) => picked.file.size > MAX_UPLOAD_BYTES);
    if (tooBig) {
      notifications.push('error', `${tooBig.relativePath} is larger than 16 MB, the most a board transfer takes.`);
      return null;
    }
    if (files.length === 0) return null;
    const total = files.reduce((sum, picked) => sum + picked.file.size, 0);
    const state: UploadState = {
      id: this.next++,
      sent: 0,
      total,
      phase: 'sending',
      error: null,
      job: null,
      title: `${files.length === 1 ? files[0]!.relativePath : `${files.length} files`} → ${boardCount === 1 ? boardsPattern : `${boardCount} boards`}`,
    };
    this.active = [...this.active, state];
    const update = (patch: Partial<UploadState>) => {
      this.active = this.active.map((item) => (item.id === state.id ? { ...item, ...patch } : item));
    };
    try {
      const staged: Array<{ file: string; path: string }> = [];
      let before = 0;
      for (const picked of files) {
        const result = await api.upload(picked.file, (sent) => update({ sent: before + sent }));
        before += picked.file.size;
        staged.push({ file: result.id, path: boardPathFor(folder, picked.relativePath) });
      }
      const job = await api.call('jobs.start', { kind: 'upload', boards: boardsPattern, files: staged });
      await jobs.open(job.id).catch(() => undefined);
      update({ phase: 'queued', sent: total, job });
      setTimeout(() => this.dismiss(state.id), 4000);
      return job;
    } catch (error) {
      update({ phase: 'failed', error: errorMessage(error) });
      notifications.push('error', `Upload failed: ${errorMessage(error)}`);
      return null;
    }
  }

  dismiss(id: number): void {
    this.active = this.active.filter((item) => item.id !== id);
  }
}

export const uploads = new UploadsStore();

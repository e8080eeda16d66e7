/**
 * Files the UI has handed to the service for an upload job: the browser sends each file
 * once (raw bytes, with progress), gets an id back, and the job then sends it to any
 * number of boards. Kept in memory, bounded in size and time: a staged file nobody uses
 * is forgotten after an hour, and the oldest go first when the total is exceeded.
 */
import { randomBytes } from 'node:crypto';
import { sha256 } from './upload-blob.js';
import { MAX_FILE_BYTES } from './board-path.js';
import { ManagerError, type ErrorKind } from '../errors.js';

export interface StagedFile {
  id: string;
  size: number;
  sha256: string;
}

export class StagedFileError extends ManagerError {
  override name = 'StagedFileError';
  readonly kind: ErrorKind = 'bad_request';
}

const STAGED_TTL_MS = 3_600_000;
const STAGED_TOTAL_BYTES = 512 * 1024 * 1024;
export const STAGED_ID_PATTERN = /^s[A-Za-z0-9_-]{16}$/;

export class StagedFiles {
  private readonly files = new Map<string, StagedFile & { data: Buffer; stagedAt: number }>();
  private totalBytes = 0;

  constructor(private readonly now: () => number = Date.now) {}

  add(data: Buffer): StagedFile {
    if (data.length > MAX_FILE_BYTES) throw new StagedFileError(`the file is larger than ${MAX_FILE_BYTES / 1024 / 1024} MiB, the most a board transfer takes`);
    this.prune(data.length);
    const id = `s${randomBytes(12).toString('base64url')}`;
    const entry = { id, size: data.length, sha256: sha256(data), data, stagedAt: this.now() };
    this.files.set(id, entry);
    this.totalBytes += data.length;
    return { id, size: entry.size, sha256: entry.sha256 };
  }

  /** The bytes of a staged file; a clear error when it is unknown or was forgotten. */
  get(id: string): Buffer {
    const entry = this.files.get(id);
    if (!entry || this.now() - entry.stagedAt > STAGED_TTL_MS) {
      throw new StagedFileError('the file to upload is no longer held by the service (staged files are kept for an hour): add it again');
    }
    return entry.data;
  }

  get size(): number {
    return this.totalBytes;
  }

  private prune(incoming: number): void {
    const now = this.now();
    for (const [id, entry] of this.files) {
      const expired = now - entry.stagedAt > STAGED_TTL_MS;
      if (!expired && this.totalBytes + incoming <= STAGED_TOTAL_BYTES) break;
      this.files.delete(id);
      this.totalBytes -= entry.size;
    }
  }
}

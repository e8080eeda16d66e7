/**
 * Files the UI has handed to the service for an upload job: the browser sends each file
 * once (raw bytes, with progress), gets an id back, and the job then sends it to any
 * number of boards. The bytes go straight to a file in the service's own folder as they
 * arrive (hashed on the way), so a 16 MiB upload costs the service a stream's buffers, not
 * 16 MiB several times over. Bounded in size and time: a staged file nobody uses is
 * forgotten after an hour, the oldest go first when the total is exceeded, and the folder
 * is emptied when the service stops or starts (ids live only in memory).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
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
/** Files being received carry this ending until complete, so a half file is never read. */
const PARTIAL_SUFFIX = '.part';

export class StagedFiles {
  private readonly files = new Map<string, StagedFile & { stagedAt: number }>();
  private totalBytes = 0;
  /** Made (0700) and emptied of a previous run's files once, on first use. */
  private prepared: Promise<void> | undefined;

  /** `folder` belongs to the service alone: whatever is in it may be deleted. */
  constructor(
    private readonly folder: string,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Stores the bytes of `chunks` as a new staged file. More than MAX_FILE_BYTES fails (the
   * partial file removed); so does an error of the source, which is passed on.
   */
  async receive(chunks: AsyncIterable<Buffer>): Promise<StagedFile> {
    await this.prepare();
    const id = `s${randomBytes(12).toString('base64url')}`;
    const partial = this.fileOf(id) + PARTIAL_SUFFIX;
    const hash = createHash('sha256');
    let size = 0;
    async function* counted(): AsyncGenerator<Buffer> {
      for await (const chunk of chunks) {
        size += chunk.length;
        if (size > MAX_FILE_BYTES) throw new StagedFileError(`the file is larger than ${MAX_FILE_BYTES / 1024 / 1024} MiB, the most a board transfer takes`);
        hash.update(chunk);
        yield chunk;
      }
    }
    try {
      await pipeline(counted(), createWriteStream(partial, { flags: 'wx', mode: 0o600 }));
      // Complete: only now does it get the name `read` looks for.
      await rename(partial, this.fileOf(id));
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
    await this.prune(size);
    const entry = { id, size, sha256: hash.digest('hex'), stagedAt: this.now() };
    this.files.set(id, entry);
    this.totalBytes += size;
    return { id, size, sha256: entry.sha256 };
  }

  /** Stages bytes already in memory (an upload a standby manager sent along). */
  add(data: Buffer): Promise<StagedFile> {
    return this.receive(
      (async function* () {
        yield data;
      })(),
    );
  }

  /** The bytes of a staged file; a clear error when it is unknown or was forgotten. */
  async read(id: string): Promise<Buffer> {
    const entry = this.files.get(id);
    if (!entry || this.now() - entry.stagedAt > STAGED_TTL_MS) {
      throw new StagedFileError('the file to upload is no longer held by the service (staged files are kept for an hour): add it again');
    }
    return readFile(this.fileOf(id));
  }

  get size(): number {
    return this.totalBytes;
  }

  /** Forgets every staged file and deletes their bytes (the service is stopping). */
  async clear(): Promise<void> {
    this.files.clear();
    this.totalBytes = 0;
    if (this.prepared) await this.removeContents();
  }

  private fileOf(id: string): string {
    // Ids are made here (base64url), never taken from a request, so they are plain names.
    return path.join(this.folder, id);
  }

  private prepare(): Promise<void> {
    this.prepared ??= (async () => {
      await mkdir(this.folder, { recursive: true, mode: 0o700 });
      // mkdir's mode is filtered by the umask and ignored for a folder that already exists.
      await chmod(this.folder, 0o700);
      await this.removeContents();
    })();
    return this.prepared;
  }

  private async removeContents(): Promise<void> {
    for (const name of await readdir(this.folder).catch(() => [] as string[])) {
      const id = name.endsWith(PARTIAL_SUFFIX) ? name.slice(0, -PARTIAL_SUFFIX.length) : name;
      if (STAGED_ID_PATTERN.test(id)) await rm(path.join(this.folder, name), { force: true });
    }
  }

  private async prune(incoming: number): Promise<void> {
    const now = this.now();
    for (const [id, entry] of this.files) {
      const expired = now - entry.stagedAt > STAGED_TTL_MS;
      if (!expired && this.totalBytes + incoming <= STAGED_TOTAL_BYTES) break;
      this.files.delete(id);
      this.totalBytes -= entry.size;
      await rm(this.fileOf(id), { force: true });
    }
  }
}

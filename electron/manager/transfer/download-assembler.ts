/**
 * Host side of `get` (PROTOCOL.md §7.3): collects the `dat` chunks a board sends and hands
 * out the file only when its size and SHA-256 match what the board reported.
 */
import { sha256 } from './upload-blob.js';
import { MAX_FILE_BYTES } from './board-path.js';

export class DownloadError extends Error {
  override name = 'DownloadError';
}

export class DownloadAssembler {
  private readonly chunks: Array<{ offset: number; data: Buffer }> = [];
  private bytes = 0;

  add(offset: number, data: Buffer): void {
    this.bytes += data.length;
    if (this.bytes > MAX_FILE_BYTES) throw new DownloadError(`file is larger than ${MAX_FILE_BYTES} bytes`);
    this.chunks.push({ offset, data });
  }

  /** The whole file, checked against the board's size and SHA-256. */
  finish(result: unknown): Buffer {
    const reported = result as { size?: unknown; sha256?: unknown } | undefined;
    if (typeof reported?.size !== 'number' || typeof reported.sha256 !== 'string') {
      throw new DownloadError('board did not report the size and sha256 of the file');
    }
    if (reported.size > MAX_FILE_BYTES) throw new DownloadError(`file is larger than ${MAX_FILE_BYTES} bytes`);
    const file = Buffer.alloc(reported.size);
    let covered = 0;
    for (const { offset, data } of this.chunks.sort((a, b) => a.offset - b.offset)) {
      if (offset !== covered || offset + data.length > file.length) {
        throw new DownloadError(`file data is incomplete or overlapping at byte ${offset} (expected ${covered})`);
      }
      data.copy(file, offset);
      covered += data.length;
    }
    if (covered !== file.length) throw new DownloadError(`received ${covered} of ${file.length} bytes`);
    const digest = sha256(file);
    if (digest !== reported.sha256.toLowerCase()) {
      throw new DownloadError(`sha256 mismatch: board reported ${reported.sha256}, received data has ${digest}`);
    }
    return file;
  }
}

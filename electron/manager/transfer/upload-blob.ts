/**
 * Host side of `put` (PROTOCOL.md §7.2): the file goes into Redis as blob parts that the
 * board pulls at its own pace with GETRANGE, so a small board never holds more than one
 * chunk, and an offline board finds the file waiting when it returns.
 */
import { createHash } from 'node:crypto';
import type { FleetStore } from '../redis/fleet-store.js';
import { validateBoardPath } from './board-path.js';

/** Part size of upload blobs; a power of two so board chunks never straddle two parts. */
export const BLOB_PART_SIZE = 256 * 1024;

export interface PreparedUpload {
  fields: Array<string | Buffer>;
  size: number;
  sha256: string;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function prepareUpload(store: FleetStore, boardId: string, cid: string, path: string, data: Buffer, ttlS: number): Promise<PreparedUpload> {
  const destination = validateBoardPath(path, 'destination');
  const digest = sha256(data);
  const prefix = await store.writeBlob(boardId, cid, data, BLOB_PART_SIZE, ttlS);
  return {
    size: data.length,
    sha256: digest,
    fields: ['o', 'put', 'p', destination, 'z', String(data.length), 'h', digest, 'k', prefix, 'ps', String(BLOB_PART_SIZE)],
  };
}

export function discardUpload(store: FleetStore, boardId: string, cid: string, size: number): Promise<void> {
  return store.deleteBlob(boardId, cid, size, BLOB_PART_SIZE);
}

/**
 * Reads a package archive (`.tar.gz`: a PyPI sdist or a local archive) in memory, refusing
 * anything that could write outside the install folder or exhaust the host:
 * - gunzip stops at `maxBytes` (default 16 MiB) via zlib's `maxOutputLength`, so a
 *   decompression bomb is refused before it is allocated;
 * - at most `maxEntries` (default 10,000) tar headers;
 * - entry names with `..` segments, absolute paths, backslashes, drive letters or NUL are
 *   refused, naming the entry;
 * - symlinks, hard links, devices and FIFOs are refused (not skipped): a board file system
 *   has no links, and silently dropping a file the package imports would only surface later
 *   as an ImportError on the board, far from its cause.
 * The tar reader is small and written here (ustar headers, pax `path`/`size` records, GNU
 * long names) so no archive library sees an untrusted archive. Only regular files are
 * returned; directories are implied by their files' paths.
 */
import { gunzipSync } from 'node:zlib';
import { ManagerError, type ErrorKind } from '../errors.js';

export interface ArchiveFile {
  /** Relative POSIX path inside the archive, without `./` or empty segments. */
  path: string;
  data: Buffer;
}

export interface ArchiveLimits {
  /** Largest unpacked tar size accepted (bytes). */
  maxBytes?: number;
  /** Most tar entries (headers) accepted. */
  maxEntries?: number;
}

export const DEFAULT_MAX_ARCHIVE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_ARCHIVE_ENTRIES = 10_000;

/** The archive cannot be installed as it is (corrupt, too large, unsafe entry). */
export class PackageArchiveError extends ManagerError {
  override name = 'PackageArchiveError';
  readonly kind: ErrorKind = 'bad_request';
}

/** An entry would land outside the install folder, or is a link/device. */
export class UnsafeArchiveEntryError extends PackageArchiveError {
  override name = 'UnsafeArchiveEntryError';
  constructor(
    readonly entry: string,
    reason: string,
  ) {
    super(`archive entry ${JSON.stringify(entry)} refused: ${reason}`);
  }
}

const BLOCK = 512;

/** Checks an entry name and returns it normalised (no `./`, no empty segments). */
export function safeEntryPath(name: string): string {
  if (name.includes('\0')) throw new UnsafeArchiveEntryError(name, 'the name contains a NUL character');
  if (name.includes('\\')) throw new UnsafeArchiveEntryError(name, 'backslashes are not allowed in entry names');
  if (name.startsWith('/')) throw new UnsafeArchiveEntryError(name, 'absolute paths are not allowed');
  if (/^[A-Za-z]:/.test(name)) throw new UnsafeArchiveEntryError(name, 'drive letters are not allowed');
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new UnsafeArchiveEntryError(name, '".." segments are not allowed');
  if (segments.length === 0) throw new UnsafeArchiveEntryError(name, 'the name is empty');
  return segments.join('/');
}

/** Gunzips and reads a `.tar.gz`, returning its regular files. */
export function readTarGz(archive: Buffer, limits: ArchiveLimits = {}): ArchiveFile[] {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_ARCHIVE_BYTES;
  let tar: Buffer;
  try {
    tar = gunzipSync(archive, { maxOutputLength: maxBytes });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new PackageArchiveError(`archive unpacks to more than ${maxBytes} bytes: refused (a package is far smaller; is it a decompression bomb?)`);
    }
    throw new PackageArchiveError(`archive is not a valid .tar.gz: ${(err as Error).message}`);
  }
  return readTar(tar, limits);
}

function text(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? length : end).toString('utf8');
}

/** Reads a numeric header field: octal text, or base-256 when the top bit is set (GNU, large sizes). */
function number(block: Buffer, start: number, length: number, what: string): number {
  const field = block.subarray(start, start + length);
  if ((field[0] ?? 0) & 0x80) {
    let value = (field[0] ?? 0) & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] ?? 0);
    return value;
  }
  const raw = text(block, start, length).trim();
  if (raw === '') return 0;
  if (!/^[0-7]+$/.test(raw)) throw new PackageArchiveError(`archive is corrupt: bad ${what} field ${JSON.stringify(raw)} in a tar header`);
  return parseInt(raw, 8);
}

function checksumMatches(block: Buffer): boolean {
  const stored = number(block, 148, 8, 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum === stored;
}

/** Parses pax extended-header records (`LEN key=value\n`), keeping the ones that matter here. */
function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space === -1) break;
    const length = parseInt(data.subarray(offset, space).toString('ascii'), 10);
    if (!Number.isInteger(length) || length <= 0 || offset + length > data.length) throw new PackageArchiveError('archive is corrupt: bad pax header record');
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    offset += length;
  }
  return records;
}

const LINK_OR_DEVICE: Record<string, string> = {
  '1': 'hard links are not installed on a board',
  '2': 'symbolic links are not installed on a board',
  '3': 'character devices are not allowed',
  '4': 'block devices are not allowed',
  '6': 'FIFOs are not allowed',
};

/** Reads an uncompressed tar (ustar, pax, GNU long names). */
export function readTar(tar: Buffer, limits: ArchiveLimits = {}): ArchiveFile[] {
  const maxEntries = limits.maxEntries ?? DEFAULT_MAX_ARCHIVE_ENTRIES;
  const files = new Map<string, Buffer>();
  let offset = 0;
  let entries = 0;
  let pax = new Map<string, string>();
  let longName: string | undefined;
  while (offset + BLOCK <= tar.length) {
    const header = tar.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) break; // end-of-archive marker
    if (++entries > maxEntries) throw new PackageArchiveError(`archive has more than ${maxEntries} entries: refused`);
    if (!checksumMatches(header)) throw new PackageArchiveError(`archive is corrupt: tar header checksum mismatch at byte ${offset}`);
    const type = String.fromCharCode(header[156] ?? 0);
    const paxSize = pax.get('size');
    const size = paxSize !== undefined ? Number(paxSize) : number(header, 124, 12, 'size');
    if (!Number.isSafeInteger(size) || size < 0) throw new PackageArchiveError(`archive is corrupt: bad entry size at byte ${offset}`);
    const dataStart = offset + BLOCK;
    if (dataStart + size > tar.length) throw new PackageArchiveError('archive is truncated: an entry runs past its end');
    const data = tar.subarray(dataStart, dataStart + size);
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'x') {
      pax = paxRecords(data);
      continue;
    }
    if (type === 'g') continue; // global pax header: nothing in it changes where files go
    if (type === 'L') {
      longName = text(data, 0, data.length);
      continue;
    }
    if (type === 'K') continue; // GNU long link name: the link itself is refused below

    const prefix = text(header, 257, 6).startsWith('ustar') ? text(header, 345, 155) : '';
    const headerName = prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100);
    const name = pax.get('path') ?? longName ?? headerName;
    pax = new Map();
    longName = undefined;

    const refusal = LINK_OR_DEVICE[type];
    if (refusal) throw new UnsafeArchiveEntryError(name, refusal);
    if (type === '5') {
      safeEntryPath(name);
      continue;
    }
    if (type !== '0' && type !== '\0' && type !== '7') throw new UnsafeArchiveEntryError(name, `unsupported tar entry type ${JSON.stringify(type)}`);
    // A later entry with the same path replaces the earlier one, as tar extraction does.
    files.set(safeEntryPath(name), Buffer.from(data));
  }
  return [...files].map(([path, data]) => ({ path, data }));
}

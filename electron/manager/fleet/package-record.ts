/**
 * The record of installed packages a board keeps in `/.cm_packages.json` (board-install,
 * issue 12): parsed, changed and written here, as pure functions the install job uses.
 * The record is what lets `board-packages` list and `board-uninstall` remove exactly a
 * package's files, so it is written only after the files it names are on the board.
 *
 *   {"v":1,"packages":{"logging":{"version":"0.6","target":"/lib","source":"index …","at":1764633600000,
 *    "files":{"/lib/logging.mpy":"<sha256 hex of the bytes on the board>"}}}}
 */
import { z } from 'zod';
import { validateBoardPath } from '../transfer/board-path.js';

export const PACKAGE_RECORD_PATH = '/.cm_packages.json';
/** Larger than any real record (a few hundred bytes per package); keeps a board's get small. */
export const MAX_PACKAGE_RECORD_BYTES = 64 * 1024;
export const PACKAGE_RECORD_VERSION = 1;

/** One installed package as the API shows it (packages.list). */
export interface InstalledPackage {
  name: string;
  version: string;
  /** Board folder it was installed into. */
  target: string;
  /** Where it came from, e.g. `index https://micropython.org/pi/v2`, `github:org/repo@main`, `local /home/me/pkg`. */
  source: string;
  /** When it was installed (ms since the epoch, the service's clock). */
  installedAt: number;
  files: Array<{ path: string; sha256: string }>;
}

interface RecordEntry {
  version: string;
  target: string;
  source: string;
  at: number;
  /** Board path → sha256 hex of the bytes written there. */
  files: Record<string, string>;
}

export interface PackageRecord {
  v: 1;
  packages: Record<string, RecordEntry>;
}

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const recordSchema = z.object({
  v: z.literal(PACKAGE_RECORD_VERSION),
  packages: z.record(
    z.string().min(1).max(200),
    z.object({
      version: z.string().max(100),
      target: z.string().min(1).max(255),
      source: z.string().max(1000),
      at: z.number().int().nonnegative(),
      files: z.record(z.string().min(1).max(255), sha256Hex),
    }),
  ),
});

export function emptyPackageRecord(): PackageRecord {
  return { v: 1, packages: {} };
}

/**
 * Reads a record from the bytes of the file (null: there is none). A record that cannot be
 * read (not JSON, another shape, a path that is not a board path) is treated as empty,
 * with a warning for the job's message: the install still works, it only cannot skip or
 * clean up what the broken record named.
 */
export function parsePackageRecord(bytes: Buffer | null): { record: PackageRecord; warning: string | null } {
  if (bytes === null) return { record: emptyPackageRecord(), warning: null };
  const unreadable = (why: string) => ({
    record: emptyPackageRecord(),
    warning: `the board's package record ${PACKAGE_RECORD_PATH} was unreadable (${why}) and was replaced`,
  });
  if (bytes.length > MAX_PACKAGE_RECORD_BYTES) return unreadable(`larger than ${MAX_PACKAGE_RECORD_BYTES / 1024} KiB`);
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    return unreadable('not JSON');
  }
  const parsed = recordSchema.safeParse(json);
  if (!parsed.success) return unreadable('not a package record');
  const record: PackageRecord = { v: 1, packages: {} };
  for (const [name, entry] of Object.entries(parsed.data.packages)) {
    const files: Record<string, string> = {};
    try {
      for (const [path, sha] of Object.entries(entry.files)) files[validateBoardPath(path, 'recorded file')] = sha;
    } catch {
      return unreadable(`package ${name} names a file that is not a board path`);
    }
    record.packages[name] = { ...entry, files };
  }
  return { record, warning: null };
}

/** The record's file bytes; throws when it would pass MAX_PACKAGE_RECORD_BYTES (a board could not list it back). */
export function serializePackageRecord(record: PackageRecord): Buffer {
  const sorted: PackageRecord = { v: 1, packages: {} };
  for (const name of Object.keys(record.packages).sort()) sorted.packages[name] = record.packages[name]!;
  const bytes = Buffer.from(JSON.stringify(sorted), 'utf8');
  if (bytes.length > MAX_PACKAGE_RECORD_BYTES) {
    throw new RangeError(
      `the package record would be ${bytes.length} bytes, over the ${MAX_PACKAGE_RECORD_BYTES / 1024} KiB limit: uninstall some packages first`,
    );
  }
  return bytes;
}

export function installedPackages(record: PackageRecord): InstalledPackage[] {
  return Object.keys(record.packages)
    .sort()
    .map((name) => {
      const entry = record.packages[name]!;
      const files = Object.keys(entry.files)
        .sort()
        .map((path) => ({ path, sha256: entry.files[path]! }));
      return { name, version: entry.version, target: entry.target, source: entry.source, installedAt: entry.at, files };
    });
}

export interface PackageInstalled {
  name: string;
  version: string;
  target: string;
  source: string;
  at: number;
  /** Board path → sha256 of the bytes now on the board. */
  files: Record<string, string>;
}

/**
 * The record after installing `installed` (replacing earlier installs of the same names),
 * and the files to remove: those an earlier install of one of these packages had that the
 * new one does not (e.g. `x.py` once `x.mpy` replaces it), unless another package still
 * owns them. A file one of the new packages now owns is taken from whichever package
 * recorded it before, so two entries never claim one file.
 */
export function recordInstall(record: PackageRecord, installed: readonly PackageInstalled[]): { record: PackageRecord; remove: string[] } {
  const next: PackageRecord = { v: 1, packages: structuredClone(record.packages) };
  const newPaths = new Set(installed.flatMap((p) => Object.keys(p.files)));
  const previous = new Set<string>();
  for (const pkg of installed) {
    for (const path of Object.keys(next.packages[pkg.name]?.files ?? {})) previous.add(path);
    delete next.packages[pkg.name];
  }
  for (const entry of Object.values(next.packages)) {
    for (const path of Object.keys(entry.files)) if (newPaths.has(path)) delete entry.files[path];
  }
  const stillOwned = ownedPaths(next);
  for (const pkg of installed) {
    next.packages[pkg.name] = { version: pkg.version, target: pkg.target, source: pkg.source, at: pkg.at, files: { ...pkg.files } };
  }
  const remove = [...previous].filter((path) => !newPaths.has(path) && !stillOwned.has(path)).sort();
  return { record: next, remove };
}

/**
 * The record without `names`, the files to remove (theirs, except any another remaining
 * package also lists) and the names that were not installed.
 */
export function recordUninstall(record: PackageRecord, names: readonly string[]): { record: PackageRecord; remove: string[]; missing: string[] } {
  const next: PackageRecord = { v: 1, packages: structuredClone(record.packages) };
  const missing: string[] = [];
  const candidates = new Set<string>();
  for (const name of names) {
    const entry = next.packages[name];
    if (!entry) {
      missing.push(name);
      continue;
    }
    for (const path of Object.keys(entry.files)) candidates.add(path);
    delete next.packages[name];
  }
  const stillOwned = ownedPaths(next);
  const remove = [...candidates].filter((path) => !stillOwned.has(path)).sort();
  return { record: next, remove, missing };
}

function ownedPaths(record: PackageRecord): Set<string> {
  const paths = new Set<string>();
  for (const entry of Object.values(record.packages)) for (const path of Object.keys(entry.files)) paths.add(path);
  return paths;
}

/** Whether two records hold the same packages and files (the record is written only when it changed). */
export function sameRecord(a: PackageRecord, b: PackageRecord): boolean {
  return serializeUnchecked(a) === serializeUnchecked(b);
}

function serializeUnchecked(record: PackageRecord): string {
  const names = Object.keys(record.packages).sort();
  return JSON.stringify(
    names.map((name) => {
      const entry = record.packages[name]!;
      const files = Object.keys(entry.files)
        .sort()
        .map((path) => [path, entry.files[path]]);
      return [name, entry.version, entry.target, entry.source, files];
    }),
  );
}

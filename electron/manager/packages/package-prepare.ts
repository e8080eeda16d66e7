/**
 * The one entry point of board-install on the host: `preparePackages` resolves every package
 * a user asked for (all sources, dependencies, pins, conflicts) and downloads and checks every
 * file, through the cache, BEFORE anything is sent to a board. What it returns is final: the
 * bytes each board gets, with their sha256. Any problem throws a ManagerError whose message
 * says what to do (kind `bad_request` for bad input or a bad package, `device`, a 502, when
 * the network or a server failed and the cache could not stand in).
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { ManagerError, type ErrorKind } from '../errors.js';
import type { Logger } from '../log.js';
import { PackageCache } from './package-cache.js';
import { PackageSourceError, type FetchLike } from './package-http.js';
import { DEFAULT_INDEX_URL, MAX_PACKAGE_FILE_BYTES, PackageIndex } from './package-index.js';
import { DEFAULT_PYPI_URL } from './package-pypi.js';
import { resolveInstallPlan, type PlannedFile } from './package-resolver.js';
import { createPackageLookup, MAX_PACKAGE_BYTES } from './package-sources.js';

/** Most packages named in one install (the API's limit too). */
export const MAX_PACKAGE_SPECS = 20;

/** The request itself is unusable (no packages, too many, a bad option). */
export class PrepareRequestError extends ManagerError {
  override name = 'PrepareRequestError';
  readonly kind: ErrorKind = 'bad_request';
}

export interface PrepareProgress {
  /** `offline`: the network failed and the cache stands in (a phase of its own, so the job's phase list keeps it). */
  phase: 'resolve' | 'offline' | 'download';
  message: string;
  done?: number;
  total?: number;
}

export interface PrepareOptions {
  /** Default DEFAULT_INDEX_URL. */
  indexUrl?: string;
  /** Default 'https://pypi.org'; '' turns the fallback off. */
  pypiUrl?: string;
  /** Board folder; default '/lib'. */
  target?: string;
  /** `<data>/packages`: created 0700 if missing. */
  cacheDir: string;
  fetch?: FetchLike;
  signal?: AbortSignal;
  onProgress?: (progress: PrepareProgress) => void;
  /** Where offline fallbacks and downloads are logged (besides onProgress). */
  log?: Logger;
}

export interface PreparedFile {
  package: string;
  boardPath: string;
  data: Buffer;
  /** Full hex sha256 of `data`. */
  sha256: string;
}

export interface PreparedPackage {
  name: string;
  version: string;
  /** e.g. 'index https://…', 'github:org/repo@ref', 'pypi micropython-x 1.0', 'local /abs/path'. */
  source: string;
  requiredBy: string[];
  files: PreparedFile[];
}

export interface PreparedInstall {
  target: string;
  /** Dependencies first. */
  packages: PreparedPackage[];
}

/** Resolves and downloads everything `specs` needs; returns only when every file is here and checked. */
export async function preparePackages(specs: string[], options: PrepareOptions): Promise<PreparedInstall> {
  if (!Array.isArray(specs) || specs.length === 0) throw new PrepareRequestError('no package given: name at least one package to install');
  if (specs.length > MAX_PACKAGE_SPECS) throw new PrepareRequestError(`${specs.length} packages given: at most ${MAX_PACKAGE_SPECS} in one install`);
  if (specs.some((s) => typeof s !== 'string' || s.length > 500)) throw new PrepareRequestError('each package must be a text of at most 500 characters');
  if (typeof options.cacheDir !== 'string' || !path.isAbsolute(options.cacheDir))
    throw new PrepareRequestError('the package cache folder must be an absolute path');
  const pypiUrl = options.pypiUrl ?? DEFAULT_PYPI_URL;
  if (pypiUrl !== '' && !/^https?:\/\/[^/\s]+/i.test(pypiUrl)) throw new PrepareRequestError(`PyPI URL "${pypiUrl}" must be an http(s) URL`);

  const progress = (p: PrepareProgress) => options.onProgress?.(p);
  const note = (message: string) => {
    options.log?.('warn', message);
    progress({ phase: 'offline', message });
  };
  const cache = await PackageCache.open(options.cacheDir, { fetch: options.fetch, signal: options.signal, onNote: note });
  const index = new PackageIndex({ indexUrl: options.indexUrl ?? DEFAULT_INDEX_URL, format: 'py', fetch: options.fetch, signal: options.signal, cache });

  progress({ phase: 'resolve', message: `resolving ${specs.join(', ')}` });
  const plan = await resolveInstallPlan(specs, { lookup: createPackageLookup({ index, cache, pypiUrl }), target: options.target });
  const total = plan.packages.reduce((n, p) => n + p.files.length, 0);
  progress({ phase: 'download', message: `downloading ${total} files of ${plan.packages.length} packages`, done: 0, total });

  let done = 0;
  const packages: PreparedPackage[] = [];
  for (const pkg of plan.packages) {
    const files: PreparedFile[] = [];
    let bytes = 0;
    for (const file of pkg.files) {
      options.signal?.throwIfAborted();
      const data = await fileBytes(file, pkg.name, index, cache);
      if (data.length > MAX_PACKAGE_FILE_BYTES)
        throw new PackageSourceError(`${pkg.name}: ${file.path} is larger than ${MAX_PACKAGE_FILE_BYTES} bytes: refused`);
      bytes += data.length;
      if (bytes > MAX_PACKAGE_BYTES) throw new PackageSourceError(`${pkg.name} is larger than ${MAX_PACKAGE_BYTES} bytes unpacked: refused`);
      files.push({ package: pkg.name, boardPath: file.boardPath, data, sha256: createHash('sha256').update(data).digest('hex') });
      progress({ phase: 'download', message: `${pkg.name}: ${file.path}`, done: ++done, total });
    }
    packages.push({ name: pkg.name, version: pkg.version, source: pkg.source, requiredBy: pkg.requiredBy, files });
  }
  options.log?.('info', `packages prepared: ${packages.map((p) => `${p.name}@${p.version}`).join(', ')}`, {
    files: total,
    downloaded: cache.stats.downloaded,
    fromCache: cache.stats.fromCache,
  });
  return { target: plan.target, packages };
}

/** A planned file's bytes: already read, from the index by hash, or by URL (network first, the cache when offline). */
async function fileBytes(file: PlannedFile, pkg: string, index: PackageIndex, cache: PackageCache): Promise<Buffer> {
  if (file.data) return file.data;
  if (file.hash) return index.getFile(file.boardPath, file.hash);
  if (file.url) {
    const data = await cache.getDocument(file.url, {
      what: `file ${file.path} of ${pkg}`,
      limit: MAX_PACKAGE_FILE_BYTES,
      server: new URL(file.url).host,
      hint: 'check the URL and the network',
    });
    if (data === undefined) throw new PackageSourceError(`${pkg} lists ${file.path} at ${file.url}, which was not found (404)`);
    return data;
  }
  throw new PackageSourceError(`${pkg}: ${file.path} has no source`);
}

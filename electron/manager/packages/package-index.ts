/**
 * Client of a micropython-lib package index, format v2 (what mip reads): a package's
 * description at `{index}/package/{6|py}/{name}/{version|latest}.json`, its files by short
 * hash at `{index}/file/{h[:2]}/{h}`. A short hash is the first 8 hex digits of the file's
 * sha256, and every downloaded file is checked against it, so a tampered or corrupted file
 * never reaches a board. What it downloads is size-limited, so a broken or hostile index
 * cannot fill the host's memory.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ManagerError, type ErrorKind } from '../errors.js';
import type { PackageCache } from './package-cache.js';
import { getLimited, PackageHashMismatchError, type FetchLike, type LimitedGet } from './package-http.js';

export { PackageHashMismatchError, type FetchLike } from './package-http.js';

export const DEFAULT_INDEX_URL = 'https://micropython.org/pi/v2';
/** Largest package description read (real ones are a few hundred bytes). */
export const MAX_INDEX_JSON_BYTES = 1024 * 1024;
/** Largest single package file read. */
export const MAX_PACKAGE_FILE_BYTES = 4 * 1024 * 1024;

/** The index cannot be used for this request: unreachable, bad answer, too large, unknown package. */
export class PackageIndexError extends ManagerError {
  override name = 'PackageIndexError';
  readonly kind: ErrorKind = 'bad_request';
}

/** The index has no such package (or not in that version). */
export class PackageNotFoundError extends PackageIndexError {
  override name = 'PackageNotFoundError';
  constructor(
    readonly packageName: string,
    readonly version: string,
    readonly index: string,
    /** Where else it was looked for, e.g. `, nor on PyPI as x or micropython-x`. */
    alsoTried = '',
  ) {
    super(`no package ${packageName} (version ${version}) in ${index}${alsoTried}`);
  }
}

const shortHash = z.string().regex(/^[0-9a-f]{8,64}$/, 'a hex sha256 prefix');
/** A file path inside a package: relative, forward slashes, no `..`, so it stays under the target folder. */
export const packageFilePath = z
  .string()
  .min(1)
  .max(255)
  .refine(
    (p) => !p.startsWith('/') && !p.includes('\\') && !p.split('/').some((s) => s === '..' || s === '.' || s === ''),
    'a relative path without ".." or empty parts',
  );

/** mip's package description (extra keys are allowed and ignored, as mip does). */
export const packageMetaSchema = z.object({
  v: z.number().int().optional(),
  version: z.string().max(64).default(''),
  hashes: z.array(z.tuple([packageFilePath, shortHash])).default([]),
  urls: z.array(z.tuple([packageFilePath, z.string().min(1).max(2048)])).default([]),
  deps: z.array(z.tuple([z.string().min(1).max(200), z.string().max(64)])).default([]),
});
export type PackageMeta = z.infer<typeof packageMetaSchema>;

export interface PackageIndexOptions {
  /** Base URL of the index (no trailing slash needed). */
  indexUrl?: string;
  /** `6` for `.mpy` ABI 6 packages, `py` for source packages (mip's `mpy=False`). */
  format?: '6' | 'py';
  fetch?: FetchLike;
  signal?: AbortSignal;
  /** Descriptions network-first with an offline fallback, files from the cache when there (package-cache.ts). */
  cache?: PackageCache;
}

export class PackageIndex {
  readonly indexUrl: string;
  readonly format: '6' | 'py';
  private readonly fetchImpl: FetchLike;
  private readonly signal?: AbortSignal;
  private readonly cache?: PackageCache;

  constructor(options: PackageIndexOptions = {}) {
    const raw = options.indexUrl ?? DEFAULT_INDEX_URL;
    let parsed: URL;
    try {
      parsed = new URL(raw);
    } catch {
      throw new PackageIndexError(`index URL "${raw}" is not a valid URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new PackageIndexError(`index URL "${raw}" must use http:// or https://`);
    this.indexUrl = parsed.href.replace(/\/+$/, '');
    this.format = options.format ?? '6';
    this.fetchImpl = options.fetch ?? ((url, init) => fetch(url, init));
    this.signal = options.signal;
    this.cache = options.cache;
  }

  /** The description of `name` at `version` (undefined, '' or 'latest' for the latest). */
  async getPackage(name: string, version?: string): Promise<PackageMeta> {
    const wanted = version === undefined || version === '' ? 'latest' : version;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new PackageIndexError(`"${name}" is not a package name`);
    if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]*$/.test(wanted)) throw new PackageIndexError(`"${wanted}" is not a version of ${name}`);
    const url = `${this.indexUrl}/package/${this.format}/${name}/${wanted}.json`;
    const what = `the description of ${name}`;
    const body = await this.read(url, { limit: MAX_INDEX_JSON_BYTES, what });
    if (body === undefined) throw new PackageNotFoundError(name, wanted, this.indexUrl);
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw new PackageIndexError(`the index answered ${url} with something that is not JSON`);
    }
    const parsed = packageMetaSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new PackageIndexError(
        `the index's description of ${name} (${url}) is malformed: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
      );
    }
    return parsed.data;
  }

  /** One file of a package, by the short hash the index gives; checked before it is returned (and taken from the cache when there). */
  async getFile(path: string, hash: string): Promise<Buffer> {
    if (!/^[0-9a-f]{8,64}$/.test(hash)) throw new PackageIndexError(`file ${path}: "${hash}" is not a hash`);
    const url = `${this.indexUrl}/file/${hash.slice(0, 2)}/${hash}`;
    const what = `file ${path}`;
    if (this.cache) return this.cache.getByHash(hash, url, { ...this.about(what, MAX_PACKAGE_FILE_BYTES), file: path });
    const data = await this.read(url, { limit: MAX_PACKAGE_FILE_BYTES, what });
    if (data === undefined) throw new PackageIndexError(`the index has no ${what} (404 for ${url})`);
    const actual = createHash('sha256').update(data).digest('hex');
    if (!actual.startsWith(hash)) throw new PackageHashMismatchError(path, hash, actual);
    return data;
  }

  private about(what: string, limit: number): Omit<LimitedGet, 'signal'> {
    return { what, limit, server: 'the package index', hint: 'check the index URL and the network' };
  }

  private read(url: string, { limit, what }: { limit: number; what: string }): Promise<Buffer | undefined> {
    if (this.cache) return this.cache.getDocument(url, this.about(what, limit));
    return getLimited(this.fetchImpl, url, { ...this.about(what, limit), signal: this.signal });
  }
}

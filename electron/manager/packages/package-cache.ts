/**
 * The download cache in the data folder (`<data>/packages`), so installs work offline once
 * they worked online and no file is downloaded twice:
 * - `files/<sha256>`: every downloaded body, content-addressed and checked when read (a cached
 *   file whose bytes no longer match its name is deleted and fetched again);
 * - `meta/<sha256 of url>.json`: which body a URL gave last, and when (`{url, sha256, fetchedAt}`),
 *   or that it was not found (`missing`: a package the index lacks stays lacking offline, so the
 *   PyPI fallback is taken offline as it was online).
 * Descriptions (index JSON, PyPI JSON, package.json, a file given only by URL) are asked of the
 * network first, each success refreshing the cache; when the network fails (unreachable or
 * 5xx) the cached copy is used and a note says so. Files named by a hash are taken from the
 * cache whenever it has them, online or not. Every write goes to a temp file then is renamed,
 * so a crash never leaves a half-written entry.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../data-dir.js';
import { getLimited, PackageHashMismatchError, PackageNetworkError, PackageSourceError, type FetchLike, type LimitedGet } from './package-http.js';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** `missing`: the server said 404 (kept too, so a PyPI fallback decided online is decided the same offline). */
const metaSchema = z.object({
  url: z.string(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  missing: z.literal(true).optional(),
  fetchedAt: z.number(),
});

export interface PackageCacheOptions {
  fetch?: FetchLike;
  signal?: AbortSignal;
  /** Told when a cached copy stands in for the network ("offline: using the copy … cached <date>"). */
  onNote?: (message: string) => void;
}

export type CachedGet = Omit<LimitedGet, 'signal'>;

export interface ByHash extends CachedGet {
  /** The file's name for a mismatch message. */
  file: string;
  /** Where the hash comes from, for a mismatch message ("in the index", "on PyPI"). */
  where?: string;
}

export class PackageCache {
  /** How many bodies came from the network, and how many files from the cache (for progress and tests). */
  readonly stats = { downloaded: 0, fromCache: 0 };
  private readonly fetchImpl: FetchLike;
  private names?: Set<string>;

  private constructor(
    readonly dir: string,
    private readonly options: PackageCacheOptions,
  ) {
    this.fetchImpl = options.fetch ?? ((url, init) => fetch(url, init));
  }

  /** Opens (creating, owner-only) the cache folder; `dir` must be absolute. */
  static async open(dir: string, options: PackageCacheOptions = {}): Promise<PackageCache> {
    if (!path.isAbsolute(dir)) throw new PackageSourceError(`package cache folder "${dir}" must be an absolute path`);
    await mkdir(path.join(dir, 'files'), { recursive: true, mode: 0o700 });
    await mkdir(path.join(dir, 'meta'), { recursive: true, mode: 0o700 });
    return new PackageCache(dir, options);
  }

  /**
   * A document by URL, network first: a success refreshes the cache; a network failure falls
   * back to the cached copy (noted), or throws saying it is offline and not in the cache.
   * `undefined` when the server says 404.
   */
  async getDocument(url: string, options: CachedGet): Promise<Buffer | undefined> {
    try {
      const body = await getLimited(this.fetchImpl, url, { ...options, signal: this.options.signal });
      if (body !== undefined) this.stats.downloaded++;
      await this.remember(url, body);
      return body;
    } catch (err) {
      if (!(err instanceof PackageNetworkError)) throw err;
      const cached = await this.recall(url);
      if (!cached) throw new PackageNetworkError(`${err.message}; ${options.what} is offline and not in the cache (install it once while online)`);
      const what = cached.body === undefined ? `the answer "not found" for ${options.what}` : `the copy of ${options.what}`;
      this.options.onNote?.(`offline: using ${what} cached ${new Date(cached.fetchedAt).toISOString()}`);
      return cached.body;
    }
  }

  /**
   * A file named by its sha256 (full, or the index's 8-hex prefix): from the cache when there,
   * else downloaded from `url`, checked and stored. A mismatch throws and stores nothing.
   */
  async getByHash(hash: string, url: string, options: ByHash): Promise<Buffer> {
    const cached = await this.readByHash(hash);
    if (cached) {
      this.stats.fromCache++;
      return cached;
    }
    let body: Buffer | undefined;
    try {
      body = await getLimited(this.fetchImpl, url, { ...options, signal: this.options.signal });
    } catch (err) {
      if (err instanceof PackageNetworkError)
        throw new PackageNetworkError(`${err.message}; ${options.what} is offline and not in the cache (install it once while online)`);
      throw err;
    }
    if (body === undefined) throw new PackageSourceError(`${options.server} has no ${options.what} (404 for ${url})`);
    this.stats.downloaded++;
    const actual = sha256(body);
    if (!actual.startsWith(hash)) throw new PackageHashMismatchError(options.file, hash, actual, options.where);
    await this.store(body, actual);
    return body;
  }

  private filePath(hash: string): string {
    return path.join(this.dir, 'files', hash);
  }

  private metaPath(url: string): string {
    return path.join(this.dir, 'meta', `${sha256(url)}.json`);
  }

  /** The cached body whose sha256 starts with `hash`, checked; a corrupt one is deleted. */
  private async readByHash(hash: string): Promise<Buffer | undefined> {
    if (!/^[0-9a-f]{8,64}$/.test(hash)) return undefined;
    if (!this.names) this.names = new Set((await readdir(path.join(this.dir, 'files'))).filter((n) => /^[0-9a-f]{64}$/.test(n)));
    for (const name of this.names) {
      if (!name.startsWith(hash)) continue;
      const data = await readFile(this.filePath(name)).catch(() => undefined);
      if (data && sha256(data) === name) return data;
      // Damaged on disk (or vanished): forget it so the file is fetched again.
      this.names.delete(name);
      await rm(this.filePath(name), { force: true });
    }
    return undefined;
  }

  private async store(body: Buffer, hash = sha256(body)): Promise<string> {
    if (!this.names?.has(hash)) {
      await writeFileAtomic(this.filePath(hash), body);
      this.names?.add(hash);
    }
    return hash;
  }

  private async remember(url: string, body: Buffer | undefined): Promise<void> {
    const entry = body === undefined ? { url, missing: true, fetchedAt: Date.now() } : { url, sha256: await this.store(body), fetchedAt: Date.now() };
    await writeFileAtomic(this.metaPath(url), Buffer.from(JSON.stringify(entry)));
  }

  /** What `url` gave last: its body, or `body: undefined` for a remembered 404; undefined when never fetched. */
  private async recall(url: string): Promise<{ body: Buffer | undefined; fetchedAt: number } | undefined> {
    const raw = await readFile(this.metaPath(url), 'utf8').catch(() => undefined);
    if (raw === undefined) return undefined;
    let meta: z.infer<typeof metaSchema>;
    try {
      meta = metaSchema.parse(JSON.parse(raw));
    } catch {
      return undefined;
    }
    if (meta.url !== url) return undefined;
    if (meta.missing || !meta.sha256) return { body: undefined, fetchedAt: meta.fetchedAt };
    const body = await this.readByHash(meta.sha256);
    return body ? { body, fetchedAt: meta.fetchedAt } : undefined;
  }
}

/**
 * The one way packages/ reads from the network: a GET whose body is size-limited (a broken or
 * hostile server cannot fill the host's memory), with errors that say whose fault it was.
 * The network being down or a server answering 5xx is the world's fault (kind `device`, 502:
 * the cache may still help, see package-cache.ts); a 4xx other than 404 or an oversized body
 * is a bad source (kind `bad_request`). A 404 is returned to the caller, who knows what was
 * missing.
 */
import { ManagerError, type ErrorKind } from '../errors.js';

export type FetchLike = (url: string, init?: { signal?: AbortSignal }) => Promise<Response>;

/** The network is down or a server failed (unreachable, reset, 5xx): nothing the user typed is wrong. */
export class PackageNetworkError extends ManagerError {
  override name = 'PackageNetworkError';
  readonly kind: ErrorKind = 'device';
}

/** A source answered something that cannot be used (a 4xx, too large, malformed). */
export class PackageSourceError extends ManagerError {
  override name = 'PackageSourceError';
  readonly kind: ErrorKind = 'bad_request';
}

/** A downloaded file does not match the hash its source gives for it; the install must stop. */
export class PackageHashMismatchError extends ManagerError {
  override name = 'PackageHashMismatchError';
  readonly kind: ErrorKind = 'bad_request';
  constructor(
    readonly file: string,
    readonly expected: string,
    readonly actual: string,
    where = 'in the index',
  ) {
    super(
      `file ${file} does not match its hash ${where} (expected sha256 ${expected.slice(0, 16)}…, got ${actual.slice(0, Math.min(16, expected.length))}…): the source or the download is corrupt, nothing was installed`,
    );
  }
}

export interface LimitedGet {
  /** Largest body accepted, in bytes. */
  limit: number;
  /** What is being fetched, for messages ("the description of util", "file util.py"). */
  what: string;
  /** Who is asked, for messages ("the package index", "PyPI"). */
  server: string;
  /** What the user can check when it cannot be reached. */
  hint: string;
  signal?: AbortSignal;
}

/** GETs `url`: the body of a 2xx answer, or `undefined` for a 404; throws for anything else. */
export async function getLimited(fetchImpl: FetchLike, url: string, options: LimitedGet): Promise<Buffer | undefined> {
  let response: Response;
  try {
    response = await fetchImpl(url, { signal: options.signal });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
    const reason = cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err);
    throw new PackageNetworkError(`cannot reach ${options.server} at ${url} (${reason}): ${options.hint}`);
  }
  if (response.status === 404) {
    await response.body?.cancel().catch(() => {});
    return undefined;
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => {});
    const message = `${options.server} answered ${response.status} for ${options.what} (${url})`;
    throw response.status >= 500 ? new PackageNetworkError(`${message}: it is failing, try again later`) : new PackageSourceError(message);
  }
  return readBody(response, url, options);
}

async function readBody(response: Response, url: string, options: LimitedGet): Promise<Buffer> {
  const tooLarge = () => new PackageSourceError(`${options.what} from ${url} is larger than ${options.limit} bytes: refused`);
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > options.limit) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader();
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > options.limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge();
      }
      chunks.push(Buffer.from(value));
    }
  } catch (err) {
    if (err instanceof PackageSourceError || options.signal?.aborted) throw err;
    throw new PackageNetworkError(`the connection to ${options.server} broke while reading ${options.what} (${url}): ${(err as Error).message}`);
  }
  return Buffer.concat(chunks, size);
}

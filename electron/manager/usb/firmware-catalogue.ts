/**
 * The local catalogue of firmware images (`<data-dir>/firmware/`): images the user added
 * or downloaded, each checked before it is kept. Downloads (e.g. an official MicroPython
 * ESP8266 release) must match the sha256 the user gives, or, for a built-in firmware
 * (builtin-firmware.ts), be the release it names; the sha256 is recorded beside each image
 * and checked again whenever the image is used. Nothing half-downloaded or unverified ever
 * lands in the catalogue.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  BUILTIN_FIRMWARE,
  BUILTIN_MAX_BYTES,
  BuiltinImageMismatch,
  builtinFileName,
  builtinSourceUrl,
  checkBuiltinImage,
  FIRMWARE_MIRROR_ENV,
  findBuiltinFirmware,
  type BuiltinImageProblem,
} from './builtin-firmware.js';
import { FirmwareImageError, inspectFirmwareImage, type FirmwareImageInfo } from './firmware-image.js';
import { ManagerError, type ErrorKind } from '../errors.js';

export const MAX_IMAGE_BYTES = 16 * 1024 * 1024;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}\.bin$/;

/** What went wrong with a download, for callers that react to it (never match the message). */
export type FirmwareDownloadFailure =
  'bad-url' | 'bad-sha256' | 'network' | 'http' | 'too-large' | 'aborted' | 'sha256-mismatch' | 'unknown-builtin' | BuiltinImageProblem;

export class FirmwareDownloadError extends ManagerError {
  override name = 'FirmwareDownloadError';
  readonly kind: ErrorKind = 'bad_request';
  constructor(
    message: string,
    readonly reason: FirmwareDownloadFailure,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface CatalogueEntry extends FirmwareImageInfo {
  name: string;
  path: string;
  source: string | null;
  /** The built-in firmware id (builtin-firmware.ts) this image was downloaded as, if any. */
  builtin?: string;
}

export interface DownloadOptions {
  url: string;
  sha256: string;
  /** File name in the catalogue (default: the URL's last path segment). */
  name?: string;
  onProgress?: (received: number, total: number | null) => void;
  signal?: AbortSignal;
}

export interface BuiltinDownloadOptions {
  /** Download from here instead of the official URL (a mirror, or a test server). */
  url?: string;
  onProgress?: (received: number, total: number | null) => void;
  signal?: AbortSignal;
}

export interface FirmwareCatalogueOptions {
  /** Where CLOUDMANAGER_FIRMWARE_MIRROR is read from (default: process.env, at each download). */
  env?: Record<string, string | undefined>;
}

/** What is stored beside `<name>.bin` as `<name>.bin.json`. */
interface EntryMeta {
  source?: string | null;
  sha256?: string;
  builtin?: string;
}

interface FetchOptions {
  maxBytes: number;
  onProgress?: (received: number, total: number | null) => void;
  signal?: AbortSignal;
  /** Appended to failure messages: what the user can do about it. */
  hint?: string;
}

export class FirmwareCatalogue {
  constructor(
    readonly folder: string,
    private readonly options: FirmwareCatalogueOptions = {},
  ) {}

  /** The usable images; an image whose bytes no longer match its recorded sha256 is not offered. */
  async list(): Promise<CatalogueEntry[]> {
    await mkdir(this.folder, { recursive: true });
    const entries: CatalogueEntry[] = [];
    for (const name of (await readdir(this.folder)).filter((file) => file.endsWith('.bin')).sort()) {
      try {
        entries.push(await this.entry(name));
      } catch {
        // Not a usable image (e.g. copied in by hand, or changed since it was added): not offered.
      }
    }
    return entries;
  }

  /** The image file of a catalogue name, checked (header, and the sha256 recorded when it was added). */
  async get(name: string): Promise<{ image: Buffer; info: FirmwareImageInfo }> {
    if (!NAME_PATTERN.test(name)) throw new FirmwareImageError(`no firmware named ${JSON.stringify(name)} in the catalogue`);
    const image = await readFile(path.join(this.folder, name)).catch(() => {
      throw new FirmwareImageError(`no firmware named ${JSON.stringify(name)} in the catalogue`);
    });
    const info = inspectFirmwareImage(image);
    const meta = await this.meta(name);
    if (meta.sha256 && meta.sha256 !== info.sha256) {
      throw new FirmwareImageError(
        `the firmware ${name} has changed since it was added (its sha256 is ${info.sha256}, ${meta.sha256} was recorded): download or add it again`,
      );
    }
    return { image, info };
  }

  /** Adds an image (checked) under `name`. */
  async add(name: string, image: Buffer, source: string | null = null): Promise<CatalogueEntry> {
    if (!NAME_PATTERN.test(name))
      throw new FirmwareImageError(`firmware file names are 1-100 characters A-Z, a-z, 0-9, . _ + - and end in .bin (got ${JSON.stringify(name)})`);
    return this.store(name, image, inspectFirmwareImage(image), { source });
  }

  /** Downloads an image, verifies its sha256 and its header, and adds it. */
  async download(options: DownloadOptions): Promise<CatalogueEntry> {
    const expected = options.sha256.trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(expected)) throw new FirmwareDownloadError('the sha256 to check must be 64 hexadecimal characters', 'bad-sha256');
    const url = parseHttpUrl(options.url);
    const name = options.name ?? decodeURIComponent(url.pathname.split('/').pop() ?? '');
    const image = await fetchImage(url, { maxBytes: MAX_IMAGE_BYTES, onProgress: options.onProgress, signal: options.signal });
    const actual = createHash('sha256').update(image).digest('hex');
    if (actual !== expected) {
      throw new FirmwareDownloadError(`the download's sha256 is ${actual}, not the expected ${expected}: nothing was saved`, 'sha256-mismatch');
    }
    return this.add(name, image, url.href);
  }

  /**
   * The catalogue entry of a built-in firmware (BUILTIN_FIRMWARE), downloading it first
   * unless it is already there with its recorded sha256. A download is kept only if it is
   * a valid image for the firmware's chip containing its version text; its sha256 and URL
   * are then recorded. The URL is `options.url`, else the official one with its base
   * replaced by CLOUDMANAGER_FIRMWARE_MIRROR when that is set.
   */
  async downloadBuiltin(id: string, options: BuiltinDownloadOptions = {}): Promise<CatalogueEntry> {
    const firmware = findBuiltinFirmware(id);
    if (!firmware) {
      const known = BUILTIN_FIRMWARE.map((item) => item.id).join(', ');
      throw new FirmwareDownloadError(`there is no built-in firmware ${JSON.stringify(id)} (known: ${known})`, 'unknown-builtin');
    }
    const name = builtinFileName(firmware);
    const existing = await this.entry(name).catch(() => null);
    if (existing?.builtin === firmware.id) return existing;

    const source = builtinSourceUrl(firmware, { override: options.url, env: this.options.env ?? process.env });
    const hint = source.fromMirror
      ? `check the mirror URL${options.url ? '' : ` (${FIRMWARE_MIRROR_ENV})`}`
      : `check the internet connection, or set ${FIRMWARE_MIRROR_ENV} to a mirror of ${firmware.url.slice(0, firmware.url.lastIndexOf('/') + 1)}`;
    const url = parseHttpUrl(source.url, hint);
    const image = await fetchImage(url, { maxBytes: BUILTIN_MAX_BYTES, onProgress: options.onProgress, signal: options.signal, hint });
    let info: FirmwareImageInfo;
    try {
      info = checkBuiltinImage(firmware, image);
    } catch (error) {
      if (!(error instanceof BuiltinImageMismatch)) throw error;
      throw new FirmwareDownloadError(`${error.message}: nothing was saved; ${hint}`, error.problem, { cause: error });
    }
    return this.store(name, image, info, { source: url.href, builtin: firmware.id });
  }

  /** A catalogue entry, read and checked against its recorded sha256 (throws if unusable). */
  private async entry(name: string): Promise<CatalogueEntry> {
    const { info } = await this.get(name);
    const meta = await this.meta(name);
    return {
      ...info,
      name,
      path: path.join(this.folder, name),
      source: meta.source ?? null,
      ...(meta.sha256 && typeof meta.builtin === 'string' ? { builtin: meta.builtin } : {}),
    };
  }

  /** Writes image and metadata under temporary names, then renames them into place. */
  private async store(name: string, image: Buffer, info: FirmwareImageInfo, meta: Omit<EntryMeta, 'sha256'>): Promise<CatalogueEntry> {
    await mkdir(this.folder, { recursive: true });
    const target = path.join(this.folder, name);
    const suffix = `${process.pid}-${randomBytes(4).toString('hex')}.part`;
    const tempImage = `${target}.${suffix}`;
    const tempMeta = `${target}.json.${suffix}`;
    const record: EntryMeta = { source: meta.source ?? null, sha256: info.sha256, ...(meta.builtin ? { builtin: meta.builtin } : {}) };
    try {
      await writeFile(tempImage, image);
      await writeFile(tempMeta, JSON.stringify(record) + '\n');
      await rename(tempImage, target);
      await rename(tempMeta, `${target}.json`);
    } catch (error) {
      await rm(tempImage, { force: true });
      await rm(tempMeta, { force: true });
      throw error;
    }
    return { ...info, name, path: target, source: record.source ?? null, ...(meta.builtin ? { builtin: meta.builtin } : {}) };
  }

  private async meta(name: string): Promise<EntryMeta> {
    try {
      const parsed: unknown = JSON.parse(await readFile(path.join(this.folder, `${name}.json`), 'utf8'));
      if (typeof parsed !== 'object' || parsed === null) return {};
      const { source, sha256, builtin } = parsed as Record<string, unknown>;
      return {
        ...(typeof source === 'string' || source === null ? { source } : {}),
        ...(typeof sha256 === 'string' ? { sha256 } : {}),
        ...(typeof builtin === 'string' ? { builtin } : {}),
      };
    } catch {
      return {};
    }
  }
}

function parseHttpUrl(text: string, hint?: string): URL {
  const tail = hint ? `: ${hint}` : '';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FirmwareDownloadError(`not a URL: ${text}${tail}`, 'bad-url');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new FirmwareDownloadError(`only http(s) URLs can be downloaded (got ${url.href})${tail}`, 'bad-url');
  return url;
}

/** Downloads `url` into memory, refusing (and cutting off) a body larger than `maxBytes`. */
async function fetchImage(url: URL, options: FetchOptions): Promise<Buffer> {
  const tail = options.hint ? `; ${options.hint}` : '';
  const failed = (error: unknown): FirmwareDownloadError =>
    options.signal?.aborted
      ? new FirmwareDownloadError(`the download of ${url.href} was cancelled: nothing was saved`, 'aborted', { cause: error })
      : new FirmwareDownloadError(`cannot download ${url.href}: ${describe(error)}: nothing was saved${tail}`, 'network', { cause: error });
  let response: Response;
  try {
    response = await fetch(url, { signal: options.signal, redirect: 'follow' });
  } catch (error) {
    throw failed(error);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel().catch(() => undefined);
    throw new FirmwareDownloadError(`cannot download ${url.href}: HTTP ${response.status}${tail}`, 'http');
  }
  const tooLarge = (size?: number) =>
    new FirmwareDownloadError(
      `${url.href} is ${size === undefined ? '' : `${size} bytes, `}larger than a firmware image can be (at most ${options.maxBytes} bytes): nothing was saved${tail}`,
      'too-large',
    );
  const total = Number(response.headers.get('content-length')) || null;
  if (total !== null && total > options.maxBytes) {
    await response.body.cancel().catch(() => undefined);
    throw tooLarge(total);
  }
  const parts: Buffer[] = [];
  let received = 0;
  try {
    // Leaving this loop early (a throw) cancels the body, which closes the connection.
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      received += chunk.length;
      if (received > options.maxBytes) throw tooLarge();
      parts.push(Buffer.from(chunk));
      options.onProgress?.(received, total);
    }
  } catch (error) {
    throw error instanceof FirmwareDownloadError ? error : failed(error);
  }
  return Buffer.concat(parts);
}

/** fetch() reports "fetch failed" with the reason (e.g. ECONNREFUSED) in its cause. */
function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const cause = error instanceof Error ? (error.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  const detail = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : null;
  return detail ? `${message} (${detail})` : message;
}

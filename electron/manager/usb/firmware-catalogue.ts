/**
 * The local catalogue of firmware images (`<data-dir>/firmware/`): images the user added
 * or downloaded, each checked before it is kept. Downloads (e.g. an official MicroPython
 * ESP8266 release) must match the sha256 the user gives; nothing half-downloaded or
 * unverified ever lands in the catalogue.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FirmwareImageError, inspectFirmwareImage, type FirmwareImageInfo } from './firmware-image.js';

export const MAX_IMAGE_BYTES = 16 * 1024 * 1024;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}\.bin$/;

export class FirmwareDownloadError extends Error {
  override name = 'FirmwareDownloadError';
}

export interface CatalogueEntry extends FirmwareImageInfo {
  name: string;
  path: string;
  source: string | null;
}

export interface DownloadOptions {
  url: string;
  sha256: string;
  /** File name in the catalogue (default: the URL's last path segment). */
  name?: string;
  onProgress?: (received: number, total: number | null) => void;
  signal?: AbortSignal;
}

export class FirmwareCatalogue {
  constructor(readonly folder: string) {}

  async list(): Promise<CatalogueEntry[]> {
    await mkdir(this.folder, { recursive: true });
    const entries: CatalogueEntry[] = [];
    for (const name of (await readdir(this.folder)).filter((file) => file.endsWith('.bin')).sort()) {
      try {
        const image = await readFile(path.join(this.folder, name));
        const meta = await this.meta(name);
        entries.push({ ...inspectFirmwareImage(image), name, path: path.join(this.folder, name), source: meta.source ?? null });
      } catch {
        // Not a usable image (e.g. copied in by hand): not offered.
      }
    }
    return entries;
  }

  /** The image file of a catalogue name, checked. */
  async get(name: string): Promise<{ image: Buffer; info: FirmwareImageInfo }> {
    if (!NAME_PATTERN.test(name)) throw new FirmwareImageError(`no firmware named ${JSON.stringify(name)} in the catalogue`);
    const image = await readFile(path.join(this.folder, name)).catch(() => {
      throw new FirmwareImageError(`no firmware named ${JSON.stringify(name)} in the catalogue`);
    });
    return { image, info: inspectFirmwareImage(image) };
  }

  /** Adds an image (checked) under `name`. */
  async add(name: string, image: Buffer, source: string | null = null): Promise<CatalogueEntry> {
    if (!NAME_PATTERN.test(name)) throw new FirmwareImageError(`firmware file names are 1-100 characters A-Z, a-z, 0-9, . _ + - and end in .bin (got ${JSON.stringify(name)})`);
    const info = inspectFirmwareImage(image);
    await mkdir(this.folder, { recursive: true });
    const target = path.join(this.folder, name);
    const temp = `${target}.${process.pid}.part`;
    try {
      await writeFile(temp, image);
      await writeFile(path.join(this.folder, `${name}.json`), JSON.stringify({ source, sha256: info.sha256 }) + '\n');
      await rename(temp, target);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return { ...info, name, path: target, source };
  }

  /** Downloads an image, verifies its sha256 and its header, and adds it. */
  async download(options: DownloadOptions): Promise<CatalogueEntry> {
    const expected = options.sha256.trim().toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(expected)) throw new FirmwareDownloadError('the sha256 to check must be 64 hexadecimal characters');
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new FirmwareDownloadError(`not a URL: ${options.url}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new FirmwareDownloadError('only http(s) URLs can be downloaded');
    const name = options.name ?? decodeURIComponent(url.pathname.split('/').pop() ?? '');
    let response: Response;
    try {
      response = await fetch(url, { signal: options.signal, redirect: 'follow' });
    } catch (error) {
      throw new FirmwareDownloadError(`cannot download ${url.href}: ${(error as Error).message}`);
    }
    if (!response.ok || !response.body) throw new FirmwareDownloadError(`cannot download ${url.href}: HTTP ${response.status}`);
    const total = Number(response.headers.get('content-length')) || null;
    if (total !== null && total > MAX_IMAGE_BYTES) throw new FirmwareDownloadError(`${url.href} is ${total} bytes, larger than any ESP8266 flash`);
    const hash = createHash('sha256');
    const parts: Buffer[] = [];
    let received = 0;
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      received += chunk.length;
      if (received > MAX_IMAGE_BYTES) throw new FirmwareDownloadError(`${url.href} is larger than any ESP8266 flash`);
      hash.update(chunk);
      parts.push(Buffer.from(chunk));
      options.onProgress?.(received, total);
    }
    const actual = hash.digest('hex');
    if (actual !== expected) {
      throw new FirmwareDownloadError(`the download's sha256 is ${actual}, not the expected ${expected}: nothing was saved`);
    }
    return this.add(name, Buffer.concat(parts), url.href);
  }

  private async meta(name: string): Promise<{ source?: string | null }> {
    try {
      return JSON.parse(await readFile(path.join(this.folder, `${name}.json`), 'utf8')) as { source?: string | null };
    } catch {
      return {};
    }
  }
}

/**
 * Firmware downloads are checked by sha256 (or, for built-in firmware, by image checks and
 * version text) and header before they are kept (local HTTP server, no internet).
 */
import http from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_MAX_BYTES } from '../../electron/manager/usb/builtin-firmware.js';
import { FirmwareCatalogue, FirmwareDownloadError, type FirmwareDownloadFailure } from '../../electron/manager/usb/firmware-catalogue.js';
import { FirmwareImageError } from '../../electron/manager/usb/firmware-image.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';

describe('firmware catalogue', () => {
  const image = makeEsp8266Image({ size: 128 * 1024 });
  const sha = createHash('sha256').update(image).digest('hex');
  let server: http.Server;
  let base: string;
  let folder: string;
  let catalogue: FirmwareCatalogue;

  beforeAll(async () => {
    server = http.createServer((request, response) => {
      if (request.url === '/ESP8266_GENERIC-v1.27.0.bin') response.end(image);
      else if (request.url === '/not-firmware.bin') response.end('<html>not found</html>');
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    folder = await mkdtemp(path.join(os.tmpdir(), 'cm-firmware-'));
    catalogue = new FirmwareCatalogue(folder);
  });
  afterAll(async () => {
    server.close();
    await rm(folder, { recursive: true, force: true });
  });

  it('downloads a release, checks its sha256 and lists it', async () => {
    const progress: number[] = [];
    const entry = await catalogue.download({ url: `${base}/ESP8266_GENERIC-v1.27.0.bin`, sha256: sha, onProgress: (received) => progress.push(received) });
    expect(entry).toMatchObject({ name: 'ESP8266_GENERIC-v1.27.0.bin', chip: 'ESP8266', size: image.length, sha256: sha });
    expect(progress.at(-1)).toBe(image.length);
    expect((await catalogue.list()).map((item) => item.name)).toEqual(['ESP8266_GENERIC-v1.27.0.bin']);
  });

  it('keeps nothing when the sha256 or the image is wrong', async () => {
    await expect(catalogue.download({ url: `${base}/ESP8266_GENERIC-v1.27.0.bin`, sha256: 'a'.repeat(64), name: 'bad-sha.bin' })).rejects.toBeInstanceOf(
      FirmwareDownloadError,
    );
    const html = createHash('sha256').update('<html>not found</html>').digest('hex');
    await expect(catalogue.download({ url: `${base}/not-firmware.bin`, sha256: html })).rejects.toBeInstanceOf(FirmwareImageError);
    await expect(catalogue.download({ url: `${base}/missing.bin`, sha256: sha })).rejects.toThrow(/HTTP 404/);
    const files = await readdir(folder);
    expect(files.filter((file) => file.endsWith('.bin'))).toEqual(['ESP8266_GENERIC-v1.27.0.bin']);
    expect(files.some((file) => file.endsWith('.part'))).toBe(false);
  });
});

describe('built-in firmware download', () => {
  const ID = 'micropython-1.27-esp8266';
  const FILE = 'ESP8266_GENERIC-20251209-v1.27.0.bin';
  const BANNER = 'MicroPython v1.27.0 on 2025-12-09; ESP module with ESP8266\0';
  /** A synthetic image passing the header checks, with MicroPython's banner among its irom strings. */
  const withBanner = (banner: string | null, seed: number) => {
    const image = makeEsp8266Image({ size: 160 * 1024, seed });
    if (banner) image.write(banner, 100 * 1024, 'latin1');
    return image;
  };
  const good = withBanner(BANNER, 3);
  const otherGood = withBanner(BANNER, 4);
  const noVersion = withBanner(null, 5);
  const requests = new Map<string, number>();
  const closed = new Map<string, Promise<void>>();
  const folders: string[] = [];
  let server: http.Server;
  let base: string;

  /** Sends `chunk` over and over until the client goes away (respecting backpressure). */
  function endless(response: http.ServerResponse, chunk: Buffer): void {
    const pump = () => {
      while (!response.destroyed && response.write(chunk)) {
        /* keep writing until the buffer is full */
      }
    };
    response.on('drain', pump);
    pump();
  }

  beforeAll(async () => {
    server = http.createServer((request, response) => {
      const url = request.url ?? '';
      requests.set(url, (requests.get(url) ?? 0) + 1);
      closed.set(url, new Promise((resolve) => response.on('close', resolve)));
      if (url === `/mirror/${FILE}` || url === '/good.bin') response.end(good);
      else if (url === '/other-good.bin') response.end(otherGood);
      else if (url === '/no-version.bin') response.end(noVersion);
      else if (url === '/readme.txt') response.end(`This is the ${BANNER.slice(0, -1)} release. Download the .bin file.\n`);
      else if (url === '/endless.bin') endless(response, good.subarray(0, 64 * 1024));
      else if (url === '/declared-huge.bin') {
        response.writeHead(200, { 'content-length': String(BUILTIN_MAX_BYTES + 1) });
        endless(response, good.subarray(0, 64 * 1024));
      } else if (url === '/stalls.bin')
        response.write(good.subarray(0, 64 * 1024)); // never ends
      else response.writeHead(404).end('not found');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true })));
  });

  async function newFolder(): Promise<string> {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-builtin-'));
    folders.push(folder);
    return folder;
  }

  async function failure(promise: Promise<unknown>): Promise<FirmwareDownloadError> {
    const error = await promise.then(
      () => null,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(FirmwareDownloadError);
    return error as FirmwareDownloadError;
  }

  it('keeps a download that is MicroPython 1.27.0 for ESP8266, records its sha256, and does not download it again', async () => {
    const folder = await newFolder();
    const catalogue = new FirmwareCatalogue(folder, { env: {} });
    const progress: Array<[number, number | null]> = [];
    const entry = await catalogue.downloadBuiltin(ID, { url: `${base}/good.bin`, onProgress: (received, total) => progress.push([received, total]) });
    const sha = createHash('sha256').update(good).digest('hex');
    expect(entry).toMatchObject({ name: `${ID}.bin`, builtin: ID, chip: 'ESP8266', size: good.length, sha256: sha, source: `${base}/good.bin` });
    expect(progress.at(-1)).toEqual([good.length, good.length]);
    expect(JSON.parse(await readFile(path.join(folder, `${ID}.bin.json`), 'utf8'))).toMatchObject({ sha256: sha, source: `${base}/good.bin`, builtin: ID });
    expect(await catalogue.list()).toEqual([entry]);
    expect((await catalogue.get(`${ID}.bin`)).image.equals(good)).toBe(true);

    // Already there with its sha256: returned as is, nothing fetched (even from another URL).
    const again = await new FirmwareCatalogue(folder, { env: {} }).downloadBuiltin(ID, { url: `${base}/other-good.bin` });
    expect(again).toEqual(entry);
    expect(requests.get('/good.bin')).toBe(1);
    expect(requests.get('/other-good.bin')).toBeUndefined();
    expect((await readdir(folder)).sort()).toEqual([`${ID}.bin`, `${ID}.bin.json`]);
  });

  it('downloads from the mirror in CLOUDMANAGER_FIRMWARE_MIRROR', async () => {
    const catalogue = new FirmwareCatalogue(await newFolder(), { env: { CLOUDMANAGER_FIRMWARE_MIRROR: `${base}/mirror` } });
    const entry = await catalogue.downloadBuiltin(ID);
    expect(entry).toMatchObject({ builtin: ID, source: `${base}/mirror/${FILE}`, sha256: createHash('sha256').update(good).digest('hex') });
    expect(requests.get(`/mirror/${FILE}`)).toBe(1);
  });

  it('checks a kept image against its recorded sha256 and downloads it again when it has changed', async () => {
    const folder = await newFolder();
    const catalogue = new FirmwareCatalogue(folder, { env: {} });
    await catalogue.downloadBuiltin(ID, { url: `${base}/good.bin` });
    await writeFile(path.join(folder, `${ID}.bin`), otherGood); // changed behind the catalogue's back
    await expect(catalogue.get(`${ID}.bin`)).rejects.toThrow(FirmwareImageError);
    expect(await catalogue.list()).toEqual([]);
    const entry = await catalogue.downloadBuiltin(ID, { url: `${base}/other-good.bin` });
    expect(entry.sha256).toBe(createHash('sha256').update(otherGood).digest('hex'));
    expect((await catalogue.get(`${ID}.bin`)).info.sha256).toBe(entry.sha256);
  });

  it('lists a hand-added image of the same name as not downloaded, and replaces it', async () => {
    const catalogue = new FirmwareCatalogue(await newFolder(), { env: {} });
    await catalogue.add(`${ID}.bin`, noVersion);
    expect((await catalogue.list()).map((item) => item.builtin)).toEqual([undefined]);
    expect(await catalogue.downloadBuiltin(ID, { url: `${base}/other-good.bin` })).toMatchObject({ builtin: ID, size: otherGood.length });
  });

  it.each<[string, string, FirmwareDownloadFailure, RegExp]>([
    [
      'an image without the version text',
      '/no-version.bin',
      'version-missing',
      /is not MicroPython 1\.27\.0 for ESP8266 \(the version text .* is missing\).*check the mirror URL/,
    ],
    ['a text file', '/readme.txt', 'not-firmware', /is not MicroPython 1\.27\.0 for ESP8266 \(not an ESP firmware image.*check the mirror URL/],
    ['a missing file (HTTP 404)', '/missing.bin', 'http', /HTTP 404.*check the mirror URL/],
    ['a body that never ends', '/endless.bin', 'too-large', /larger than a firmware image can be/],
    ['a body declared too large', '/declared-huge.bin', 'too-large', /larger than a firmware image can be/],
  ])('refuses %s and keeps nothing', async (_what, url, reason, message) => {
    const folder = await newFolder();
    const catalogue = new FirmwareCatalogue(folder, { env: {} });
    const error = await failure(catalogue.downloadBuiltin(ID, { url: `${base}${url}` }));
    expect(error.reason).toBe(reason);
    expect(error.message).toMatch(message);
    await closed.get(url); // the server saw the connection end: a too-large body was cut off
    expect(await readdir(folder)).toEqual([]);
    expect(await catalogue.list()).toEqual([]);
  });

  it('stops when cancelled and keeps nothing', async () => {
    const folder = await newFolder();
    const controller = new AbortController();
    const catalogue = new FirmwareCatalogue(folder, { env: {} });
    const error = await failure(catalogue.downloadBuiltin(ID, { url: `${base}/stalls.bin`, signal: controller.signal, onProgress: () => controller.abort() }));
    expect(error.reason).toBe('aborted');
    await closed.get('/stalls.bin');
    expect(await readdir(folder)).toEqual([]);
  });

  it('says what to do when the mirror is not http(s) or cannot be reached, or the id is unknown', async () => {
    const catalogue = new FirmwareCatalogue(await newFolder(), { env: { CLOUDMANAGER_FIRMWARE_MIRROR: 'ftp://mirror.lan/' } });
    expect((await failure(catalogue.downloadBuiltin(ID))).message).toMatch(/only http\(s\) URLs.*check the mirror URL \(CLOUDMANAGER_FIRMWARE_MIRROR\)/);
    const unknown = await failure(catalogue.downloadBuiltin('micropython-9.9-esp8266'));
    expect(unknown.reason).toBe('unknown-builtin');
    expect(unknown.message).toContain(ID);
    // A closed port: the server cannot be reached.
    const closedPort = http.createServer();
    await new Promise<void>((resolve) => closedPort.listen(0, '127.0.0.1', resolve));
    const port = (closedPort.address() as AddressInfo).port;
    await new Promise((resolve) => closedPort.close(resolve));
    const offline = await failure(new FirmwareCatalogue(await newFolder(), { env: {} }).downloadBuiltin(ID, { url: `http://127.0.0.1:${port}/x.bin` }));
    expect(offline.reason).toBe('network');
    expect(offline.message).toMatch(/ECONNREFUSED.*nothing was saved; check the mirror URL/);
  });
});

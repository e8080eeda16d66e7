/** Firmware downloads are checked by sha256 and header before they are kept (local HTTP server, no internet). */
import http from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FirmwareCatalogue, FirmwareDownloadError } from '../../electron/manager/usb/firmware-catalogue.js';
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
    await expect(catalogue.download({ url: `${base}/ESP8266_GENERIC-v1.27.0.bin`, sha256: 'a'.repeat(64), name: 'bad-sha.bin' }))
      .rejects.toBeInstanceOf(FirmwareDownloadError);
    const html = createHash('sha256').update('<html>not found</html>').digest('hex');
    await expect(catalogue.download({ url: `${base}/not-firmware.bin`, sha256: html })).rejects.toBeInstanceOf(FirmwareImageError);
    await expect(catalogue.download({ url: `${base}/missing.bin`, sha256: sha })).rejects.toThrow(/HTTP 404/);
    const files = await readdir(folder);
    expect(files.filter((file) => file.endsWith('.bin'))).toEqual(['ESP8266_GENERIC-v1.27.0.bin']);
    expect(files.some((file) => file.endsWith('.part'))).toBe(false);
  });
});

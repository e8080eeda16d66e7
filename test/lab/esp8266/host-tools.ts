/**
 * Test helpers: drive the simulator from the host side with the real flashers (esptool-js
 * and esp-web-flasher) through the product's Web-Serial adapter, and read what a board
 * prints.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { ESPLoader, Transport, type IEspLoaderTerminal } from 'esptool-js';
import { WebSerialPort } from '../../../electron/manager/usb/web-serial-port.js';
import type { CommandLogEntry } from './esp8266-simulator.js';

const tempDirs: string[] = [];

/** A fresh temp folder (flash files are 4 MB: removeTempDirs() in afterEach). */
export async function tempDir(prefix = 'cm-esp-'): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  for (const dir of tempDirs.splice(0)) await rm(dir, { recursive: true, force: true });
}

export interface EsptoolSession {
  port: WebSerialPort;
  transport: Transport;
  loader: ESPLoader;
  log: string[];
}

/** An esptool-js loader on `devicePath` through WebSerialPort (not yet connected). */
export function esptoolSession(devicePath: string, baudrate: number): EsptoolSession {
  const log: string[] = [];
  let line = '';
  const terminal: IEspLoaderTerminal = {
    clean: () => {},
    writeLine: (text: string) => {
      log.push(line + text);
      line = '';
    },
    write: (text: string) => {
      line += text;
    },
  };
  const port = new WebSerialPort({ path: devicePath, vendorId: 0x1a86, productId: 0x7523 });
  // esptool-js is typed against the DOM's SerialPort; the adapter provides what it uses.
  const transport = new Transport(port as unknown as ConstructorParameters<typeof Transport>[0], false);
  // esptool-js 0.7 calls trace() (console.log) even with tracing off (flash size parsing,
  // read loop exit): keep that in the session log instead.
  transport.trace = (message: string) => void log.push(`TRACE ${message}`);
  const loader = new ESPLoader({ transport, baudrate, romBaudrate: 115200, terminal });
  return { port, transport, loader, log };
}

/**
 * Writes `image` at address 0 with esptool-js's own writeFlash, keeping the image's
 * header (mode, frequency, size) as esptool does for a MicroPython image.
 */
export function esptoolWriteImage(loader: ESPLoader, image: Buffer, options: { compress: boolean; md5Check?: boolean }): Promise<void> {
  return loader.writeFlash({
    fileArray: [{ data: new Uint8Array(image), address: 0 }],
    flashMode: 'keep',
    flashFreq: 'keep',
    flashSize: 'keep',
    eraseAll: false,
    compress: options.compress,
    calculateMD5Hash: options.md5Check ? (data) => createHash('md5').update(data).digest('hex') : undefined,
  });
}

export async function closeSession(session: EsptoolSession): Promise<void> {
  if (!session.port.isOpen) return;
  try {
    if (session.port.lost) await session.port.close();
    else await session.transport.disconnect();
  } catch {
    if (session.port.isOpen) await session.port.close().catch(() => {});
  }
}

type WebFlasherModule = typeof import('esp-web-flasher');

/** esp-web-flasher's browser bundle (its `main` entry does not load in Node). */
export async function loadWebFlasher(): Promise<WebFlasherModule> {
  const specifier: string = 'esp-web-flasher/dist/web/index.js';
  return (await import(specifier)) as WebFlasherModule;
}

/** Collects what arrives on an open port until `until` matches or `ms` pass. */
export async function readFromPort(port: WebSerialPort, ms: number, until?: (received: Buffer) => boolean): Promise<Buffer> {
  const reader = port.readable!.getReader();
  const chunks: Buffer[] = [];
  const deadline = Date.now() + ms;
  try {
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left)));
      const result = await Promise.race([reader.read(), timeout]);
      clearTimeout(timer);
      if (result === 'timeout') break;
      if (result.done) break;
      chunks.push(Buffer.from(result.value));
      if (until?.(Buffer.concat(chunks))) break;
    }
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
  return Buffer.concat(chunks);
}

/** The simulator's command log, repeats collapsed: "SYNC READ_REG×12 … stub:FLASH_DEFL_DATA×7". */
export function commandSummary(log: readonly CommandLogEntry[]): string {
  const names = log.map((entry) => `${entry.loader === 'stub' ? 'stub:' : ''}${entry.name}`);
  const out: string[] = [];
  for (let i = 0; i < names.length;) {
    let j = i;
    while (j < names.length && names[j] === names[i]) j++;
    out.push(j - i > 1 ? `${names[i]}×${j - i}` : names[i]!);
    i = j;
  }
  return out.join(' ');
}

/**
 * The simulated chip talks at the rates a real ESP8266 does, and a host at another rate
 * reads what a real UART would: the ROM's boot lines and an early crash at 74880,
 * MicroPython at 115200, the stub at the rate its divider gives — over an RFC 2217 link,
 * which tells the simulator the host's rate. Also the ESP8285 mode.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { WebSerialPort } from '../../../electron/manager/usb/web-serial-port.js';
import { Rfc2217Link } from '../rfc2217-link.js';
import type { FlashMode } from './boot-console.js';
import { Esp8266Simulator } from './esp8266-simulator.js';
import { FAST_FLASH_TIMING } from './flash-chip.js';
import { closeSession, esptoolSession, readFromPort, removeTempDirs, tempDir, type EsptoolSession } from './host-tools.js';
import { makeTestImage } from './test-image.js';

afterAll(removeTempDirs);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** Bytes that are not printable ASCII or CR/LF. */
const garbage = (bytes: Buffer) => bytes.filter((b) => !(b === 10 || b === 13 || (b >= 32 && b < 127))).length;
const count = (bytes: Buffer, text: string) => bytes.toString('latin1').split(text).length - 1;

/** A board behind an RFC 2217 link whose flash holds a test image in `flashMode`. */
async function board(flashMode: FlashMode, options: Partial<ConstructorParameters<typeof Esp8266Simulator>[0]> = {}) {
  const dir = await tempDir();
  const flash = Buffer.alloc(4 * 1024 * 1024, 0xff);
  makeTestImage({ iromBytes: 16 * 1024, flashMode }).copy(flash);
  const flashImagePath = path.join(dir, 'flash.bin');
  await writeFile(flashImagePath, flash);
  const link = await Rfc2217Link.open({ baud: 115_200 });
  const sim = new Esp8266Simulator({ flashImagePath, link, flashTiming: FAST_FLASH_TIMING, ...options });
  cleanups.push(
    () => link.close(),
    () => sim.close(),
  );
  await sim.powerOn({ bootMode: 'download' });
  return { sim, link };
}

async function host(link: Rfc2217Link, baudRate: number): Promise<WebSerialPort> {
  const port = new WebSerialPort({ path: link.path });
  await port.open({ baudRate });
  cleanups.push(() => port.close());
  return port;
}

it('a crash in the wrong flash mode comes at 74880: a host there reads the ROM lines and "Fatal exception", one at 115200 garbage', async () => {
  const { sim, link } = await board('qio', { needsMode: 'dio' });
  const port = await host(link, 74_880);
  expect(link.hostBaud).toBe(74_880);
  await sim.pressReset();
  const read = await readFromPort(port, 20_000, (bytes) => count(bytes, 'Fatal exception (0)') >= 3);
  const text = read.toString('latin1');
  expect(count(read, 'Fatal exception (0)')).toBeGreaterThanOrEqual(3);
  expect(text).toContain(' ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\nload 0x40100000, len 24576, room 16 \r\n');
  expect(text).toMatch(/ets Jan {2}8 2013,rst cause:4, boot mode:\(3,6\)/); // the exception resets, and boots again
  expect(text).toContain('epc1=0x40100004');

  await port.setBaudRate(115_200);
  const atWrongRate = await readFromPort(port, 20_000, (bytes) => garbage(bytes) > 200);
  expect(count(atWrongRate, 'Fatal exception')).toBe(0);
  expect(garbage(atWrongRate)).toBeGreaterThan(200);
});

it('MicroPython talks at 115200: a host still at 74880 reads its banner as garbage, one at 115200 reads it', async () => {
  const { sim, link } = await board('dio');
  const port = await host(link, 74_880);
  await sim.pressReset();
  const atRomRate = await readFromPort(port, 20_000, (bytes) => garbage(bytes.subarray(bytes.indexOf('csum'))) > 30);
  expect(atRomRate.toString('latin1')).toContain('rst cause:2, boot mode:(3,6)');
  expect(atRomRate.toString('latin1')).not.toContain('MicroPython');

  await port.setBaudRate(115_200);
  await sim.pressReset();
  const atFirmwareRate = await readFromPort(port, 20_000, (bytes) => bytes.includes('>>> '));
  expect(atFirmwareRate.toString('latin1')).toContain('MicroPython v1.27.0 on 2025-12-09; ESP module with ESP8266\r\n');
  expect(atFirmwareRate.toString('latin1')).not.toContain('ets Jan');
});

it('CHANGE_BAUDRATE: the stub sets its divider from the old rate the host names; a wrong one leaves it at another rate', async () => {
  const { sim, link } = await board('dio');
  const session: EsptoolSession = esptoolSession(link.path, 115_200);
  cleanups.push(() => closeSession(session));
  await session.loader.main('no_reset');
  expect(sim.loaderKind).toBe('stub');
  // New rate 460800, "old" rate 74880 while the line runs at 115200: divider 451 × 74880 ÷ 460800 = 73.
  const request = new Uint8Array(8);
  new DataView(request.buffer).setUint32(0, 460_800, true);
  new DataView(request.buffer).setUint32(4, 74_880, true);
  const switched = new Promise<number>((resolve) => sim.once('baud', resolve));
  await session.loader.command(0x0f, request);
  await session.port.setBaudRate(460_800);
  expect(await switched).toBeCloseTo(52_000_000 / 73, 0);
  // 712 kbaud against the host's 460800: neither side reads the other.
  await expect(session.loader.readReg(0x40001000, 500)).rejects.toThrow();
});

it('an ESP8285: esptool-js reads the chip from its efuses and 1 MB of flash', async () => {
  const dir = await tempDir();
  const sim = new Esp8266Simulator({ flashImagePath: path.join(dir, 'flash.bin'), chip: 'ESP8285', flashTiming: FAST_FLASH_TIMING });
  cleanups.push(() => sim.close());
  await sim.powerOn({ bootMode: 'download' });
  expect(sim.flash.size).toBe(1024 * 1024);
  const session = esptoolSession(sim.path, 115_200);
  cleanups.push(() => closeSession(session));
  expect(await session.loader.main('no_reset')).toBe('ESP8285');
  expect(await session.loader.detectFlashSize()).toBe('1MB');
});

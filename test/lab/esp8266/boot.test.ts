import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { WebSerialPort } from '../../../electron/manager/usb/web-serial-port.js';
import type { FlashMode } from './boot-console.js';
import { Esp8266Simulator, type BootOutcome } from './esp8266-simulator.js';
import { closeSession, esptoolSession, readFromPort, removeTempDirs, tempDir, type EsptoolSession } from './host-tools.js';
import { makeTestImage } from './test-image.js';
import { waitFor } from '../../helpers/lab.js';

afterAll(removeTempDirs);

const BANNER = 'MicroPython v1.27.0 on 2025-12-09; ESP module with ESP8266';
let sim: Esp8266Simulator | undefined;
let session: EsptoolSession | undefined;
let port: WebSerialPort | undefined;

afterEach(async () => {
  if (session) await closeSession(session);
  if (port?.isOpen) await port.close();
  if (sim) await sim.close();
  session = port = sim = undefined;
});

/** A simulator whose flash already holds an image (or nothing). */
async function boardWith(flashMode: FlashMode | null, options: { needsMode?: FlashMode } = {}): Promise<Esp8266Simulator> {
  const dir = await tempDir();
  const flash = Buffer.alloc(4 * 1024 * 1024, 0xff);
  if (flashMode) makeTestImage({ iromBytes: 16 * 1024, flashMode }).copy(flash);
  const flashImagePath = path.join(dir, 'flash.bin');
  await writeFile(flashImagePath, flash);
  return new Esp8266Simulator({ flashImagePath, ...options });
}

async function openHost(target: Esp8266Simulator): Promise<WebSerialPort> {
  const host = new WebSerialPort({ path: target.path });
  await host.open({ baudRate: 115200 });
  return host;
}

/** Bytes that are not printable ASCII or CR/LF: what 74880-baud output looks like at 115200. */
const garbage = (bytes: Buffer) => bytes.filter((b) => !(b === 10 || b === 13 || (b >= 32 && b < 127))).length;

it('RUN_USER_CODE from esptool-js boots the flash: ROM garbage, then the MicroPython banner at 115200', async () => {
  sim = await boardWith('dio');
  await sim.powerOn({ bootMode: 'download' });
  session = esptoolSession(sim.path, 115200);
  await session.loader.main('default_reset');
  session.transport.flushInput();
  const runUserCode = new Promise<string>((resolve) => sim!.on('command', (entry) => resolve(entry.name)));
  await session.loader.after('soft_reset'); // sent without waiting for an answer (there is none)
  expect(await runUserCode).toBe('RUN_USER_CODE');
  const deadline = Date.now() + 3000;
  while (!Buffer.from(session.transport.peek()).includes(BANNER) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const received = Buffer.from(session.transport.peek());
  const bannerAt = received.indexOf(BANNER);
  expect(bannerAt).toBeGreaterThan(0);
  expect(garbage(received.subarray(0, bannerAt))).toBeGreaterThan(10);
  expect(received.subarray(0, bannerAt).includes('ets Jan')).toBe(false); // unreadable at 115200
  expect(sim.state).toBe('running');
});

it('pressReset boots a valid image; the ROM says what it loaded (at 74880)', async () => {
  sim = await boardWith('dout', { needsMode: 'dout' });
  const romText: string[] = [];
  sim.on('output', (text, baud) => baud === 74880 && romText.push(text));
  const outcomes: BootOutcome[] = [];
  sim.on('boot', (outcome) => outcomes.push(outcome));
  await sim.powerOn({ bootMode: 'download' });
  port = await openHost(sim);
  await sim.pressReset();
  const received = await readFromPort(port, 20_000, (bytes) => bytes.includes('>>> '));
  expect(received.toString('latin1')).toContain(`${BANNER}\r\nType "help()" for more information.\r\n>>> `);
  expect(outcomes.at(-1)).toMatchObject({ mode: 'flash', result: 'firmware' });
  expect(romText.join('')).toMatch(/ets Jan {2}8 2013,rst cause:2, boot mode:\(3,6\)\r\n\r\nload 0x40100000, len 24576, room 16 \r\n/);
});

it('a qio image on a board that needs dio crashes in a loop until reset; the crash is at 74880, garbage to a host at 115200', async () => {
  sim = await boardWith('qio', { needsMode: 'dio' });
  const crashes: string[] = [];
  sim.on('output', (text, baud) => text.startsWith('Fatal exception') && crashes.push(`${baud}`));
  await sim.powerOn({ bootMode: 'download' });
  port = await openHost(sim);
  await sim.pressReset();
  const received = await readFromPort(port, 20_000, () => crashes.length >= 3);
  expect(crashes.slice(0, 3)).toEqual(['74880', '74880', '74880']);
  // A pty cannot tell the host's rate: it is taken to be 115200, which reads the ROM's lines and the crash as garbage.
  expect(received.toString('latin1')).not.toContain('Fatal exception');
  expect(garbage(received)).toBeGreaterThan(100);
  expect(received.toString('latin1')).not.toContain('MicroPython');
  await sim.pressBootAndReset();
  expect(sim.state).toBe('download');
});

it('erased flash: the ROM complains and the board stays silent', async () => {
  sim = await boardWith(null);
  const outcomes: BootOutcome[] = [];
  sim.on('boot', (outcome) => outcomes.push(outcome));
  await sim.powerOn({ bootMode: 'flash' });
  port = await openHost(sim);
  await waitFor(() => outcomes.length > 0, 20_000, 'the ROM to look at the flash');
  expect(outcomes.at(-1)).toMatchObject({ mode: 'flash', result: 'no-image' });
  // Then nothing: the ROM hangs.
  const received = await readFromPort(port, 600);
  expect(received.toString('latin1')).not.toContain('MicroPython');
  expect(sim.state).toBe('running');
});

it('the boot mode is latched at a hardware reset: after "run user code", a software reset lands in the bootloader until RESET is pressed', async () => {
  sim = await boardWith('dio');
  await sim.powerOn({ bootMode: 'download' });
  session = esptoolSession(sim.path, 115200);
  await session.loader.main('default_reset');
  const booted = new Promise<BootOutcome>((resolve) => sim!.on('boot', (outcome) => outcome.mode === 'flash' && resolve(outcome)));
  await session.loader.after('soft_reset');
  expect(await booted).toMatchObject({ mode: 'flash', result: 'firmware' });
  expect(sim.latchedBootMode).toBe('download');
  // machine.reset() or a watchdog: a software reset boots the latched mode.
  const backInRom = new Promise<BootOutcome>((resolve) => sim!.once('boot', resolve));
  sim.softwareReset();
  expect(await backInRom).toEqual({ mode: 'download' });
  expect(sim.state).toBe('download');
  // One plain RESET latches "flash": software resets boot the firmware from now on.
  const fromFlash = new Promise<BootOutcome>((resolve) => sim!.once('boot', resolve));
  await sim.pressReset();
  expect(await fromFlash).toMatchObject({ mode: 'flash', result: 'firmware' });
  const again = new Promise<BootOutcome>((resolve) => sim!.once('boot', resolve));
  sim.softwareReset();
  expect(await again).toMatchObject({ mode: 'flash', result: 'firmware' });
  expect(sim.latchedBootMode).toBe('flash');
});

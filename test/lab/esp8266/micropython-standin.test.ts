/**
 * The simulator's stand-in for MicroPython's start (no firmware plugged in): what
 * _boot.py does with the file system area — a first boot formats it, foreign data gives
 * inisetup.fs_corrupted()'s message every 3 s until Ctrl-C — and the banner of the build
 * the image is. Read at 115200 on a pty, where MicroPython talks.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { WebSerialPort } from '../../../electron/manager/usb/web-serial-port.js';
import { makeEsp8266Image, type SyntheticVariant } from '../esp8266-image.js';
import { Esp8266Simulator } from './esp8266-simulator.js';
import { FAST_FLASH_TIMING } from './flash-chip.js';
import { readFromPort, removeTempDirs, tempDir } from './host-tools.js';
import { fileSystemState } from './micropython-standin.js';

afterAll(removeTempDirs);

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** A board whose flash holds `variant`'s image and, at `at`, `data`. */
async function board(variant: SyntheticVariant, flashSizeBytes: number, data?: { at: number; bytes: Buffer }) {
  const flash = Buffer.alloc(flashSizeBytes, 0xff);
  makeEsp8266Image({ size: 200 * 1024, flashMode: 'dio', variant }).copy(flash);
  data?.bytes.copy(flash, data.at);
  const flashImagePath = path.join(await tempDir(), 'flash.bin');
  await writeFile(flashImagePath, flash);
  const sim = new Esp8266Simulator({ flashImagePath, flashSizeBytes, flashTiming: FAST_FLASH_TIMING });
  cleanups.push(() => sim.close());
  await sim.powerOn({ bootMode: 'download' });
  const port = new WebSerialPort({ path: sim.path });
  await port.open({ baudRate: 115_200 });
  cleanups.push(() => port.close());
  return { sim, port };
}

const text = (bytes: Buffer) => bytes.toString('latin1');

it('first boot on a blank area: "Performing initial setup", a LittleFS superblock at 1 MB, the banner; the next boot mounts it', async () => {
  const { sim, port } = await board('GENERIC', 4 << 20);
  await sim.pressReset();
  const first = text(await readFromPort(port, 20_000, (bytes) => bytes.includes('>>> ')));
  expect(first).toMatch(
    /Performing initial setup\r\nMicroPython v1\.27\.0 on 2025-12-09; ESP module with ESP8266\r\nType "help\(\)" for more information\.\r\n>>> $/,
  );
  expect(fileSystemState(sim.flash, 256)).toBe('littlefs');
  await sim.pressReset();
  const second = text(await readFromPort(port, 20_000, (bytes) => bytes.includes('>>> ')));
  expect(second).not.toContain('Performing initial setup');
  expect(second).toContain('MicroPython v1.27.0 on 2025-12-09; ESP module with ESP8266');
});

it('foreign data where the file system goes: the corrupt message every 3 s until Ctrl-C, then the REPL (FLASH_1M on 1 MB)', async () => {
  const { sim, port } = await board('FLASH_1M', 1 << 20, { at: 0x99000, bytes: Buffer.from('NodeMCU SPIFFS was here, not MicroPython') });
  await sim.pressReset();
  const message =
    'The filesystem starting at sector 153 with size 98 sectors looks corrupt.\r\n' +
    'You may want to make a flash snapshot and try to recover it. Otherwise,\r\n' +
    'format it with vfs.VfsLfs2.mkfs(bdev), or completely erase the flash and\r\n' +
    'reprogram MicroPython.\r\n\r\n';
  const twice = text(await readFromPort(port, 20_000, (bytes) => text(bytes).split(message).length - 1 >= 2));
  expect(twice.split(message).length - 1).toBe(2);
  expect(twice).not.toContain('>>> ');
  const writer = port.writable!.getWriter();
  await writer.write(Uint8Array.from([0x03]));
  writer.releaseLock();
  const after = text(await readFromPort(port, 20_000, (bytes) => bytes.includes('>>> ')));
  expect(after).toContain('KeyboardInterrupt');
  expect(after).toContain('MicroPython v1.27.0 on 2025-12-09; ESP module (1M) with ESP8266');
});

it('the 512 KiB build has no file system: straight to its banner', async () => {
  const { sim, port } = await board('FLASH_512K', 1 << 20);
  await sim.pressReset();
  const boot = text(await readFromPort(port, 20_000, (bytes) => bytes.includes('>>> ')));
  expect(boot).not.toContain('Performing initial setup');
  expect(boot).toContain('ESP module (512K) with ESP8266');
  expect(fileSystemState(sim.flash, 153)).toBe('blank');
});

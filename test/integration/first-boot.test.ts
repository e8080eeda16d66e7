/**
 * MicroPython's first boot on a simulated ESP8266, decided by its flash image as on a
 * board (_boot.py, inisetup.py, flashbdev.py of MicroPython 1.27): a blank filesystem
 * area is formatted ("Performing initial setup"), a formatted one mounts, foreign data
 * gives the corrupt-filesystem loop until Ctrl-C; an erase makes the next boot a first
 * boot again. The product's filesystem-area.ts is checked against the lab on the same
 * bytes. Also: the board's own access point after a first boot, kept in the flash.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  corruptFilesystemRegion,
  FILESYSTEM_SECTOR_BYTES,
  filesystemRegion,
  filesystemResetRange,
  inspectFilesystemArea,
  shouldEraseFilesystemArea,
} from '../../electron/manager/usb/filesystem-area.js';
import { RawRepl } from '../../electron/manager/usb/raw-repl.js';
import { closeNodeSerialPort, openNodeSerialPort } from '../../electron/manager/usb/web-serial-port.js';
import { SimulatedEsp8266 } from '../lab/simulated-esp8266.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';
import { waitFor } from '../helpers/lab.js';

const BANNER = 'Type "help()" for more information.\r\n>>> ';
const CORRUPT_4MB = [
  'The filesystem starting at sector 256 with size 763 sectors looks corrupt.',
  'You may want to make a flash snapshot and try to recover it. Otherwise,',
  'format it with vfs.VfsLfs2.mkfs(bdev), or completely erase the flash and',
  'reprogram MicroPython.',
  '',
].join('\r\n');

let root: string;
const boards: SimulatedEsp8266[] = [];

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'cm-first-boot-'));
});
afterEach(async () => {
  await Promise.all(boards.splice(0).map((board) => board.close()));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A board whose flash holds a firmware image at 0x0 (as after a flash), and `prepare`'s changes. */
async function makeBoard(name: string, options: { flashSizeBytes?: number; prepare?: (sim: SimulatedEsp8266) => Promise<void> } = {}) {
  const sim = new SimulatedEsp8266({ folder: path.join(root, name), timing: 'fast', flashSizeBytes: options.flashSizeBytes });
  boards.push(sim);
  sim.rom.flash.program(0, makeEsp8266Image({ size: 64 * 1024, flashMode: 'dio' }));
  await options.prepare?.(sim);
  const console = { text: '' };
  sim.on('console', (text) => {
    console.text += text;
  });
  return {
    sim,
    console,
    /** Boots (power on, or RESET) and waits for the REPL; resolves with what this boot printed. */
    async boot(how: 'power-on' | 'reset' = 'power-on'): Promise<string> {
      const from = console.text.length;
      if (how === 'power-on') {
        await sim.powerOn('flash');
      } else {
        await sim.rom.pressReset();
      }
      await waitFor(() => console.text.slice(from).includes(BANNER), 20_000, 'the REPL banner');
      return console.text.slice(from);
    },
    async run(code: string): Promise<string> {
      const result = await sim.board!.run(code);
      if (result.error) throw new Error(result.traceback ?? result.error);
      return result.stdout;
    },
    firstSector(): Buffer {
      const region = filesystemRegion(sim.rom.flash.size)!;
      return sim.rom.readFlash(region.offset, FILESYSTEM_SECTOR_BYTES);
    },
  };
}

describe('first boot of MicroPython on a simulated ESP8266', () => {
  it('a blank filesystem area: "Performing initial setup", LittleFS, boot.py, then the REPL; the next boot mounts it', { timeout: 60_000 }, async () => {
    const board = await makeBoard('blank');
    const region = filesystemRegion(board.sim.rom.flash.size)!;
    // The product's layout is where the lab's MicroPython keeps its filesystem.
    expect(board.sim.filesystemArea).toEqual(region);
    expect(inspectFilesystemArea(board.firstSector())).toBe('blank');

    const first = await board.boot();
    expect(first).toMatch(/^Performing initial setup\r\n/);
    expect(first.indexOf('Performing initial setup')).toBeLessThan(first.indexOf('MicroPython v1.27'));
    expect(board.sim.board!.filesystem).toBe('formatted');
    expect(inspectFilesystemArea(board.firstSector())).toBe('littlefs');
    const bootPy = await readFile(path.join(board.sim.fsFolder, 'boot.py'), 'utf8');
    expect(bootPy).toMatch(/^# This file is executed on every boot \(including wake-boot from deepsleep\)\n/);
    expect(bootPy).toContain('\nimport os, machine\n');
    expect(await board.run("import os\nprint(os.listdir('/'))")).toBe("['boot.py']\n");
    await board.run("with open('notes.txt', 'w') as f:\n    f.write('kept')");

    const second = await board.boot('reset');
    expect(second).not.toContain('Performing initial setup');
    expect(board.sim.board!.filesystem).toBe('mounted');
    expect(await board.run("print(sorted(__import__('os').listdir('/')), open('notes.txt').read())")).toBe("['boot.py', 'notes.txt'] kept\n");
  });

  it('leaves the access point on (MicroPython-xxxxxx, micropythoN); turned off, it stays off across resets and power cycles', { timeout: 60_000 }, async () => {
    const board = await makeBoard('access-point');
    await board.boot();
    const ap = await board.run(`import network, binascii
ap = network.WLAN(network.AP_IF)
print(ap.active(), ap.config('ssid') == 'MicroPython-' + binascii.hexlify(ap.config('mac')[-3:]).decode(), ap.config('security'))
try:
    ap.config('password')
except ValueError as e:
    print('password:', e)
`);
    expect(ap).toBe('True True 4\npassword: unknown config param\n');
    expect(board.sim.accessPoint()).toMatchObject({
      apActive: true,
      apSsid: expect.stringMatching(/^MicroPython-[0-9a-f]{6}$/),
      apKey: 'micropythoN',
      apAuthmode: 4,
    });

    await board.run('import network\nnetwork.WLAN(network.AP_IF).active(False)');
    expect(board.sim.accessPoint().apActive).toBe(false);
    const active = 'import network\nprint(network.WLAN(network.AP_IF).active())';
    await board.boot('reset');
    expect(await board.run(active)).toBe('False\n');
    await board.sim.powerOff();
    await board.boot('power-on');
    expect(await board.run(active)).toBe('False\n');

    // Erasing the whole flash (then writing MicroPython again) brings a first boot, and the access point back.
    await writeFile(path.join(board.sim.fsFolder, 'stale.txt'), 'from before the erase');
    board.sim.rom.flash.eraseChip();
    board.sim.rom.flash.program(0, makeEsp8266Image({ size: 64 * 1024, flashMode: 'dio' }));
    const again = await board.boot('reset');
    expect(again).toMatch(/^Performing initial setup\r\n/);
    expect(existsSync(path.join(board.sim.fsFolder, 'stale.txt'))).toBe(false);
    expect(await board.run(active)).toBe('True\n');
    expect(board.sim.accessPoint()).toMatchObject({ apActive: true, apKey: 'micropythoN' });
  });

  it(
    'foreign data (a board that ran NodeMCU): the corrupt-filesystem loop, no REPL until Ctrl-C, nothing mounted; erasing the area fixes it',
    { timeout: 60_000 },
    async () => {
      const board = await makeBoard('nodemcu', {
        prepare: async (sim) => {
          // A SPIFFS page where MicroPython's filesystem would start, and files on the host that are not mounted.
          const spiffs = Buffer.alloc(256, 0xff);
          spiffs.write('\x01\x00\x00\x00init.lua\x00', 0, 'latin1');
          sim.rom.flash.program(filesystemRegion(sim.rom.flash.size)!.offset, spiffs);
          await writeFile(path.join(sim.fsFolder, 'leftover.txt'), 'not mounted');
        },
      });
      const state = inspectFilesystemArea(Buffer.concat([Buffer.from('\x01\x00\x00\x00init.lua\x00', 'latin1'), Buffer.alloc(4096 - 13, 0xff)]));
      expect(state).toBe('foreign');
      expect(shouldEraseFilesystemArea(state)).toBe(true);

      await board.sim.powerOn('flash');
      await waitFor(() => board.console.text.split(CORRUPT_4MB).length > 2, 20_000, 'the corrupt message twice');
      expect(board.console.text.startsWith(CORRUPT_4MB)).toBe(true);
      expect(board.console.text).not.toContain('>>>');
      expect(board.console.text).not.toContain('MicroPython v');
      expect(inspectFilesystemArea(board.firstSector())).toBe('foreign');
      expect(corruptFilesystemRegion(board.console.text)).toEqual(filesystemRegion(board.sim.rom.flash.size));
      expect(board.sim.board!).toMatchObject({ filesystem: 'corrupt', mode: 'main' });

      // What a provisioning tool does: Ctrl-C, raw REPL. The loop stops; nothing is mounted.
      const port = await openNodeSerialPort(board.sim.path, { baudRate: 115_200 });
      const repl = new RawRepl({ port });
      try {
        await repl.enter({ timeoutMs: 10_000 });
        expect(board.console.text).toContain('Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n');
        expect(await repl.eval("__import__('os').listdir('/')")).toBe('[]');
        const write = await repl.exec("open('x.txt', 'w')");
        expect(write.stderr).toMatch(/OSError: \[Errno 19\] ENODEV/);
        await repl.exit();
      } finally {
        repl.dispose();
        await closeNodeSerialPort(port);
      }
      expect(await readFile(path.join(board.sim.fsFolder, 'leftover.txt'), 'utf8')).toBe('not mounted');

      // The flasher's remedy: erase the area's first sectors; the next boot is a first boot.
      const reset = filesystemResetRange(filesystemRegion(board.sim.rom.flash.size)!);
      board.sim.rom.flash.erase(reset.offset, reset.length);
      expect(inspectFilesystemArea(board.firstSector())).toBe('blank');
      const fixed = await board.boot('reset');
      expect(fixed).toMatch(/^Performing initial setup\r\n/);
      expect(existsSync(path.join(board.sim.fsFolder, 'leftover.txt'))).toBe(false);
    },
  );

  it('a FAT boot sector (a board formatted by an older MicroPython) mounts as it is', { timeout: 60_000 }, async () => {
    const board = await makeBoard('fat', {
      prepare: async (sim) => {
        const boot = Buffer.alloc(512, 0x00);
        boot.set([0xeb, 0xfe, 0x90], 0);
        boot.write('MSDOS5.0', 3, 'latin1');
        boot[510] = 0x55;
        boot[511] = 0xaa;
        sim.rom.flash.program(filesystemRegion(sim.rom.flash.size)!.offset, boot);
        await writeFile(path.join(sim.fsFolder, 'main.txt'), 'an old file');
      },
    });
    const printed = await board.boot();
    expect(printed).not.toContain('Performing initial setup');
    expect(inspectFilesystemArea(board.firstSector())).toBe('fat');
    expect(board.sim.board!.filesystem).toBe('mounted');
    expect(await board.run("print(open('main.txt').read())")).toBe('an old file\n');
  });

  it('a 1 MiB flash keeps its filesystem at 0x99000 (98 sectors), after a sector for native code', { timeout: 60_000 }, async () => {
    const board = await makeBoard('esp01', { flashSizeBytes: 1024 * 1024 });
    const region = filesystemRegion(1024 * 1024)!;
    expect(board.sim.filesystemArea).toEqual(region);
    expect(region).toEqual({ offset: 0x99000, length: 98 * FILESYSTEM_SECTOR_BYTES });
    expect(await board.boot()).toMatch(/^Performing initial setup\r\n/);
    expect(inspectFilesystemArea(board.sim.rom.readFlash(0x99000, FILESYSTEM_SECTOR_BYTES))).toBe('littlefs');
    expect(board.sim.rom.readFlash(0x98000, FILESYSTEM_SECTOR_BYTES).every((byte) => byte === 0xff)).toBe(true);
  });
});

/**
 * What the simulated ESP8266 runs when a valid image boots and no firmware was plugged in
 * (Esp8266Simulator without `onBoot`): a stand-in for MicroPython 1.27's start on the
 * esp8266 port, enough for a flasher to tell how the board came up — not a REPL.
 *
 * - MicroPython sets the UART to 115200 (the simulator does, before calling this);
 * - _boot.py mounts the file system or runs inisetup.setup() (ports/esp8266/modules):
 *   the area's first sector blank (all 0xFF) → "Performing initial setup", a format
 *   (two sector erases, a superblock, the AP settings: about 3 sector erases), then the
 *   REPL; a LittleFS superblock ("littlefs" at offset 8 of block 0 or 1) or a FAT boot
 *   sector (0x55AA at 510) → mounted, the REPL; anything else → fs_corrupted(): "The
 *   filesystem starting at sector N with size M sectors looks corrupt." every 3 s until
 *   Ctrl-C (1.27 enables it there), which ends in a KeyboardInterrupt and the REPL;
 * - the REPL: the banner with the board name compiled into the image (its "MicroPython
 *   v… with ESP8266" line; the GENERIC build's when the image has none), `>>> `, and every
 *   CR answered with a new prompt (no Python runs).
 *
 * Where the file system is (flashbdev.py, the linker scripts; the MicroPython board lab's
 * micropython-board-flash.ts computes it for both): from esp.flash_user_start() — 1 MiB
 * for GENERIC, 0x98000 for FLASH_1M, plus one sector kept below sector 256 — to 20 KB
 * before the end of the flash (SDK parameters); FLASH_512K has none; below 1 MiB of flash
 * there is none (bdev = None).
 *
 * Shortcuts: an image without a board name is taken as GENERIC; a build whose file system
 * would start past the end of the flash (GENERIC on a 1 MB board) boots as if it had none
 * (a real one raises from flashbdev); the KeyboardInterrupt traceback is abridged.
 */
import { fsCorruptText, INITIAL_SETUP_TEXT, micropythonBanner } from './boot-console.js';
import { eraseCostMs, programCostMs, SECTOR_SIZE, type FlashChip, type FlashTiming } from './flash-chip.js';
import { micropythonFilesystemLayout } from '../../../electron/manager/virtual/micropython-board-flash.js';

export const DEFAULT_BANNER_LINE = 'MicroPython v1.27.0 on 2025-12-09; ESP module with ESP8266';
const BANNER_LINE = /MicroPython v[\x20-\x7e]{1,80}?; (ESP module(?: \((1M|512K)\))?) with ESP8266/;
const FS_CORRUPT_PERIOD_MS = 3_000;
const MIB = 1024 * 1024;

export type StandinBuild = 'GENERIC' | 'FLASH_1M' | 'FLASH_512K';

export interface StandinContext {
  flash: FlashChip;
  timing: FlashTiming;
  /** Sends to the host (the UART is at 115200 by now). */
  write(text: string): void;
  onInput(listener: (data: Buffer) => void): void;
  /** Waits; false when the chip was reset meanwhile (stop then). */
  sleep(ms: number): Promise<boolean>;
}

/** The build an image in flash is, and the banner line it prints. */
export function standinBuild(flash: FlashChip): { build: StandinBuild; bannerLine: string } {
  const text = flash.read(0, Math.min(flash.size, MIB)).toString('latin1');
  const match = BANNER_LINE.exec(text);
  if (!match) return { build: 'GENERIC', bannerLine: DEFAULT_BANNER_LINE };
  return { build: match[2] === '1M' ? 'FLASH_1M' : match[2] === '512K' ? 'FLASH_512K' : 'GENERIC', bannerLine: match[0] };
}

/** MicroPython's file system area on this flash: first sector and length in sectors; null when none. */
export function fileSystemArea(build: StandinBuild, flashSize: number): { startSector: number; sectors: number } | null {
  if (build === 'FLASH_512K') return null;
  const layout = micropythonFilesystemLayout(flashSize, build === 'FLASH_1M' ? 0x98000 : 0x100000);
  return layout && { startSector: layout.startSector, sectors: layout.blocks };
}

export type FileSystemState = 'blank' | 'littlefs' | 'fat' | 'foreign';

export function fileSystemState(flash: FlashChip, startSector: number): FileSystemState {
  const first = flash.read(startSector * SECTOR_SIZE, SECTOR_SIZE);
  if (first.every((byte) => byte === 0xff)) return 'blank';
  const second = flash.read((startSector + 1) * SECTOR_SIZE, 16);
  if (first.subarray(8, 16).toString('latin1') === 'littlefs' || second.subarray(8, 16).toString('latin1') === 'littlefs') return 'littlefs';
  if (first[510] === 0x55 && first[511] === 0xaa) return 'fat';
  return 'foreign';
}

/** Formats the area as inisetup.setup() does (the superblock pair, here just its magic). */
function format(flash: FlashChip, startSector: number): void {
  flash.erase(startSector * SECTOR_SIZE, 2 * SECTOR_SIZE);
  const superblock = Buffer.concat([Buffer.from([1, 0, 0, 0, 0xf0, 0x0f, 0xff, 0xf7]), Buffer.from('littlefs', 'latin1')]);
  flash.program(startSector * SECTOR_SIZE, superblock);
  flash.program((startSector + 1) * SECTOR_SIZE, superblock);
}

export async function runMicroPythonStandin(ctx: StandinContext): Promise<void> {
  const { build, bannerLine } = standinBuild(ctx.flash);
  const area = fileSystemArea(build, ctx.flash.size);
  let interrupted = false;
  ctx.onInput((data) => {
    if (data.includes(0x03)) interrupted = true;
  });
  if (area) {
    const state = fileSystemState(ctx.flash, area.startSector);
    if (state === 'blank') {
      ctx.write(INITIAL_SETUP_TEXT);
      format(ctx.flash, area.startSector);
      // Two sector erases and the superblocks, then the AP settings in the SDK's sectors.
      const setupMs = eraseCostMs(area.startSector, 2, ctx.timing) + ctx.timing.sectorEraseMs + programCostMs(3 * 256, ctx.timing);
      if (!(await ctx.sleep(setupMs))) return;
    } else if (state === 'foreign') {
      while (!interrupted) {
        ctx.write(fsCorruptText(area.startSector, area.sectors));
        for (let waited = 0; waited < FS_CORRUPT_PERIOD_MS && !interrupted; waited += 100) {
          if (!(await ctx.sleep(100))) return;
        }
      }
      ctx.write('Traceback (most recent call last):\r\n  File "inisetup.py", in fs_corrupted\r\nKeyboardInterrupt: \r\n');
    }
  }
  ctx.write(micropythonBanner(bannerLine));
  ctx.onInput((data) => {
    const text = data.toString('latin1');
    ctx.write(text.replace(/[\r\x03]/g, '\r\n>>> '));
  });
}

/**
 * MicroPython's filesystem area on an ESP8266's flash, for the flasher: where it is, and
 * what its first sector says about it. Pure functions over sizes and bytes.
 *
 * Why it matters: MicroPython 1.27's `_boot.py` mounts the filesystem from this area, and
 * when that fails `inisetup.setup()` looks at its first sector: all 0xFF (blank) gives a
 * first boot ("Performing initial setup": LittleFS v2 is created, with boot.py); anything
 * else (a board that ran NodeMCU, AT or Arduino firmware before) is taken for a damaged
 * filesystem, and MicroPython prints "The filesystem starting at sector %d with size %d
 * sectors looks corrupt." every 3 s instead of starting (no REPL until Ctrl-C, nothing
 * mounted). Flashing MicroPython at 0x0 does not touch this area.
 *
 * Layout assumed (ports/esp8266: flashbdev.py and the boards' linker scripts; 1.27):
 * - `esp.flash_user_start()` is where the firmware's part of the flash ends: 0x100000 for
 *   the builds for 2 MiB and more (ESP8266_GENERIC: 0x0 firmware, 0xC0000 ROMFS,
 *   filesystem from 0x100000), 0x98000 for the 1 MiB build (FLASH_1M: firmware, 16 KB
 *   ROMFS at 0x94000). When that is below sector 256, one sector is kept for native code,
 *   so the 1 MiB build's filesystem starts at 0x99000.
 * - The filesystem runs to 20 KB before the end of the flash (the SDK's parameters: RF
 *   calibration, init data, wifi settings), in 4 KB blocks (one block = one sector).
 * - Below 1 MiB (the 512 KiB build) there is no filesystem at all.
 * - `flashSizeBytes` is what `esp.flash_size()` reports: the size in the image header,
 *   which is the chip's size when the image was written with `--flash_size detect`.
 *   The default user start assumes the build made for that size; a 1 MiB build flashed
 *   on a larger chip starts at 0x99000 (pass `userStart: 0x98000`).
 * So: 1 MiB → 0x99000 + 392 KB (98 blocks); 2 MiB → 0x100000 + 1004 KB (251 blocks);
 * 4 MiB → 0x100000 + 3052 KB (763 blocks); 8 and 16 MiB → from 0x100000 to 20 KB before
 * the end.
 *
 * What the first sector (block 0) tells (the same checks `vfs.mount()` and inisetup make):
 * - 'littlefs': "littlefs" at offset 8 (the name entry of a LittleFS v2 superblock):
 *   MicroPython mounts it; the board's files are there.
 * - 'fat': the boot-sector signature 0x55 0xAA at offset 510 (a board formatted by an
 *   older MicroPython release, which made FAT): MicroPython mounts it as FAT.
 * - 'blank': every byte 0xFF: the next boot is a first boot.
 * - 'foreign': anything else: MicroPython will print the corrupt-filesystem loop.
 *
 * Contract for the flasher:
 * 1. Before writing, read `FILESYSTEM_SECTOR_BYTES` bytes at `filesystemRegion(size).offset`
 *    with the stub (READ_FLASH) and pass them to `inspectFilesystemArea`.
 * 2. `'foreign'` (`shouldEraseFilesystemArea`): erase `filesystemResetRange(region)` (the
 *    first two sectors) before or after writing the firmware, so MicroPython's first boot
 *    formats the area. `'littlefs'` and `'fat'` are a MicroPython filesystem with the
 *    user's files: keep them (updating MicroPython keeps the files). `'blank'`: nothing to
 *    do.
 * 3. When the boot check after flashing sees "looks corrupt" (a filesystem MicroPython
 *    cannot mount although its first sector looked like one, or a build whose layout is
 *    not the one assumed here), `corruptFilesystemRegion(text)` gives the region the
 *    message names: erase `filesystemResetRange` of it and reset the board; the next boot
 *    is a first boot.
 * Erasing the whole region works too, but costs seconds on a real chip for nothing:
 * LittleFS erases every block before it uses it.
 */

/** One flash sector (erase unit) = one block of MicroPython's filesystem. */
export const FILESYSTEM_SECTOR_BYTES = 4096;
/** Kept for the SDK's parameters at the end of the flash (flashbdev.py). */
const SDK_PARAMETER_BYTES = 20 * 1024;
/** `esp.flash_user_start()` of the builds for 2 MiB and more. */
const USER_START_2MIB = 0x100000;
/** `esp.flash_user_start()` of the 1 MiB build (end of its 16 KB ROMFS). */
const USER_START_1MIB = 0x98000;
const MIB = 1024 * 1024;

export interface FilesystemRegion {
  /** Byte offset of block 0 in the flash (sector-aligned). */
  offset: number;
  /** Bytes, a whole number of sectors. */
  length: number;
}

export type FilesystemAreaState = 'blank' | 'littlefs' | 'fat' | 'foreign';

/**
 * Where MicroPython's filesystem lives on an ESP8266 with `flashSizeBytes` of flash (as
 * `esp.flash_size()` reports it), or null when MicroPython keeps none (below 1 MiB).
 * `userStart`: the build's `esp.flash_user_start()`, when known (default: the build for
 * that flash size, see the file comment). Throws RangeError for a size or start that is
 * not a positive whole number of sectors.
 */
export function filesystemRegion(flashSizeBytes: number, options: { userStart?: number } = {}): FilesystemRegion | null {
  if (!Number.isInteger(flashSizeBytes) || flashSizeBytes <= 0 || flashSizeBytes % FILESYSTEM_SECTOR_BYTES !== 0) {
    throw new RangeError(`the flash size must be a positive whole number of 4 KB sectors, not ${flashSizeBytes}`);
  }
  const userStart = options.userStart ?? (flashSizeBytes >= 2 * MIB ? USER_START_2MIB : USER_START_1MIB);
  if (!Number.isInteger(userStart) || userStart < 0 || userStart % FILESYSTEM_SECTOR_BYTES !== 0) {
    throw new RangeError(`the user start must be a whole number of 4 KB sectors, not ${userStart}`);
  }
  if (flashSizeBytes < MIB) return null;
  let startSector = userStart / FILESYSTEM_SECTOR_BYTES;
  if (startSector < 256) startSector += 1; // a sector for native code
  const blocks = Math.floor((flashSizeBytes - SDK_PARAMETER_BYTES) / FILESYSTEM_SECTOR_BYTES) - startSector;
  if (blocks <= 0) return null;
  return { offset: startSector * FILESYSTEM_SECTOR_BYTES, length: blocks * FILESYSTEM_SECTOR_BYTES };
}

/**
 * What MicroPython will make of the area, from its first sector (exactly
 * FILESYSTEM_SECTOR_BYTES bytes read at `region.offset`; throws RangeError otherwise).
 */
export function inspectFilesystemArea(firstSector: Uint8Array): FilesystemAreaState {
  if (firstSector.length !== FILESYSTEM_SECTOR_BYTES) {
    throw new RangeError(`give the whole first sector (${FILESYSTEM_SECTOR_BYTES} bytes), not ${firstSector.length} bytes`);
  }
  const bytes = Buffer.from(firstSector.buffer, firstSector.byteOffset, firstSector.length);
  if (bytes.toString('latin1', 8, 16) === 'littlefs') return 'littlefs';
  if (bytes[510] === 0x55 && bytes[511] === 0xaa) return 'fat';
  return bytes.every((byte) => byte === 0xff) ? 'blank' : 'foreign';
}

/** True when the area must be erased for MicroPython to start (see the contract above). */
export function shouldEraseFilesystemArea(state: FilesystemAreaState): boolean {
  return state === 'foreign';
}

/**
 * What to erase so that MicroPython's next boot is a first boot: the first two sectors,
 * which hold a LittleFS v2 superblock (a metadata pair) or a FAT boot sector and its FAT.
 */
export function filesystemResetRange(region: FilesystemRegion): FilesystemRegion {
  return { offset: region.offset, length: Math.min(region.length, 2 * FILESYSTEM_SECTOR_BYTES) };
}

/** MicroPython's message for a filesystem area it cannot mount nor format (inisetup.py). */
const CORRUPT_MESSAGE = /The filesystem starting at sector (\d+) with size (\d+) sectors looks corrupt\./;

/**
 * The region named by MicroPython's corrupt-filesystem message in `text` (what the board
 * printed while booting), or null when the text has no such message.
 */
export function corruptFilesystemRegion(text: string): FilesystemRegion | null {
  const match = CORRUPT_MESSAGE.exec(text);
  if (!match) return null;
  const startSector = Number(match[1]);
  const sectors = Number(match[2]);
  if (!Number.isSafeInteger(startSector * FILESYSTEM_SECTOR_BYTES) || sectors <= 0) return null;
  return { offset: startSector * FILESYSTEM_SECTOR_BYTES, length: sectors * FILESYSTEM_SECTOR_BYTES };
}

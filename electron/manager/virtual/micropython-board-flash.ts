/**
 * The MicroPython board lab's model of an ESP8266's flash outside the board's files: how
 * MicroPython 1.27 lays out its filesystem (flashbdev.py), what `_boot.py` does with the
 * area's first block at every boot, and the SDK's wifi settings that survive resets.
 *
 * The lab's own model (the product's electron/manager/usb/filesystem-area.ts is checked
 * against it by the tests, so the two are written apart on purpose):
 * - `esp.flash_user_start()`: 0x100000 on 2 MiB and more (the GENERIC build), 0x98000
 *   with 1 MiB (the FLASH_1M build), plus one sector kept for native code when that is
 *   below sector 256; the filesystem runs to 20 KB before the end of the flash (the SDK's
 *   parameters); none below 1 MiB. `esp.flash_size()` is taken to be the chip's size.
 * - At boot `vfs.mount(bdev, "/")` mounts LittleFS v2 when block 0 has "littlefs" at
 *   offset 8, else tries FAT, whose boot sector ends in 0x55 0xAA; when that fails,
 *   `inisetup.setup()` formats a blank block 0 (every byte 0xFF) and calls anything else
 *   corrupt. The lab decides from block 0 alone: a FAT or LittleFS whose other blocks
 *   are damaged mounts here (a board would find out), and the FAT boot sector's other
 *   fields are not checked.
 * - A FAT filesystem's os.rename onto an existing file removes the destination, then
 *   renames (vfs_fat.c): two steps a reset can fall between, which LittleFS's atomic
 *   rename is not (see micropython-board-worker-fat.mjs). Its other file semantics are the
 *   lab's (LittleFS's).
 * - The files themselves stay in the host folder; a format writes only a LittleFS v2
 *   superblock's first bytes into block 0 (revision count, tag, "littlefs", version, block
 *   size and count: no CRC, no root directory), enough for the next boot to mount.
 * - The SDK's wifi settings: the real SDK keeps them in its own format in the last
 *   sectors of the flash; the lab keeps the access point's part (active, SSID, password,
 *   auth mode) as JSON in the first of them (see simulated-esp8266.ts). The station's
 *   settings (which the SDK also saves, and joins again at boot) are not kept.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { BoardFilesystem, BoardFlash, BoardWifiSettings } from './micropython-board-types.js';

export const SECTOR_BYTES = 4096;
const MIB = 1024 * 1024;
/** network.AUTH_WPA_WPA2_PSK, what inisetup.wifi() gives the access point. */
const AUTH_WPA_WPA2_PSK = 4;

/**
 * The filesystem MicroPython 1.27 keeps on a flash of `sizeBytes` (flashbdev.py), or null
 * below 1 MiB. `userStart`: the build's esp.flash_user_start() (default: the build made
 * for that size, 0x100000 from 2 MiB, else 0x98000).
 */
export function micropythonFilesystemLayout(sizeBytes: number, userStart?: number): { startSector: number; blocks: number } | null {
  if (sizeBytes < MIB) return null;
  let startSector = (userStart ?? (sizeBytes >= 2 * MIB ? 0x100000 : 0x98000)) / SECTOR_BYTES;
  if (startSector < 256) startSector += 1;
  const blocks = Math.floor((sizeBytes - 20480) / SECTOR_BYTES) - startSector;
  return blocks > 0 ? { startSector, blocks } : null;
}

/** What `_boot.py` does with the area, from its block 0 (see the file comment). */
export function filesystemAtBoot(flash: BoardFlash): Exclude<BoardFilesystem, 'formatted'> | 'blank' {
  if (!flash.filesystem) return 'none';
  const block = Buffer.from(flash.readFirstBlock());
  if (block.toString('latin1', 8, 16) === 'littlefs') return 'mounted';
  if (block.length >= 512 && block[510] === 0x55 && block[511] === 0xaa) return 'mounted';
  return block.every((byte) => byte === 0xff) ? 'blank' : 'corrupt';
}

/** Which filesystem `vfs.mount` finds in the area (null: none it can mount). */
export function filesystemFormat(flash: BoardFlash): 'littlefs' | 'fat' | null {
  if (!flash.filesystem) return null;
  const block = Buffer.from(flash.readFirstBlock());
  if (block.toString('latin1', 8, 16) === 'littlefs') return 'littlefs';
  return block.length >= 512 && block[510] === 0x55 && block[511] === 0xaa ? 'fat' : null;
}

/** What a boot starts from, read from the flash as the chip starts (for the worker). */
export function flashAtBoot(flash: BoardFlash, uniqueId: string) {
  const state = filesystemAtBoot(flash);
  const wifiSettings = flash.readWifi() ?? sdkDefaultWifi(uniqueId);
  return {
    filesystem: { state, format: filesystemFormat(flash), ...flash.filesystem },
    wifiSettings,
    /** What the initial setup gives the access point (a first boot only). */
    setupWifi: state === 'blank' ? initialSetupWifi(uniqueId, wifiSettings) : undefined,
  };
}

/** The first bytes of a fresh LittleFS v2 superblock (block 0), the rest erased (0xFF). */
export function littlefsFirstBlock(blocks: number): Buffer {
  const block = Buffer.alloc(SECTOR_BYTES, 0xff);
  block.writeUInt32LE(1, 0); // revision count
  block.writeUInt32BE(0xf00ffff7, 4); // superblock tag (type 0x0ff, size 8), xor 0xffffffff
  block.write('littlefs', 8, 'latin1');
  block.writeUInt32BE(0x2fe00010, 16); // inline struct tag (size 24), xor the previous tag
  block.writeUInt32LE(0x00020001, 20); // disk version 2.1
  block.writeUInt32LE(SECTOR_BYTES, 24);
  block.writeUInt32LE(blocks, 28);
  block.writeUInt32LE(255, 32); // name_max
  block.writeUInt32LE(0x7fffffff, 36); // file_max
  block.writeUInt32LE(1022, 40); // attr_max
  return block;
}

/**
 * A FAT boot sector in block 0, as an older MicroPython release formatted the area (only
 * what the lab and the flasher look at: the jump, the OEM name and the signature).
 */
export function fatFirstBlock(): Buffer {
  const block = Buffer.alloc(SECTOR_BYTES, 0x00);
  block.set([0xeb, 0xfe, 0x90], 0);
  block.write('MSDOS5.0', 3, 'latin1');
  block[510] = 0x55;
  block[511] = 0xaa;
  return block;
}

/** The board's "chip id" in the lab: 4 bytes, stable per flash folder (machine.unique_id()). */
export function labUniqueId(folder: string): string {
  return createHash('sha256').update(path.resolve(folder)).digest('hex').slice(0, 8);
}

/** Last 3 bytes of the board's MAC addresses in the lab (as on an ESP8266: the chip id's). */
function macTail(uniqueId: string): string {
  return uniqueId.slice(2, 8);
}

/** The SDK's settings on a blank flash: its access point is on, open, named ESP_XXXXXX (assumed). */
export function sdkDefaultWifi(uniqueId: string): BoardWifiSettings {
  return { apActive: true, apSsid: `ESP_${macTail(uniqueId).toUpperCase()}`, apKey: '', apAuthmode: 0 };
}

/** What inisetup.wifi() sets on a first boot: MicroPython-xxxxxx, WPA/WPA2, password micropythoN. */
export function initialSetupWifi(uniqueId: string, previous: BoardWifiSettings): BoardWifiSettings {
  return { ...previous, apSsid: `MicroPython-${macTail(uniqueId)}`, apKey: 'micropythoN', apAuthmode: AUTH_WPA_WPA2_PSK };
}

/**
 * A board without a flash image (a plain lab board): the filesystem always mounts (its
 * first boot is long past; LittleFS, or FAT for a board an older release formatted), and
 * the wifi settings last as long as this object, from what a first boot left (access
 * point on, MicroPython-xxxxxx).
 */
export class MemoryBoardFlash implements BoardFlash {
  readonly filesystem = micropythonFilesystemLayout(4 * MIB);
  private wifi: BoardWifiSettings;

  constructor(
    uniqueId: string,
    readonly format: 'littlefs' | 'fat' = 'littlefs',
  ) {
    this.wifi = initialSetupWifi(uniqueId, sdkDefaultWifi(uniqueId));
  }

  readFirstBlock(): Uint8Array {
    return this.format === 'fat' ? fatFirstBlock() : littlefsFirstBlock(this.filesystem?.blocks ?? 0);
  }

  formatFilesystem(): void {
    // Block 0 always holds a filesystem here.
  }

  readWifi(): BoardWifiSettings {
    return { ...this.wifi };
  }

  writeWifi(settings: BoardWifiSettings): void {
    this.wifi = { ...settings };
  }
}

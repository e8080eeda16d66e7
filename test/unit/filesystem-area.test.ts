import { describe, expect, it } from 'vitest';
import {
  corruptFilesystemRegion,
  FILESYSTEM_SECTOR_BYTES,
  filesystemRegion,
  filesystemResetRange,
  inspectFilesystemArea,
  shouldEraseFilesystemArea,
} from '../../electron/manager/usb/filesystem-area.js';

const KB = 1024;
const MB = 1024 * 1024;

function sector(fill = 0xff): Buffer {
  return Buffer.alloc(FILESYSTEM_SECTOR_BYTES, fill);
}

/** Block 0 of a freshly formatted LittleFS v2: revision count, superblock tag, "littlefs", inline struct. */
function littlefsBlock0(): Buffer {
  const block = sector();
  block.writeUInt32LE(1, 0);
  block.writeUInt32BE(0xf00ffff7, 4);
  block.write('littlefs', 8, 'latin1');
  block.writeUInt32BE(0x2fe00010, 16);
  block.writeUInt32LE(0x00020001, 20);
  block.writeUInt32LE(4096, 24);
  return block;
}

/** A FAT boot sector as MicroPython's old FAT format wrote it: jump, OEM name, BPB, signature. */
function fatBootSector(): Buffer {
  const block = sector(0x00);
  block.set([0xeb, 0xfe, 0x90], 0);
  block.write('MSDOS5.0', 3, 'latin1');
  block.writeUInt16LE(4096, 11);
  block.write('FAT', 54, 'latin1');
  block[510] = 0x55;
  block[511] = 0xaa;
  return block;
}

describe('filesystemRegion: where MicroPython keeps its filesystem on an ESP8266', () => {
  it.each([
    ['1 MiB (FLASH_1M build, one sector kept for native code)', 1 * MB, 0x99000, 98],
    ['2 MiB', 2 * MB, 0x100000, 251],
    ['4 MiB', 4 * MB, 0x100000, 763],
    ['8 MiB', 8 * MB, 0x100000, 1787],
    ['16 MiB', 16 * MB, 0x100000, 3835],
  ])('%s', (_what, size, offset, blocks) => {
    const region = filesystemRegion(size)!;
    expect(region).toEqual({ offset, length: blocks * FILESYSTEM_SECTOR_BYTES });
    // It ends where the SDK's 20 KB of parameters begin.
    expect(region.offset + region.length).toBe(size - 20 * KB);
  });

  it('has none below 1 MiB, and follows the build when its user start is given', () => {
    expect(filesystemRegion(512 * KB)).toBeNull();
    expect(filesystemRegion(256 * KB)).toBeNull();
    // A 1 MiB build flashed on a 4 MiB chip: the filesystem starts where that build's ends.
    expect(filesystemRegion(4 * MB, { userStart: 0x98000 })).toEqual({ offset: 0x99000, length: 4 * MB - 20 * KB - 0x99000 });
    // A user start at or past sector 256 keeps no sector for native code.
    expect(filesystemRegion(4 * MB, { userStart: 0x200000 })).toEqual({ offset: 0x200000, length: 2 * MB - 20 * KB });
  });

  it('refuses sizes that are not whole sectors', () => {
    for (const size of [0, -4096, 1000, 4 * MB + 1, Number.NaN]) expect(() => filesystemRegion(size)).toThrow(RangeError);
    expect(() => filesystemRegion(4 * MB, { userStart: 0x100001 })).toThrow(RangeError);
  });
});

describe('inspectFilesystemArea: what MicroPython makes of the first sector', () => {
  it('blank flash (all 0xFF): a first boot', () => {
    expect(inspectFilesystemArea(sector())).toBe('blank');
  });

  it('a LittleFS v2 superblock ("littlefs" at offset 8): mounted', () => {
    expect(inspectFilesystemArea(littlefsBlock0())).toBe('littlefs');
  });

  it('a FAT boot sector (0x55 0xAA at 510): mounted as FAT', () => {
    expect(inspectFilesystemArea(fatBootSector())).toBe('fat');
  });

  it.each([
    ['zeros', sector(0x00)],
    [
      'one byte programmed',
      (() => {
        const s = sector();
        s[4095] = 0xfe;
        return s;
      })(),
    ],
    [
      'a SPIFFS page (NodeMCU, Arduino)',
      (() => {
        const s = sector();
        s.write('\x01\x00\x00\x00init.lua', 0, 'latin1');
        return s;
      })(),
    ],
    [
      '"littlefs" at the wrong offset (LittleFS v1 keeps it at 40)',
      (() => {
        const s = sector(0x00);
        s.write('littlefs', 40, 'latin1');
        return s;
      })(),
    ],
    [
      'the signature bytes swapped',
      (() => {
        const s = sector(0x00);
        s[510] = 0xaa;
        s[511] = 0x55;
        return s;
      })(),
    ],
  ])('foreign data (%s): the corrupt-filesystem loop', (_what, bytes) => {
    expect(inspectFilesystemArea(bytes)).toBe('foreign');
  });

  it('takes exactly one sector, from any view of the bytes', () => {
    expect(() => inspectFilesystemArea(Buffer.alloc(512, 0xff))).toThrow(RangeError);
    expect(() => inspectFilesystemArea(Buffer.alloc(8192, 0xff))).toThrow(RangeError);
    const backing = Buffer.concat([Buffer.alloc(100, 0x00), littlefsBlock0()]);
    expect(inspectFilesystemArea(new Uint8Array(backing.buffer, backing.byteOffset + 100, FILESYSTEM_SECTOR_BYTES))).toBe('littlefs');
  });
});

describe('what the flasher does with it', () => {
  it('erases foreign data only, and then the first two sectors', () => {
    expect(shouldEraseFilesystemArea('foreign')).toBe(true);
    for (const state of ['blank', 'littlefs', 'fat'] as const) expect(shouldEraseFilesystemArea(state)).toBe(false);
    const region = filesystemRegion(4 * MB)!;
    expect(filesystemResetRange(region)).toEqual({ offset: 0x100000, length: 8192 });
    expect(filesystemResetRange({ offset: 0x99000, length: 4096 })).toEqual({ offset: 0x99000, length: 4096 });
  });

  it("reads the region out of MicroPython's corrupt-filesystem message", () => {
    const printed =
      'ets Jan  8 2013,rst cause:2\r\nThe filesystem starting at sector 256 with size 763 sectors looks corrupt.\r\n' +
      'You may want to make a flash snapshot and try to recover it. Otherwise,\r\n';
    expect(corruptFilesystemRegion(printed)).toEqual(filesystemRegion(4 * MB));
    expect(corruptFilesystemRegion('The filesystem starting at sector 153 with size 98 sectors looks corrupt.')).toEqual(filesystemRegion(1 * MB));
    expect(corruptFilesystemRegion('MicroPython v1.27.0 on 2025-12-10; ESP module with ESP8266\r\n>>> ')).toBeNull();
    expect(corruptFilesystemRegion('The filesystem starting at sector 256 with size 0 sectors looks corrupt.')).toBeNull();
  });
});

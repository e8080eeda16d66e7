/**
 * The SPI NOR flash of a simulated board, kept in a file so tests can look at what landed.
 * Erased state is 0xFF; programming can only clear bits (new = old AND data), as on a real
 * NOR chip, so writing over data that was not erased first gives wrong bytes. Erases work in
 * 4 KB sectors. The JEDEC id (what the RDID command 0x9F returns) follows the size.
 */
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';

export const SECTOR_SIZE = 0x1000;
export const BLOCK_SIZE = 0x10000;
export const PAGE_SIZE = 256;

/**
 * How long the chip is busy, by default a Winbond W25Q32 (the 4 MB part on most ESP-12
 * modules); datasheet AC characteristics (W25Q32FV / W25Q32JV), typical / maximum:
 *   page program, 256 B   tPP   0.7 ms (FV; 0.4 ms JV) / 3 ms
 *   sector erase, 4 KB    tSE   45 ms / 400 ms
 *   block erase, 64 KB    tBE2  150 ms / 2 s      (32 KB: 120 ms / 1.6 s, not used here)
 *   chip erase            tCE   10 s / 50 s       (for the 4 MB part)
 * Programming 4 KB is 16 page programs plus clocking the bytes in (256 B at 40 MHz on one
 * line: 0.05 ms a page): 0.75 ms a page, 12 ms a sector. Chip erase scales with the size
 * (2.5 s per MB: a W25Q16 takes about half a W25Q32's time). MD5 (the stub reads 4 KB at a
 * time over SPI and hashes it on the CPU) is an estimate, not a datasheet figure: 2 ms per
 * 4 KB, about 2 MB/s.
 */
export interface FlashTiming {
  /** One 4 KB sector erase. */
  sectorEraseMs: number;
  /** One 64 KB block erase (the stub and the ROM use it for aligned 64 KB runs). */
  blockEraseMs: number;
  /** Programming 4 KB (16 pages). */
  sectorWriteMs: number;
  /** Erasing the whole chip, per MB of flash. */
  chipEraseMsPerMb: number;
  /** Reading and hashing 4 KB for SPI_FLASH_MD5. */
  md5SectorMs: number;
}

export const W25Q32_TIMING: Readonly<FlashTiming> = Object.freeze({
  sectorEraseMs: 45,
  blockEraseMs: 150,
  sectorWriteMs: 12,
  chipEraseMsPerMb: 2_500,
  md5SectorMs: 2,
});

/** For tests that are not about timing: the same work, about 20 times faster. */
export const FAST_FLASH_TIMING: Readonly<FlashTiming> = Object.freeze({
  sectorEraseMs: 2,
  blockEraseMs: 8,
  sectorWriteMs: 0.5,
  chipEraseMsPerMb: 100,
  md5SectorMs: 0.1,
});

/**
 * What erasing `sectors` sectors from `firstSector` costs when 64 KB-aligned runs of 16
 * sectors go as block erases and the rest as sector erases (esptool's stub, the ROM's
 * SPIEraseArea).
 */
export function eraseCostMs(firstSector: number, sectors: number, timing: FlashTiming): number {
  let cost = 0;
  for (let sector = firstSector, left = sectors; left > 0;) {
    const whole = sector % 16 === 0 && left >= 16;
    cost += whole ? timing.blockEraseMs : timing.sectorEraseMs;
    sector += whole ? 16 : 1;
    left -= whole ? 16 : 1;
  }
  return cost;
}

/** Programming `bytes` (whole pages). */
export function programCostMs(bytes: number, timing: FlashTiming): number {
  return (Math.ceil(bytes / PAGE_SIZE) * timing.sectorWriteMs * PAGE_SIZE) / SECTOR_SIZE;
}

export class FlashRangeError extends Error {
  override name = 'FlashRangeError';
}

/** JEDEC capacity byte for a size (0x14 = 1 MB … 0x18 = 16 MB), as in esptool's table. */
export function jedecCapacityByte(sizeBytes: number): number {
  const log2 = Math.log2(sizeBytes);
  if (!Number.isInteger(log2) || log2 < 18 || log2 > 24) {
    throw new RangeError(`flash size must be a power of two from 256 KB to 16 MB, not ${sizeBytes}`);
  }
  return log2; // 2^20 = 1 MB → 0x14, 2^22 = 4 MB → 0x16
}

/**
 * The 24-bit id RDID returns, as the low three bytes of SPI W0: manufacturer, memory type,
 * capacity. Default manufacturer 0xEF / type 0x40 is a Winbond W25Qxx, common on ESP-12 modules.
 */
export function jedecIdForSize(sizeBytes: number, manufacturer = 0xef, memoryType = 0x40): number {
  return (manufacturer | (memoryType << 8) | (jedecCapacityByte(sizeBytes) << 16)) >>> 0;
}

export interface FlashChipOptions {
  /** File that holds the flash contents; created erased if missing. */
  path: string;
  /** Chip size in bytes (default 4 MB). */
  sizeBytes?: number;
  /** Override the JEDEC id (default: a Winbond part of that size). */
  jedecId?: number;
}

export class FlashChip {
  readonly path: string;
  readonly size: number;
  readonly jedecId: number;
  private fd: number | undefined;

  constructor(options: FlashChipOptions) {
    this.path = options.path;
    this.size = options.sizeBytes ?? 4 * 1024 * 1024;
    this.jedecId = options.jedecId ?? jedecIdForSize(this.size);
    const fresh = !existsSync(this.path);
    this.fd = openSync(this.path, fresh ? 'w+' : 'r+');
    const current = fstatSync(this.fd).size;
    if (fresh || current === 0) {
      this.fillErased(0, this.size);
    } else if (current !== this.size) {
      closeSync(this.fd);
      this.fd = undefined;
      throw new RangeError(`${this.path} holds ${current} bytes, but the simulated flash is ${this.size} bytes`);
    }
  }

  read(offset: number, length: number): Buffer {
    this.checkRange(offset, length);
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.handle(), out, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return out;
  }

  /** Programs bytes: every bit that is 0 in `data` becomes 0 in the flash. */
  program(offset: number, data: Uint8Array): void {
    this.checkRange(offset, data.length);
    const current = this.read(offset, data.length);
    for (let i = 0; i < data.length; i++) current[i] = current[i]! & data[i]!;
    writeSync(this.handle(), current, 0, current.length, offset);
  }

  /** Erases whole sectors covering [offset, offset + length); returns how many. */
  erase(offset: number, length: number): number {
    if (offset % SECTOR_SIZE !== 0) throw new FlashRangeError(`erase must start on a sector boundary, not 0x${offset.toString(16)}`);
    const sectors = Math.ceil(length / SECTOR_SIZE);
    this.checkRange(offset, sectors * SECTOR_SIZE);
    this.fillErased(offset, sectors * SECTOR_SIZE);
    return sectors;
  }

  eraseChip(): number {
    this.fillErased(0, this.size);
    return this.size / SECTOR_SIZE;
  }

  md5(offset: number, length: number): Buffer {
    this.checkRange(offset, length);
    const hash = createHash('md5');
    const chunk = 64 * 1024;
    for (let at = 0; at < length; at += chunk) hash.update(this.read(offset + at, Math.min(chunk, length - at)));
    return hash.digest();
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private fillErased(offset: number, length: number): void {
    const fd = this.handle();
    const block = Buffer.alloc(Math.min(length, 256 * 1024), 0xff);
    for (let at = 0; at < length; at += block.length) {
      writeSync(fd, block, 0, Math.min(block.length, length - at), offset + at);
    }
    if (offset + length >= this.size) ftruncateSync(fd, this.size);
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new FlashRangeError(`0x${offset.toString(16)}+${length} is outside the ${this.size / 1024} KB flash`);
    }
  }

  private handle(): number {
    if (this.fd === undefined) throw new Error(`flash ${this.path} is closed`);
    return this.fd;
  }
}

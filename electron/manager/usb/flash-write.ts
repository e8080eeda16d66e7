/**
 * Writing an image with the esptool stub through esptool-js: erase (optional), compressed
 * blocks, MD5 check. Split out of esp-flasher.ts, which decides what to write and when.
 *
 * Timeouts follow esptool (esptool/cmds.py write_flash, loader.py): the stub acknowledges
 * a block when it has received it and then inflates, erases and writes it while the next
 * block arrives, so the answer to block N+1 waits for block N's flash work. That work is
 * bounded by ERASE_WRITE_TIMEOUT_PER_MB (40 s per MB written) of what the block inflates
 * to, which esptool computes by inflating the blocks one by one — a 16 KB block of padding
 * can inflate to hundreds of KB. We add one 64 KB erase block (the stub erases ahead to
 * the end of the sector it writes, a whole 64 KB block when aligned) and the block's time
 * on the wire (our write resolves once the OS has the bytes, not once they left).
 * A chip erase gets esptool's CHIP_ERASE_TIMEOUT (120 s; a W25Q32 takes 10 s typ, 50 s max).
 */
import { createHash } from 'node:crypto';
import { constants as zlibConstants, deflateSync, inflateSync } from 'node:zlib';
import type { ESPLoader } from 'esptool-js';
import type { FirmwareImageInfo, FlashMode } from './firmware-image.js';

/** esptool's ERASE_WRITE_TIMEOUT_PER_MB: 40 s for each MB (10^6 bytes) erased and written. */
export const ERASE_WRITE_MS_PER_MB = 40_000;
/** esptool's DEFAULT_TIMEOUT. */
export const DEFAULT_TIMEOUT_MS = 3_000;
/** esptool's ERASE_REGION_TIMEOUT_PER_MB: 30 s for each MB erased. */
export const ERASE_REGION_MS_PER_MB = 30_000;
/** The stub's ERASE_REGION command (esptool's ESP_ERASE_REGION). */
const ERASE_REGION_OP = 0xd1;
/** The largest erase the stub does ahead of the data it writes. */
const ERASE_BLOCK_BYTES = 64 * 1024;

export interface WriteProgress {
  phase: 'erase' | 'write' | 'verify';
  message: string;
  done?: number;
  total?: number;
}

/** What we use of esptool-js's loader beyond its typed API. */
interface LoaderInternals {
  FLASH_WRITE_SIZE: number;
  _updateImageFlashParams(image: Uint8Array, address: number, flashMode: string, flashFreq: string, flashSize: string): Promise<Uint8Array>;
}

export interface WriteImageOptions {
  loader: ESPLoader;
  image: Buffer;
  info: FirmwareImageInfo;
  mode: FlashMode;
  /** esptool's name of the detected flash size, e.g. '4MB'. */
  flashSizeName: string;
  /** The line rate now (for the blocks' time on the wire). */
  baud: number;
  erase?: boolean;
  onProgress: (progress: WriteProgress) => void;
  /** Thrown on an MD5 mismatch. */
  verifyError: (message: string) => Error;
}

/** Bytes each compressed block inflates to (esptool inflates them one by one for this). */
export function inflatedBlockSizes(compressed: Buffer, blockSize: number): number[] {
  const sizes: number[] = [];
  let before = 0;
  for (let end = blockSize; end - blockSize < compressed.length; end += blockSize) {
    const prefix = compressed.subarray(0, Math.min(end, compressed.length));
    const total = inflateSync(prefix, { finishFlush: zlibConstants.Z_SYNC_FLUSH }).length;
    sizes.push(total - before);
    before = total;
  }
  return sizes;
}

/** How long to wait for the answer to a block whose predecessor inflated to `previous` bytes. */
export function blockTimeoutMs(previous: number, current: number, blockBytes: number, baud: number): number {
  const work = (ERASE_WRITE_MS_PER_MB * (Math.max(previous, current) + ERASE_BLOCK_BYTES)) / 1_000_000;
  const wire = (blockBytes * 10 * 1000) / baud;
  return Math.ceil(Math.max(DEFAULT_TIMEOUT_MS, work) + wire);
}

export async function writeImage(options: WriteImageOptions): Promise<void> {
  const { loader, info, mode, onProgress } = options;
  const internals = loader as unknown as LoaderInternals;
  if (options.erase) {
    onProgress({ phase: 'erase', message: 'erasing the flash (10 s or more for 4 MB)' });
    await loader.eraseFlash();
  }
  onProgress({ phase: 'write', message: `writing ${info.size} bytes in flash mode ${mode}` });
  // The header carries the flash mode we write and the size the chip reported ('keep' has
  // left some ESP-01s unbootable); esptool-js's own function patches it.
  const image = await internals._updateImageFlashParams(new Uint8Array(options.image), 0, mode, 'keep', options.flashSizeName);
  // Compressed and sent block by block here rather than by esptool-js's writeFlash, which
  // inflates every block again to report progress (about 60 ms a block: 1.5 s of 600 KB).
  const compressed = deflateSync(image, { level: 9 });
  const blockSize = internals.FLASH_WRITE_SIZE;
  const inflated = inflatedBlockSizes(compressed, blockSize);
  await loader.flashDeflBegin(image.length, compressed.length, 0);
  for (let seq = 0; seq < inflated.length; seq++) {
    const timeout = blockTimeoutMs(inflated[seq - 1] ?? 0, inflated[seq]!, blockSize + 40, options.baud);
    await loader.flashDeflBlock(compressed.subarray(seq * blockSize, (seq + 1) * blockSize), seq, timeout);
    onProgress({ phase: 'write', message: 'writing (compressed)', done: Math.min((seq + 1) * blockSize, compressed.length), total: compressed.length });
  }
  // FLASH_DEFL_END is answered once the last block is in the flash.
  await loader.flashDeflFinish(false, blockTimeoutMs(inflated.at(-1) ?? 0, 0, 0, options.baud));
  onProgress({ phase: 'verify', message: 'checking the MD5 of what was written' });
  const expected = createHash('md5').update(image).digest('hex');
  const actual = String(await loader.flashMd5sum(0, image.length));
  if (actual !== expected) {
    throw options.verifyError(
      `the flash does not hold what was written (MD5 ${actual}, expected ${expected}); try again, and if it keeps failing the board's flash may be faulty`,
    );
  }
}

/**
 * Erases `length` bytes at `offset` (both whole 4 KB sectors) with the stub's
 * ERASE_REGION, esptool's `erase_region`: answered once the sectors are erased.
 */
export async function eraseRegion(loader: ESPLoader, offset: number, length: number): Promise<void> {
  if (offset % 4096 !== 0 || length % 4096 !== 0 || length <= 0) throw new RangeError(`erase whole 4 KB sectors, not ${length} bytes at ${offset}`);
  const data = new Uint8Array(8);
  const view = new DataView(data.buffer);
  view.setUint32(0, offset, true);
  view.setUint32(4, length, true);
  const timeout = Math.max(DEFAULT_TIMEOUT_MS, Math.ceil((ERASE_REGION_MS_PER_MB * length) / 1_000_000));
  await loader.checkCommand('erase region', ERASE_REGION_OP, data, 0, 0, timeout);
}

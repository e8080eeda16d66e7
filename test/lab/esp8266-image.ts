/**
 * Synthetic ESP8266 firmware images for trying the flasher and for benchmarks: a valid
 * image header and segments (magic 0xE9), filled with bytes that compress about as well
 * as a MicroPython build does (a ~600 KB image deflates to roughly 65 %). With `variant`,
 * the image carries the banner line MicroPython compiles into that build (its board name
 * tells the build: "ESP module", "ESP module (1M)", "ESP module (512K)").
 */
import { createHash } from 'node:crypto';
import type { FlashMode } from '../../electron/manager/usb/firmware-image.js';

const MODES: Record<FlashMode, number> = { qio: 0, qout: 1, dio: 2, dout: 3 };

/** Deterministic pseudo-random bytes (a counter hashed), so images are reproducible. */
function noise(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let offset = 0;
  for (let block = 0; offset < length; block++) {
    const digest = createHash('sha256').update(`${seed}:${block}`).digest();
    digest.copy(out, offset);
    offset += digest.length;
  }
  return out;
}

/**
 * "Code-like" filler: mostly fresh noise, with runs copied from earlier in the buffer
 * (what a compressor finds in machine code and string tables).
 */
function filler(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  const fresh = noise(length, seed);
  const picks = noise(length, seed + 1);
  let position = 0;
  let cursor = 0;
  while (position < length) {
    const pick = picks[position % picks.length]!;
    const run = 8 + (pick & 31);
    // About half the runs are copies and fresh bytes carry 6 bits: together that deflates
    // to about 65 %, like a MicroPython build (600 KB → about 390 KB).
    if (position > 1024 && pick < 128) {
      // Copy a run from somewhere earlier.
      const from = (picks.readUInt16LE((position + 2) % (picks.length - 2)) * 7) % (position - run);
      out.copy(out, position, from, from + Math.min(run, length - position));
    } else {
      for (let i = 0; i < Math.min(run, length - position); i++) out[position + i] = fresh[(cursor + i) % fresh.length]! & 0x3f;
      cursor = (cursor + run) % (fresh.length - 64);
    }
    position += run;
  }
  return out;
}

export type SyntheticVariant = 'GENERIC' | 'FLASH_1M' | 'FLASH_512K';

const BOARD_NAMES: Record<SyntheticVariant, string> = { GENERIC: 'ESP module', FLASH_1M: 'ESP module (1M)', FLASH_512K: 'ESP module (512K)' };

/** The banner line of MicroPython 1.27.0's build `variant`. */
export function micropythonBannerLine(variant: SyntheticVariant): string {
  return `MicroPython v1.27.0 on 2025-12-09; ${BOARD_NAMES[variant]} with ESP8266`;
}

export interface SyntheticImageOptions {
  /** Total size in bytes (default 600 KB). */
  size?: number;
  flashMode?: FlashMode;
  seed?: number;
  /** Carry this MicroPython build's banner line (in the irom0 text, as a build does). */
  variant?: SyntheticVariant;
}

export function makeEsp8266Image(options: SyntheticImageOptions = {}): Buffer {
  const size = options.size ?? 600 * 1024;
  const header = Buffer.from([0xe9, 2, MODES[options.flashMode ?? 'qio'], 0x40, 0, 0, 0, 0]);
  header.writeUInt32LE(0x40100004, 4); // entry point in IRAM, like the SDK's
  const iramLength = 28 * 1024;
  const dramLength = 4 * 1024;
  const segment = (address: number, data: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(address, 0);
    head.writeUInt32LE(data.length, 4);
    return Buffer.concat([head, data]);
  };
  const seed = options.seed ?? 1;
  const iram = filler(iramLength, seed);
  const dram = filler(dramLength, seed + 10);
  const first = Buffer.concat([header, segment(0x40100000, iram), segment(0x3ffe8000, dram)]);
  // Padding to 16 bytes whose last byte is the checksum the ROM checks: 0xEF XOR every
  // byte of the segments' data. Then the rest of the build (the irom0 text).
  let checksum = 0xef;
  for (const data of [iram, dram]) for (const byte of data) checksum ^= byte;
  const tail = Buffer.alloc(16 - (first.length % 16));
  tail[tail.length - 1] = checksum;
  const padded = Buffer.concat([first, tail]);
  if (size < padded.length) throw new RangeError(`an image needs at least ${padded.length} bytes`);
  const image = Buffer.concat([padded, filler(size - padded.length, seed + 20)]);
  if (options.variant) {
    const banner = Buffer.from(`${micropythonBannerLine(options.variant)}\0`, 'latin1');
    const at = Math.min(image.length - banner.length, padded.length + 4096);
    if (at < padded.length) throw new RangeError('the image is too small to carry a banner');
    banner.copy(image, at);
  }
  return image;
}

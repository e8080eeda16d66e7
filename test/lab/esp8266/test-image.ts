/**
 * A small, valid ESP8266 firmware image for the simulator's tests, laid out like a
 * MicroPython build: an esptool "v1" image at 0 (magic 0xE9, IRAM and DRAM segments, XOR
 * checksum in the last byte of its 16-byte block), padding to 0x9000, then the irom0 text
 * (here `iromBytes` of code-like filler that deflates to about half).
 */
import { deflateSync } from 'node:zlib';
import type { FlashMode } from './boot-console.js';

const MODE_BYTE: Record<FlashMode, number> = { qio: 0, qout: 1, dio: 2, dout: 3 };
export const IROM_OFFSET = 0x9000;

/** Deterministic generator (xorshift32), so images are the same on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

/** Tokens from a small vocabulary with some fresh bytes mixed in: machine-code-like. */
function codeLike(length: number, seed: number): Buffer {
  const next = random(seed);
  const vocabulary = Array.from({ length: 512 }, () => Buffer.from(Array.from({ length: 3 + (next() % 10) }, () => next() & 0xff)));
  const out = Buffer.alloc(length);
  let at = 0;
  while (at < length) {
    const pick = next();
    const token = pick % 8 < 3 ? Buffer.from([next() & 0xff, next() & 0xff]) : vocabulary[pick % vocabulary.length]!;
    at += token.copy(out, at);
  }
  return out;
}

export interface TestImageOptions {
  iromBytes?: number;
  flashMode?: FlashMode;
  /** Header byte 3: flash size (high nibble) and frequency (low nibble); default 0x00 = 512 KB, 40 MHz. */
  sizeFreq?: number;
  seed?: number;
}

export function makeTestImage(options: TestImageOptions = {}): Buffer {
  const seed = options.seed ?? 7;
  const segments = [
    { address: 0x40100000, data: codeLike(24 * 1024, seed) },
    { address: 0x3ffe8000, data: codeLike(2 * 1024 + 36, seed + 1) },
  ];
  const parts: Buffer[] = [];
  const header = Buffer.from([0xe9, segments.length, MODE_BYTE[options.flashMode ?? 'qio'], options.sizeFreq ?? 0x00, 0, 0, 0, 0]);
  header.writeUInt32LE(0x40100004, 4);
  parts.push(header);
  let checksum = 0xef;
  for (const segment of segments) {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(segment.address, 0);
    head.writeUInt32LE(segment.data.length, 4);
    parts.push(head, segment.data);
    for (const byte of segment.data) checksum ^= byte;
  }
  let length = parts.reduce((sum, part) => sum + part.length, 0);
  const padding = 15 - (length % 16);
  parts.push(Buffer.alloc(padding), Buffer.from([checksum]));
  length += padding + 1;
  parts.push(Buffer.alloc(IROM_OFFSET - length, 0xff), codeLike(options.iromBytes ?? 200 * 1024, seed + 2));
  return Buffer.concat(parts);
}

/** What esptool-js sends over the wire: zlib level 9. */
export function compressedSize(image: Uint8Array): number {
  return deflateSync(image, { level: 9 }).length;
}

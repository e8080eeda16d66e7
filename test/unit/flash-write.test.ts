/**
 * How long the flasher waits for each compressed block (esptool's rule): the stub answers
 * block N+1 once block N is erased and written, and a 16 KB block can inflate to far more
 * than 64 KB (padding compresses to almost nothing).
 */
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { blockTimeoutMs, DEFAULT_TIMEOUT_MS, ERASE_WRITE_MS_PER_MB, inflatedBlockSizes } from '../../electron/manager/usb/flash-write.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';

describe('per-block timeouts', () => {
  it('knows what each compressed block inflates to', () => {
    const image = Buffer.concat([makeEsp8266Image({ size: 64 * 1024 }), Buffer.alloc(1024 * 1024, 0xff), makeEsp8266Image({ size: 64 * 1024, seed: 9 })]);
    const compressed = deflateSync(image, { level: 9 });
    const sizes = inflatedBlockSizes(compressed, 0x4000);
    expect(sizes).toHaveLength(Math.ceil(compressed.length / 0x4000));
    expect(sizes.reduce((sum, size) => sum + size, 0)).toBe(image.length);
    expect(Math.max(...sizes)).toBeGreaterThan(1024 * 1024); // the padding rides in one block
  });

  it('covers erasing and writing what the previous block inflated to, plus its own time on the wire', () => {
    // A block of code-like data (~25 KB) at 460800: 40 s/MB of 25 KB + a 64 KB erase, plus 0.36 s on the wire.
    expect(blockTimeoutMs(25_000, 25_000, 0x4000, 460_800)).toBe(Math.ceil((ERASE_WRITE_MS_PER_MB * (25_000 + 65_536)) / 1e6 + (0x4000 * 10 * 1000) / 460_800));
    // Nothing to write: esptool's 3 s floor.
    expect(blockTimeoutMs(0, 0, 0, 460_800)).toBe(DEFAULT_TIMEOUT_MS);
    // A block that inflated to 1 MB: 40 s per MB of it, plus one 64 KB erase ahead, plus the wire.
    const big = blockTimeoutMs(1 << 20, 20_000, 0x4000, 115_200);
    expect(big).toBeGreaterThan((ERASE_WRITE_MS_PER_MB * (1 << 20)) / 1e6);
    expect(big).toBeGreaterThan(40_000);
  });
});

import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { flashModeWorks, inspectBootImage, resampleUart } from './boot-console.js';
import { FlashChip, FlashRangeError, jedecIdForSize } from './flash-chip.js';
import { SlipDecoder, slipEncode } from './slip.js';
import { removeTempDirs, tempDir } from './host-tools.js';
import { makeTestImage } from './test-image.js';

afterAll(removeTempDirs);

describe('SLIP', () => {
  it('round-trips every byte value, escaping 0xC0 and 0xDB', () => {
    const packet = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const framed = slipEncode(packet);
    expect(framed[0]).toBe(0xc0);
    expect(framed.at(-1)).toBe(0xc0);
    expect(framed.length).toBe(256 + 2 + 2); // two escaped bytes
    expect(framed.subarray(1, -1).includes(0xc0)).toBe(false);
    expect([...slipEncode(Buffer.from([0xc0, 0xdb]))]).toEqual([0xc0, 0xdb, 0xdc, 0xdb, 0xdd, 0xc0]);
    expect(new SlipDecoder().push(framed)).toEqual([packet]);
  });

  it('decodes frames split anywhere, skips noise and empty frames, drops a frame with a bad escape', () => {
    const a = Buffer.from([1, 0xc0, 2, 0xdb]);
    const b = Buffer.from([3, 4]);
    const stream = Buffer.concat([
      Buffer.from('boot noise'),
      slipEncode(a),
      Buffer.from([0xc0, 0xc0]),
      Buffer.from([0xc0, 9, 0xdb, 0x01, 9, 0xc0]),
      slipEncode(b),
    ]);
    for (const step of [1, 3, 7, stream.length]) {
      const decoder = new SlipDecoder();
      const frames: Buffer[] = [];
      for (let at = 0; at < stream.length; at += step) frames.push(...decoder.push(stream.subarray(at, at + step)));
      expect(frames).toEqual([a, b]);
      expect(decoder.droppedFrames).toBe(1);
      expect(decoder.noiseBytes).toBe('boot noise'.length);
    }
  });
});

describe('flash chip', () => {
  const chips: FlashChip[] = [];
  afterEach(() => chips.splice(0).forEach((chip) => chip.close()));
  const open = async (sizeBytes?: number) => {
    const chip = new FlashChip({ path: path.join(await tempDir(), 'flash.bin'), sizeBytes });
    chips.push(chip);
    return chip;
  };

  it('starts erased, programs like NOR (bits only clear), erases by sector, hashes a region', async () => {
    const chip = await open();
    expect(chip.size).toBe(4 * 1024 * 1024);
    expect(chip.read(0, 16).every((b) => b === 0xff)).toBe(true);
    chip.program(0x1000, Buffer.from([0x0f, 0xf0, 0x55]));
    chip.program(0x1000, Buffer.from([0xff, 0x0f, 0xaa])); // without an erase: AND
    expect([...chip.read(0x1000, 3)]).toEqual([0x0f, 0x00, 0x00]);
    expect(chip.erase(0x1000, 1)).toBe(1);
    expect([...chip.read(0x1000, 3)]).toEqual([0xff, 0xff, 0xff]);
    chip.program(0x2000, Buffer.from('hello'));
    const expected = createHash('md5')
      .update(Buffer.concat([Buffer.from('hello'), Buffer.alloc(0x3000 - 5, 0xff)]))
      .digest();
    expect(chip.md5(0x2000, 0x3000)).toEqual(expected);
    expect(() => chip.erase(0x1001, 10)).toThrow(FlashRangeError);
    expect(() => chip.program(chip.size - 2, Buffer.alloc(4))).toThrow(FlashRangeError);
    expect(() => chip.md5(chip.size - 2, 4)).toThrow(FlashRangeError);
  });

  it('reports a JEDEC id whose capacity byte matches 1, 2 and 4 MB', async () => {
    expect(jedecIdForSize(1 << 20)).toBe(0x1440ef);
    expect(jedecIdForSize(2 << 20)).toBe(0x1540ef);
    expect(jedecIdForSize(4 << 20)).toBe(0x1640ef);
    expect((await open(1 << 20)).jedecId).toBe(0x1440ef);
    expect(() => jedecIdForSize(3 << 20)).toThrow(RangeError);
  });

  it('refuses an existing file of the wrong size', async () => {
    const file = path.join(await tempDir(), 'small.bin');
    await writeFile(file, Buffer.alloc(1000));
    expect(() => new FlashChip({ path: file })).toThrow(/holds 1000 bytes/);
  });
});

describe('boot console', () => {
  it('74880-baud output read at 115200 is garbage; at the same rate it is the text', () => {
    const text = Buffer.from('\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\n', 'latin1');
    expect(resampleUart(text, 115200, 115200)).toEqual(text);
    const seen = resampleUart(text, 74880, 115200);
    expect(seen.length).toBeGreaterThan(text.length / 2);
    expect(seen.toString('latin1')).not.toContain('ets Jan');
  });

  it('checks an image like the ROM: magic, segments, checksum, flash mode', () => {
    const image = makeTestImage({ iromBytes: 4096, flashMode: 'dio' });
    const read = (data: Buffer) => (offset: number, length: number) => data.subarray(offset, offset + length);
    const good = inspectBootImage(read(image), image.length);
    expect(good).toMatchObject({ valid: true, flashMode: 'dio', entry: 0x40100004 });
    const corrupted = Buffer.from(image);
    corrupted[100] = corrupted[100]! ^ 0x01;
    expect(inspectBootImage(read(corrupted), image.length)).toMatchObject({ valid: false, reason: 'bad-checksum' });
    expect(inspectBootImage(read(Buffer.alloc(64, 0xff)), 64)).toMatchObject({ valid: false, reason: 'no-image' });
    expect(flashModeWorks('qio', 'dio')).toBe(false);
    expect(flashModeWorks('qout', 'dio')).toBe(false);
    expect(flashModeWorks('dio', 'dio')).toBe(true);
    expect(flashModeWorks('dout', 'dio')).toBe(true);
    expect(flashModeWorks('dio', 'dout')).toBe(false);
    expect(flashModeWorks('qio', undefined)).toBe(true);
  });
});

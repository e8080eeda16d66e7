/**
 * The committed icons (scripts/make-icons.mjs writes them; release machines have no
 * Chromium): each exists, is a PNG of the size its platform asks for, and the .ico and
 * .icns hold PNG entries of the sizes they claim. Reads the files only, no browser.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const TRAY_STATES = ['stopped', 'starting', 'online', 'offline', 'error'];

/** Width and height from a PNG's IHDR chunk (it always comes first, right after the signature). */
function pngSize(data: Buffer, what: string): { width: number; height: number } {
  expect(data.subarray(0, 8).equals(PNG_SIGNATURE), `${what} is a PNG`).toBe(true);
  expect(data.toString('latin1', 12, 16), `${what} starts with IHDR`).toBe('IHDR');
  return { width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
}

const read = (relative: string) => readFileSync(path.join(root, relative));

describe('committed icons', () => {
  it('build/icon.png is the 1024 px app icon', () => {
    expect(pngSize(read('build/icon.png'), 'build/icon.png')).toEqual({ width: 1024, height: 1024 });
  });

  it.each([16, 32, 48, 64, 128, 256, 512])('build/icons/%ix%i.png (Linux icon set) has that size', (size) => {
    const file = `build/icons/${size}x${size}.png`;
    expect(pngSize(read(file), file)).toEqual({ width: size, height: size });
  });

  it.each(TRAY_STATES)('tray-%s is 16 px, with a 32 px @2x beside it', (state) => {
    expect(pngSize(read(`build/icons/tray-${state}.png`), state)).toEqual({ width: 16, height: 16 });
    expect(pngSize(read(`build/icons/tray-${state}@2x.png`), `${state}@2x`)).toEqual({ width: 32, height: 32 });
  });

  it('the tray states look different from each other (each has its own dot)', () => {
    const images = TRAY_STATES.map((state) => read(`build/icons/tray-${state}.png`).toString('base64'));
    expect(new Set(images).size).toBe(TRAY_STATES.length);
  });

  it('build/icon.ico holds PNG entries from 16 to 256 px (Windows and the installer)', () => {
    const ico = read('build/icon.ico');
    expect([ico.readUInt16LE(0), ico.readUInt16LE(2)]).toEqual([0, 1]);
    const sizes: number[] = [];
    for (let index = 0; index < ico.readUInt16LE(4); index++) {
      const at = 6 + index * 16;
      const size = ico.readUInt8(at) || 256; // 0 means 256
      const png = ico.subarray(ico.readUInt32LE(at + 12), ico.readUInt32LE(at + 12) + ico.readUInt32LE(at + 8));
      expect(pngSize(png, `ico entry ${size}`)).toEqual({ width: size, height: size });
      sizes.push(size);
    }
    expect(sizes).toEqual([16, 24, 32, 48, 64, 128, 256]);
  });

  it('build/icon.icns holds PNG entries ic07–ic14 (128 to 1024 px) and its length adds up', () => {
    const icns = read('build/icon.icns');
    expect(icns.toString('latin1', 0, 4)).toBe('icns');
    expect(icns.readUInt32BE(4)).toBe(icns.length);
    const expected: Record<string, number> = { ic07: 128, ic08: 256, ic09: 512, ic10: 1024, ic11: 32, ic12: 64, ic13: 256, ic14: 512 };
    const found: Record<string, number> = {};
    for (let at = 8; at < icns.length;) {
      const type = icns.toString('latin1', at, at + 4);
      const length = icns.readUInt32BE(at + 4);
      found[type] = pngSize(icns.subarray(at + 8, at + length), type).width;
      at += length;
    }
    expect(found).toEqual(expected);
  });
});

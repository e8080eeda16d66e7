// Draws the tray's state icons (build/icons/tray-<state>.png, 16 px, and @2x, 32 px) from
// shapes, so they can be changed here and written again: `node scripts/tray-icons.mjs`.
// Each state has its own colour *and* its own mark, so it reads without colour too:
// online ● green, offline ○ amber, starting ⋯ blue, stopped ■ grey, error ! red.
import { writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const folder = join(dirname(fileURLToPath(import.meta.url)), '..', 'build', 'icons');

// Shapes in a 32×32 design grid; inside(x, y) for points in that grid.
const roundedSquare = (x, y) => {
  const [lo, hi, r] = [2, 30, 4];
  if (x < lo || x > hi || y < lo || y > hi) return false;
  const cx = Math.min(Math.max(x, lo + r), hi - r);
  const cy = Math.min(Math.max(y, lo + r), hi - r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
};
const circle = (cx, cy, r) => (x, y) => (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
const rect = (x0, y0, x1, y1) => (x, y) => x >= x0 && x <= x1 && y >= y0 && y <= y1;
const any =
  (...shapes) =>
  (x, y) =>
    shapes.some((shape) => shape(x, y));

const marks = {
  online: circle(16, 16, 7),
  offline: (x, y) => circle(16, 16, 7.5)(x, y) && !circle(16, 16, 4.5)(x, y),
  starting: any(circle(9, 16, 2.6), circle(16, 16, 2.6), circle(23, 16, 2.6)),
  stopped: rect(10.5, 10.5, 21.5, 21.5),
  error: any(rect(14, 7, 18, 19), circle(16, 23.5, 2.3)),
};
const colours = {
  online: [0x1e, 0x9e, 0x4a],
  offline: [0xd9, 0x8c, 0x00],
  starting: [0x1e, 0x6e, 0xc8],
  stopped: [0x78, 0x78, 0x78],
  error: [0xd0, 0x34, 0x2c],
};

/** RGBA pixels of one icon at `size`, 4×4 supersampled for smooth edges. */
function draw(state, size) {
  const pixels = Buffer.alloc(size * size * 4);
  const samples = 4;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let body = 0;
      let mark = 0;
      for (let sy = 0; sy < samples; sy++) {
        for (let sx = 0; sx < samples; sx++) {
          const x = ((px + (sx + 0.5) / samples) * 32) / size;
          const y = ((py + (sy + 0.5) / samples) * 32) / size;
          if (!roundedSquare(x, y)) continue;
          if (marks[state](x, y)) mark++;
          else body++;
        }
      }
      const total = samples * samples;
      const alpha = (body + mark) / total;
      const at = (py * size + px) * 4;
      if (alpha === 0) continue;
      const white = mark / (body + mark);
      for (let channel = 0; channel < 3; channel++) pixels[at + channel] = Math.round(colours[state][channel] * (1 - white) + 255 * white);
      pixels[at + 3] = Math.round(alpha * 255);
    }
  }
  return pixels;
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buffer) {
  let c = 0xffffffff;
  for (const byte of buffer) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}
function png(pixels, size) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA
  const rows = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) pixels.copy(rows, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

for (const state of Object.keys(marks)) {
  writeFileSync(join(folder, `tray-${state}.png`), png(draw(state, 16), 16));
  writeFileSync(join(folder, `tray-${state}@2x.png`), png(draw(state, 32), 32));
}
console.log(`wrote ${Object.keys(marks).length * 2} icons in ${folder}`);

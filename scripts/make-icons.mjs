// `npm run icons`: renders build/icon.svg with the OS's Chromium (playwright-core, never a
// downloaded browser) into every icon the app and its installers use, and writes them
// under build/. The outputs are committed, so release machines need no Chromium.
//
//   build/icon.png                      1024 px, the source of record for the app icon
//   build/icon.ico                      Windows (PNG-compressed entries 16–256 px)
//   build/icon.icns                     macOS (ic07–ic14 PNG entries, 128–1024 px)
//   build/icons/<N>x<N>.png             Linux icon set (electron-builder's `linux.icon`)
//   build/icons/tray-<status>.png       tray, 16 px, the mark with a status dot
//   build/icons/tray-<status>@2x.png    tray, 32 px (Electron picks @2x on HiDPI screens)
//
// electron-builder accepts a PNG for Windows and macOS too, but converts it with an icons
// tool it downloads at build time; writing .ico and .icns here keeps releases offline-able.
// Each size is rasterised from the vector at that size (sharper than scaling one bitmap).
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.join(root, 'build');
const iconsDir = path.join(buildDir, 'icons');

export const LINUX_SIZES = [16, 32, 48, 64, 128, 256, 512];
export const ICO_SIZES = [16, 24, 32, 48, 64, 128, 256];
// ICNS types holding PNG data (macOS 10.7+), with their pixel sizes.
export const ICNS_ENTRIES = [
  ['ic07', 128],
  ['ic08', 256],
  ['ic09', 512],
  ['ic10', 1024],
  ['ic11', 32],
  ['ic12', 64],
  ['ic13', 256],
  ['ic14', 512],
];
// The tray's status badges: what the service is doing, at a glance. Each state has its own
// shape as well as its own colour, so it reads without telling amber from orange.
const WHITE_EDGE = 'stroke="#ffffff" stroke-width="1.8" stroke-linejoin="round"';
export const TRAY_STATUS_BADGES = {
  // grey ring: the service is not running
  stopped: `<circle cx="25" cy="25" r="5.2" fill="#ffffff" stroke="#9ca3af" stroke-width="2.6"/>`,
  // amber half-filled disc: on its way (starting or stopping)
  starting: `<circle cx="25" cy="25" r="6.2" fill="#ffffff" ${WHITE_EDGE}/><path d="M25 18.8 A6.2 6.2 0 0 1 25 31.2 Z" fill="#f59e0b"/><circle cx="25" cy="25" r="5.6" fill="none" stroke="#f59e0b" stroke-width="1.2"/>`,
  // green disc: running, every board online
  online: `<circle cx="25" cy="25" r="6.2" fill="#22c55e" ${WHITE_EDGE}/>`,
  // orange triangle: running, some boards offline
  offline: `<path d="M25 17.6 L32.2 30.8 L17.8 30.8 Z" fill="#f97316" ${WHITE_EDGE}/>`,
  // red square: the service failed
  error: `<rect x="19" y="19" width="12" height="12" rx="1.5" fill="#ef4444" ${WHITE_EDGE}/>`,
};

/** The mark's SVG at a given pixel size, optionally with a status badge at the bottom right. */
function sized(svg, size, badge) {
  let out = svg.replace('<svg ', `<svg width="${size}" height="${size}" `);
  if (badge) out = out.replace(/<\/svg>\s*$/, `${badge}</svg>`);
  return out;
}

async function render(page, svg, size) {
  await page.setViewportSize({ width: size, height: size });
  await page.setContent(`<!doctype html><html><body style="margin:0;background:transparent">${svg}</body></html>`);
  return page.screenshot({ type: 'png', omitBackground: true, clip: { x: 0, y: 0, width: size, height: size } });
}

/** An .ico whose entries are PNG images (Windows Vista and later read them). */
export function icoFromPngs(entries) {
  const header = Buffer.alloc(6);
  header.writeUInt16LE(0, 0);
  header.writeUInt16LE(1, 2); // 1 = icon
  header.writeUInt16LE(entries.length, 4);
  const directory = Buffer.alloc(16 * entries.length);
  let offset = header.length + directory.length;
  entries.forEach(({ size, png }, index) => {
    const at = index * 16;
    directory.writeUInt8(size >= 256 ? 0 : size, at); // 0 means 256
    directory.writeUInt8(size >= 256 ? 0 : size, at + 1);
    directory.writeUInt8(0, at + 2); // no palette
    directory.writeUInt8(0, at + 3);
    directory.writeUInt16LE(1, at + 4); // colour planes
    directory.writeUInt16LE(32, at + 6); // bits per pixel
    directory.writeUInt32LE(png.length, at + 8);
    directory.writeUInt32LE(offset, at + 12);
    offset += png.length;
  });
  return Buffer.concat([header, directory, ...entries.map((entry) => entry.png)]);
}

/** An .icns made of PNG entries: 'icns' + total length, then type + length + data each. */
export function icnsFromPngs(entries) {
  const chunks = entries.map(({ type, png }) => {
    const head = Buffer.alloc(8);
    head.write(type, 0, 'latin1');
    head.writeUInt32BE(png.length + 8, 4);
    return Buffer.concat([head, png]);
  });
  const head = Buffer.alloc(8);
  head.write('icns', 0, 'latin1');
  head.writeUInt32BE(8 + chunks.reduce((sum, chunk) => sum + chunk.length, 0), 4);
  return Buffer.concat([head, ...chunks]);
}

async function main() {
  const svg = await readFile(path.join(buildDir, 'icon.svg'), 'utf8');
  await mkdir(iconsDir, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage({ deviceScaleFactor: 1 });
    const pngs = new Map();
    const plain = async (size) => {
      if (!pngs.has(size)) pngs.set(size, await render(page, sized(svg, size), size));
      return pngs.get(size);
    };
    const written = [];
    const write = async (file, data) => {
      await writeFile(file, data);
      written.push(path.relative(root, file));
    };

    await write(path.join(buildDir, 'icon.png'), await plain(1024));
    for (const size of LINUX_SIZES) await write(path.join(iconsDir, `${size}x${size}.png`), await plain(size));
    const ico = [];
    for (const size of ICO_SIZES) ico.push({ size, png: await plain(size) });
    await write(path.join(buildDir, 'icon.ico'), icoFromPngs(ico));
    const icns = [];
    for (const [type, size] of ICNS_ENTRIES) icns.push({ type, png: await plain(size) });
    await write(path.join(buildDir, 'icon.icns'), icnsFromPngs(icns));
    for (const [status, badge] of Object.entries(TRAY_STATUS_BADGES)) {
      await write(path.join(iconsDir, `tray-${status}.png`), await render(page, sized(svg, 16, badge), 16));
      await write(path.join(iconsDir, `tray-${status}@2x.png`), await render(page, sized(svg, 32, badge), 32));
    }
    console.log(`wrote ${written.length} files:\n  ${written.join('\n  ')}`);
  } finally {
    await browser.close();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();

/**
 * npm run lab:image -- OUT.bin [--size BYTES] [--mode qio|qout|dio|dout]
 * Writes a well-formed synthetic ESP8266 firmware image for trying the flasher.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { deflateSync } from 'node:zlib';
import { makeEsp8266Image } from '../esp8266-image.js';
import { FLASH_MODES, type FlashMode } from '../../../electron/manager/usb/firmware-image.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { size: { type: 'string' }, mode: { type: 'string' } } });
const out = positionals[0];
const size = values.size === undefined ? undefined : Number(values.size);
const mode = (values.mode ?? 'qio') as FlashMode;
if (!out || (size !== undefined && (!Number.isInteger(size) || size < 1024 || size > 16 * 1024 * 1024)) || !FLASH_MODES.includes(mode)) {
  process.stderr.write('usage: npm run lab:image -- OUT.bin [--size BYTES (1024..16 MiB)] [--mode qio|qout|dio|dout]\n');
  process.exit(2);
}
const image = makeEsp8266Image({ size, flashMode: mode });
await writeFile(out, image);
const compressed = deflateSync(image, { level: 9 }).length;
process.stdout.write(`wrote ${out}: ${image.length} bytes (${compressed} compressed), flash mode ${mode}\n`);

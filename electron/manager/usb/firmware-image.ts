/**
 * Firmware images, checked before a board is touched: the ESP image header (magic 0xE9,
 * segments, flash mode, size and frequency), the chip family it was built for, and its
 * size against the board's flash. Pure functions over bytes.
 */
import { createHash } from 'node:crypto';

export type FlashMode = 'qio' | 'qout' | 'dio' | 'dout';
export const FLASH_MODES: readonly FlashMode[] = ['qio', 'qout', 'dio', 'dout'];

/** Flash size field of an ESP8266 image header (high nibble of byte 3), in bytes. */
const ESP8266_FLASH_SIZES: Record<number, number> = {
  0x0: 512 * 1024, 0x1: 256 * 1024, 0x2: 1024 * 1024, 0x3: 2 * 1024 * 1024, 0x4: 4 * 1024 * 1024,
  0x5: 2 * 1024 * 1024, 0x6: 4 * 1024 * 1024, 0x8: 8 * 1024 * 1024, 0x9: 16 * 1024 * 1024,
};
const ESP8266_FLASH_FREQS: Record<number, string> = { 0x0: '40m', 0x1: '26m', 0x2: '20m', 0xf: '80m' };

const IMAGE_MAGIC = 0xe9;
/** Byte 8 of an ESP32-family image (start of the extended header): the WP pin, usually 0xEE. */
const ESP32_EXTENDED_HEADER_WP = 0xee;
const MAX_SEGMENTS = 16;

export class FirmwareImageError extends Error {
  override name = 'FirmwareImageError';
}

export interface FirmwareImageInfo {
  size: number;
  sha256: string;
  chip: 'ESP8266' | 'ESP32-family';
  segments: number;
  entryPoint: number;
  flashMode: FlashMode;
  flashSizeBytes: number | null;
  flashFreq: string | null;
}

/** Reads and checks an image's header and segments (throws FirmwareImageError). */
export function inspectFirmwareImage(image: Buffer): FirmwareImageInfo {
  if (image.length < 16) throw new FirmwareImageError(`not an ESP firmware image: only ${image.length} bytes`);
  if (image[0] !== IMAGE_MAGIC) {
    throw new FirmwareImageError(`not an ESP firmware image: first byte is 0x${image[0]!.toString(16).padStart(2, '0')}, expected 0xe9 (is this a .bin for an ESP8266?)`);
  }
  const segments = image[1]!;
  if (segments === 0 || segments > MAX_SEGMENTS) throw new FirmwareImageError(`not a valid ESP image: ${segments} segments`);
  const modeByte = image[2]!;
  const flashMode = FLASH_MODES[modeByte];
  if (!flashMode) throw new FirmwareImageError(`not a valid ESP image: unknown flash mode ${modeByte}`);
  const sizeFreq = image[3]!;
  const entryPoint = image.readUInt32LE(4);
  const chip = image[8] === ESP32_EXTENDED_HEADER_WP ? 'ESP32-family' : 'ESP8266';
  if (chip === 'ESP8266') checkSegments(image, segments, 8);
  return {
    size: image.length,
    sha256: createHash('sha256').update(image).digest('hex'),
    chip,
    segments,
    entryPoint,
    flashMode,
    flashSizeBytes: chip === 'ESP8266' ? ESP8266_FLASH_SIZES[sizeFreq >> 4] ?? null : null,
    flashFreq: chip === 'ESP8266' ? ESP8266_FLASH_FREQS[sizeFreq & 0xf] ?? null : null,
  };
}

/** Each segment header (load address, length) must describe data inside the file. */
function checkSegments(image: Buffer, count: number, start: number): void {
  let offset = start;
  for (let index = 0; index < count; index++) {
    if (offset + 8 > image.length) throw new FirmwareImageError(`image is truncated: segment ${index + 1} of ${count} is missing`);
    const length = image.readUInt32LE(offset + 4);
    offset += 8 + length;
    if (offset > image.length) throw new FirmwareImageError(`image is truncated: segment ${index + 1} needs ${length} bytes`);
  }
}

/** Checks an image against the chip and flash the board reported, before writing it. */
export function checkImageFitsBoard(info: FirmwareImageInfo, board: { chip: string; flashSizeBytes: number }, offset = 0): void {
  if (info.chip !== 'ESP8266' || !/^ESP82(66|85)/.test(board.chip)) {
    throw new FirmwareImageError(`this image is for ${info.chip === 'ESP8266' ? 'an ESP8266' : 'the ESP32 family'} but the board is an ${board.chip}`);
  }
  if (offset + info.size > board.flashSizeBytes) {
    throw new FirmwareImageError(`the image (${info.size} bytes at offset ${offset}) is larger than the board's flash (${board.flashSizeBytes} bytes)`);
  }
}

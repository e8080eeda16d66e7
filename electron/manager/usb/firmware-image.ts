/**
 * Firmware images, checked before a board is touched: the ESP image header (magic 0xE9,
 * segments, flash mode, size and frequency), the chip family it was built for, its size
 * against the board's flash, and — for MicroPython's ESP8266 builds — which of the three
 * published variants it is and whether this board can run it. Pure functions over bytes.
 *
 * MicroPython publishes three ESP8266 builds (ports/esp8266/boards/ESP8266_GENERIC):
 * - GENERIC (`ESP8266_GENERIC-<date>-v<version>.bin`), for 2 MiB of flash or more: its
 *   file system starts at 1 MiB (esp8266_2MiB.ld: 36 KiB header + irom0 up to 0x100000);
 * - FLASH_1M: irom0 is 572 KiB (esp8266_1MiB.ld), the file system the 396 KiB after it;
 *   no asyncio and no FAT (mpconfigvariant_FLASH_1M.mk, board.md);
 * - FLASH_512K: irom0 is 456 KiB (esp8266_512kiB.ld) and there is no writable file system
 *   (MICROPY_VFS_WRITABLE 0, _boot.py mounts only the ROMFS): nothing can be copied to the
 *   board, so no .py or .mpy files of ours either.
 * The build's board name is compiled into its banner ("…; ESP module with ESP8266",
 * "ESP module (1M)", "ESP module (512K)": mpconfigboard.h MICROPY_HW_BOARD_NAME), which
 * tells the variant; an image without it is told by its size where only one build fits
 * (over 608 KiB: GENERIC).
 */
import { createHash } from 'node:crypto';
import { ManagerError, type ErrorKind } from '../errors.js';

export type FlashMode = 'qio' | 'qout' | 'dio' | 'dout';
export const FLASH_MODES: readonly FlashMode[] = ['qio', 'qout', 'dio', 'dout'];

/** Flash size field of an ESP8266 image header (high nibble of byte 3), in bytes. */
const ESP8266_FLASH_SIZES: Record<number, number> = {
  0x0: 512 * 1024,
  0x1: 256 * 1024,
  0x2: 1024 * 1024,
  0x3: 2 * 1024 * 1024,
  0x4: 4 * 1024 * 1024,
  0x5: 2 * 1024 * 1024,
  0x6: 4 * 1024 * 1024,
  0x8: 8 * 1024 * 1024,
  0x9: 16 * 1024 * 1024,
};
const ESP8266_FLASH_FREQS: Record<number, string> = { 0x0: '40m', 0x1: '26m', 0x2: '20m', 0xf: '80m' };

const IMAGE_MAGIC = 0xe9;
/** Byte 8 of an ESP32-family image (start of the extended header): the WP pin, usually 0xEE. */
const ESP32_EXTENDED_HEADER_WP = 0xee;
const MAX_SEGMENTS = 16;

export class FirmwareImageError extends ManagerError {
  override name = 'FirmwareImageError';
  readonly kind: ErrorKind = 'bad_request';
}

export interface FirmwareImageInfo {
  size: number;
  /** The MicroPython ESP8266 build this image is, when that can be told (null otherwise). */
  variant: FirmwareVariant | null;
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
    throw new FirmwareImageError(
      `not an ESP firmware image: first byte is 0x${image[0]!.toString(16).padStart(2, '0')}, expected 0xe9 (is this a .bin for an ESP8266?)`,
    );
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
    flashSizeBytes: chip === 'ESP8266' ? (ESP8266_FLASH_SIZES[sizeFreq >> 4] ?? null) : null,
    flashFreq: chip === 'ESP8266' ? (ESP8266_FLASH_FREQS[sizeFreq & 0xf] ?? null) : null,
    variant: chip === 'ESP8266' ? recogniseVariant(image) : null,
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

/**
 * Checks an image against the chip and flash the board reported, before writing it: the
 * chip family, the size, and a MicroPython build made for more flash than the board has
 * (FirmwareVariantError, naming the build to use instead).
 */
export function checkImageFitsBoard(info: FirmwareImageInfo, board: { chip: string; flashSizeBytes: number }, offset = 0): void {
  if (info.chip !== 'ESP8266' || !/^ESP82(66|85)/.test(board.chip)) {
    throw new FirmwareImageError(`this image is for ${info.chip === 'ESP8266' ? 'an ESP8266' : 'the ESP32 family'} but the board is an ${board.chip}`);
  }
  const variant = info.variant;
  if (variant && board.flashSizeBytes < variant.minFlashBytes) {
    const fits = VARIANT_ORDER.find((name) => VARIANTS[name].minFlashBytes <= board.flashSizeBytes);
    const instead = fits ? `: use ${variantFileName(fits, variant)}` : ': no MicroPython build fits it';
    throw new FirmwareVariantError(
      `this is the ESP8266 build ${VARIANTS[variant.name].builtFor}; this board has ${formatFlash(board.flashSizeBytes)}${instead}`,
      variant.name,
      fits ?? null,
    );
  }
  if (offset + info.size > board.flashSizeBytes) {
    throw new FirmwareImageError(`the image (${info.size} bytes at offset ${offset}) is larger than the board's flash (${board.flashSizeBytes} bytes)`);
  }
}

/** MicroPython's ESP8266 builds (see the file comment). */
export type FirmwareVariantName = 'GENERIC' | 'FLASH_1M' | 'FLASH_512K';

export interface FirmwareVariant {
  name: FirmwareVariantName;
  /** How it was told: the board name in the image's banner, or its size alone. */
  evidence: 'board-name' | 'size';
  /** Smallest flash the build runs on. */
  minFlashBytes: number;
  /** Has a writable file system (boot.py, main.py, our client's files can be stored). */
  filesystem: boolean;
  /** Can import .mpy files from its file system (needs one). */
  mpy: boolean;
  asyncio: boolean;
  /** "MicroPython v1.27.0 on 2025-12-09", when the banner is in the image. */
  version: string | null;
}

/** A MicroPython build made for more flash than the board has. */
export class FirmwareVariantError extends FirmwareImageError {
  override name = 'FirmwareVariantError';
  constructor(
    message: string,
    readonly variant: FirmwareVariantName,
    readonly suggested: FirmwareVariantName | null,
  ) {
    super(message);
  }
}

const KIB = 1024;
/** Largest image of each build: 36 KiB header + iram/dram, then irom0 (the linker scripts). */
const MAX_IMAGE_BYTES = { FLASH_512K: 36 * KIB + 456 * KIB, FLASH_1M: 36 * KIB + 572 * KIB } as const;

const VARIANTS: Record<
  FirmwareVariantName,
  { boardName: string; minFlashBytes: number; filesystem: boolean; asyncio: boolean; builtFor: string; file: string }
> = {
  GENERIC: {
    boardName: 'ESP module',
    minFlashBytes: 2 * KIB * KIB,
    filesystem: true,
    asyncio: true,
    builtFor: 'for boards with 2 MB of flash or more',
    file: 'ESP8266_GENERIC',
  },
  FLASH_1M: {
    boardName: 'ESP module (1M)',
    minFlashBytes: KIB * KIB,
    filesystem: true,
    asyncio: false,
    builtFor: 'for boards with 1 MB of flash',
    file: 'ESP8266_GENERIC-FLASH_1M',
  },
  FLASH_512K: {
    boardName: 'ESP module (512K)',
    minFlashBytes: 512 * KIB,
    filesystem: false,
    asyncio: false,
    builtFor: 'for boards with 512 KB of flash',
    file: 'ESP8266_GENERIC-FLASH_512K',
  },
};
/** Largest build first: the one to suggest is the largest that fits. */
const VARIANT_ORDER: readonly FirmwareVariantName[] = ['GENERIC', 'FLASH_1M', 'FLASH_512K'];

/** "MicroPython v1.27.0 on 2025-12-09; ESP module (1M) with ESP8266" */
const BANNER = /MicroPython (v\d+\.\d+(?:\.\d+)?(?:-[\w.+-]+)?) on (\d{4})-(\d{2})-(\d{2}); (ESP module(?: \((?:1M|512K)\))?) with ESP8266/;

/** Which MicroPython ESP8266 build `image` is: by its banner, else by its size; null if neither tells. */
export function recogniseVariant(image: Buffer): FirmwareVariant | null {
  const text = image.toString('latin1');
  const banner = BANNER.exec(text);
  const describe = (name: FirmwareVariantName, evidence: FirmwareVariant['evidence']): FirmwareVariant => {
    const spec = VARIANTS[name];
    return {
      name,
      evidence,
      minFlashBytes: spec.minFlashBytes,
      filesystem: spec.filesystem,
      mpy: spec.filesystem,
      asyncio: spec.asyncio,
      version: banner ? `MicroPython ${banner[1]} on ${banner[2]}-${banner[3]}-${banner[4]}` : null,
    };
  };
  if (banner) {
    const name = VARIANT_ORDER.find((candidate) => VARIANTS[candidate].boardName === banner[5]);
    if (name) return describe(name, 'board-name');
  }
  // Only a MicroPython image is one of these builds; too large for the 1 MiB build: GENERIC.
  if (text.includes('MicroPython') && image.length > MAX_IMAGE_BYTES.FLASH_1M) return describe('GENERIC', 'size');
  return null;
}

/** The published file name of `name` for the same release: "ESP8266_GENERIC-FLASH_1M-20251209-v1.27.0.bin", or with "…". */
function variantFileName(name: FirmwareVariantName, like: FirmwareVariant): string {
  const release = like.version ? /^MicroPython (v\S+) on (\d{4})-(\d{2})-(\d{2})$/.exec(like.version) : null;
  return release ? `${VARIANTS[name].file}-${release[2]}${release[3]}${release[4]}-${release[1]}.bin` : `${VARIANTS[name].file}-…`;
}

function formatFlash(bytes: number): string {
  return bytes >= KIB * KIB ? `${bytes / (KIB * KIB)} MB` : `${bytes / KIB} KB`;
}

/** A note for a build smaller than the board could take (it runs, with less). */
export function variantNote(variant: FirmwareVariant | null, flashSizeBytes: number): string | null {
  if (!variant) return null;
  if (!variant.filesystem)
    return `this is the build ${VARIANTS[variant.name].builtFor}: it has no file system, so nothing can be copied to the board (no boot.py, main.py or Cloudmanager client)`;
  const better = VARIANT_ORDER.find((name) => VARIANTS[name].minFlashBytes <= flashSizeBytes);
  if (better && better !== variant.name)
    return `this is the build ${VARIANTS[variant.name].builtFor}; this board has ${formatFlash(flashSizeBytes)}: ${variantFileName(better, variant)} would give it a larger file system${VARIANTS[better].asyncio && !variant.asyncio ? ' and asyncio' : ''}`;
  return null;
}

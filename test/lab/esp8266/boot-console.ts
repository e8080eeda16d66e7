/**
 * What an ESP8266 prints while it boots, and how the host sees it.
 *
 * The ROM prints its boot message at 74880 baud (26 MHz crystal, UART not yet configured);
 * a host listening at 115200 reads that as garbage. `resampleUart` computes what a
 * receiver at one rate reads of bytes sent at another, bit by bit: the sender's waveform
 * (start bit, 8 data bits LSB first, stop bit) sampled by a receiver that syncs on each
 * falling edge and reads mid-bit; a missing stop bit (framing error) reads as NUL, as Linux
 * delivers it without PARMRK. uart.ts applies it whenever the host's port is set to
 * another rate than the chip talks at.
 *
 * Then the ROM checks the image at flash offset 0 (esptool's ESP8266 "v1" image: magic
 * 0xE9, segment count, flash mode, size/frequency, entry point, segments, and an XOR
 * checksum in the last byte of the next 16-byte block) before it jumps to it.
 */
export type FlashMode = 'qio' | 'qout' | 'dio' | 'dout';
/** Header byte 2 → mode. Order = fewer data lines needed: qio/qout need 4, dio/dout 2. */
export const FLASH_MODES: readonly FlashMode[] = ['qio', 'qout', 'dio', 'dout'];
export const ROM_BOOT_BAUD = 74880;
export const FIRMWARE_BAUD = 115200;
export const IMAGE_MAGIC = 0xe9;

export function resampleUart(data: Uint8Array, senderBaud: number, receiverBaud: number): Buffer {
  const ts = 1 / senderBaud;
  const tr = 1 / receiverBaud;
  const idleBits = 2; // the line is idle (high) before the first start bit
  const totalBits = idleBits + data.length * 10 + 2;
  const level = (t: number): number => {
    const bit = Math.floor(t / ts) - idleBits;
    if (bit < 0 || bit >= data.length * 10) return 1;
    const position = bit % 10;
    if (position === 0) return 0;
    if (position === 9) return 1;
    return (data[Math.floor(bit / 10)]! >> (position - 1)) & 1;
  };
  const out: number[] = [];
  let from = 0;
  for (;;) {
    let edge = -1;
    for (let b = Math.max(1, Math.ceil(from / ts)); b < totalBits; b++) {
      if (level((b - 0.5) * ts) === 1 && level((b + 0.5) * ts) === 0) {
        edge = b * ts;
        break;
      }
    }
    if (edge < 0) break;
    if (level(edge + 0.5 * tr) !== 0) {
      from = edge + 0.5 * tr; // a glitch, not a start bit
      continue;
    }
    let byte = 0;
    for (let i = 0; i < 8; i++) byte |= level(edge + (1.5 + i) * tr) << i;
    out.push(level(edge + 9.5 * tr) === 1 ? byte : 0x00);
    from = edge + 9.5 * tr;
  }
  return Buffer.from(out);
}

export interface ImageSegment {
  address: number;
  length: number;
  /** Running checksum after this segment (what the ROM prints as "chksum"). */
  checksum: number;
}

export type BootImage =
  | { valid: true; flashMode: FlashMode; entry: number; segments: ImageSegment[]; checksum: number }
  | { valid: false; reason: 'no-image' | 'bad-checksum'; segments: ImageSegment[]; storedChecksum?: number; checksum?: number };

/** Reads and checks the image at flash offset 0, as the ROM does before it boots it. */
export function inspectBootImage(readFlash: (offset: number, length: number) => Buffer, flashSize: number): BootImage {
  const header = readFlash(0, 8);
  const count = header[1]!;
  if (header[0] !== IMAGE_MAGIC || count === 0 || count > 16 || header[2]! > 3) return { valid: false, reason: 'no-image', segments: [] };
  const segments: ImageSegment[] = [];
  let offset = 8;
  let checksum = 0xef;
  for (let i = 0; i < count; i++) {
    if (offset + 8 > flashSize) return { valid: false, reason: 'no-image', segments };
    const head = readFlash(offset, 8);
    const address = head.readUInt32LE(0);
    const length = head.readUInt32LE(4);
    if (offset + 8 + length > flashSize) return { valid: false, reason: 'no-image', segments };
    for (const byte of readFlash(offset + 8, length)) checksum ^= byte;
    segments.push({ address, length, checksum });
    offset += 8 + length;
  }
  const checksumAt = offset + 15 - (offset % 16);
  const stored = checksumAt < flashSize ? readFlash(checksumAt, 1)[0]! : -1;
  if (stored !== checksum) return { valid: false, reason: 'bad-checksum', segments, storedChecksum: stored, checksum };
  return { valid: true, flashMode: FLASH_MODES[header[2]!]!, entry: header.readUInt32LE(4), segments, checksum };
}

/** A board wired for `needs` runs an image whose mode needs no more data lines than that. */
export function flashModeWorks(imageMode: FlashMode, needs: FlashMode | undefined): boolean {
  return needs === undefined || FLASH_MODES.indexOf(imageMode) >= FLASH_MODES.indexOf(needs);
}

const hex = (n: number, width: number) => `0x${(n >>> 0).toString(16).padStart(width, '0')}`;

export interface RomBannerOptions {
  /** 1 power-on, 2 reset pin / exception, 4 watchdog. */
  resetCause: number;
  download: boolean;
}

/** First line(s) of every boot: " ets Jan  8 2013,rst cause:2, boot mode:(3,6)". */
export function romBanner({ resetCause, download }: RomBannerOptions): string {
  return `\r\n ets Jan  8 2013,rst cause:${resetCause}, boot mode:(${download ? '1,7' : '3,6'})\r\n\r\n`;
}

/** The ROM's account of loading the image (printed after the banner, still at 74880). */
export function romLoadLog(image: BootImage): string {
  if (!image.valid && image.reason === 'no-image') return 'ets_main.c \r\n';
  let text = '';
  image.segments.forEach((segment, index) => {
    const room = Math.max(0, 16 - 8 * index);
    text += `load ${hex(segment.address, 8)}, len ${segment.length}, room ${room} \r\ntail ${segment.length % 16}\r\nchksum ${hex(segment.checksum, 2)}\r\n`;
  });
  const stored = image.valid ? image.checksum : (image.storedChecksum ?? 0);
  return `${text}csum ${hex(stored & 0xff, 2)}\r\n`;
}

export const MICROPYTHON_BANNER = 'MicroPython v1.27.0 on 2025-12-09; ESP module with ESP8266\r\nType "help()" for more information.\r\n>>> ';

/** The banner of a build whose first line (as compiled into the image) is `firstLine`. */
export function micropythonBanner(firstLine: string): string {
  return `${firstLine}\r\nType "help()" for more information.\r\n>>> `;
}

/** _boot.py on a blank file system area (MicroPython 1.27 inisetup.setup()). */
export const INITIAL_SETUP_TEXT = 'Performing initial setup\r\n';

/**
 * inisetup.fs_corrupted() of MicroPython 1.27 (ports/esp8266/modules/inisetup.py), printed
 * every 3 s: a triple-quoted text ending in a newline, print() adds another; the console
 * sends every \n as \r\n.
 */
export function fsCorruptText(startSector: number, sectors: number): string {
  return (
    `The filesystem starting at sector ${startSector} with size ${sectors} sectors looks corrupt.\n` +
    'You may want to make a flash snapshot and try to recover it. Otherwise,\n' +
    'format it with vfs.VfsLfs2.mkfs(bdev), or completely erase the flash and\n' +
    'reprogram MicroPython.\n\n'
  ).replace(/\n/g, '\r\n');
}

/** What a firmware built for the wrong flash mode prints before the chip resets again. */
export function fatalExceptionText(entry: number): string {
  return `Fatal exception (0): \r\nepc1=${hex(entry, 8)}, epc2=0x00000000, epc3=0x00000000, excvaddr=0x00000000, depc=0x00000000\r\n`;
}

/**
 * Built-in firmware choices of the flash wizard: official MicroPython releases the
 * catalogue can download by id. Their sha256 is not pinned here; a download is accepted
 * when it passes the image checks for its chip and carries the release's version banner
 * (e.g. "MicroPython v1.27.0 on 2025-12-09; ESP module with ESP8266"), and the catalogue
 * then records the sha256 it computed. Pure data and functions over bytes.
 */
import { FirmwareImageError, inspectFirmwareImage, type FirmwareImageInfo } from './firmware-image.js';

/** Where official MicroPython images live; a mirror replaces exactly this prefix. */
export const OFFICIAL_FIRMWARE_BASE = 'https://micropython.org/resources/firmware/';
/** Environment variable holding a mirror's base URL (replaces OFFICIAL_FIRMWARE_BASE). */
export const FIRMWARE_MIRROR_ENV = 'CLOUDMANAGER_FIRMWARE_MIRROR';
/** Largest built-in download accepted (an ESP8266 MicroPython build is ~620 KB). */
export const BUILTIN_MAX_BYTES = 4 * 1024 * 1024;

export interface BuiltinFirmware {
  /** Stable id; the catalogue keeps the image as `<id>.bin`. */
  id: string;
  title: string;
  /** The official download URL. */
  url: string;
  version: string;
  /** Text the image must contain: the start of the banner MicroPython compiles in. */
  expectText: string;
  chip: 'esp8266';
  /** About how large the download is (for a progress bar when the server sends no length). */
  approxBytes: number;
}

export const BUILTIN_FIRMWARE: readonly Readonly<BuiltinFirmware>[] = Object.freeze([
  Object.freeze({
    id: 'micropython-1.27-esp8266',
    title: 'MicroPython 1.27 for ESP8266',
    url: `${OFFICIAL_FIRMWARE_BASE}ESP8266_GENERIC-20251209-v1.27.0.bin`,
    version: '1.27.0',
    expectText: 'MicroPython v1.27.0',
    chip: 'esp8266',
    approxBytes: 620_000,
  } as const),
]);

/** The built-in firmware with this id, or undefined. */
export function findBuiltinFirmware(id: string): Readonly<BuiltinFirmware> | undefined {
  return BUILTIN_FIRMWARE.find((firmware) => firmware.id === id);
}

/** The catalogue file name of a built-in firmware. */
export function builtinFileName(firmware: Pick<BuiltinFirmware, 'id'>): string {
  return `${firmware.id}.bin`;
}

/**
 * Where to download a built-in firmware from: `override` if given, else the official URL
 * with its base replaced by the mirror in `env[CLOUDMANAGER_FIRMWARE_MIRROR]` if set,
 * else the official URL. Returns a string; the caller validates it as a URL.
 */
export function builtinSourceUrl(
  firmware: Pick<BuiltinFirmware, 'url'>,
  options: { override?: string; env?: Record<string, string | undefined> } = {},
): { url: string; fromMirror: boolean } {
  if (options.override) return { url: options.override, fromMirror: true };
  const mirror = options.env?.[FIRMWARE_MIRROR_ENV]?.trim();
  if (!mirror) return { url: firmware.url, fromMirror: false };
  const file = firmware.url.startsWith(OFFICIAL_FIRMWARE_BASE)
    ? firmware.url.slice(OFFICIAL_FIRMWARE_BASE.length)
    : firmware.url.slice(firmware.url.lastIndexOf('/') + 1);
  return { url: `${mirror.endsWith('/') ? mirror : `${mirror}/`}${file}`, fromMirror: true };
}

/** A byte that can continue a version tag ("v1.27.0-preview", "v1.27.01"). */
function continuesVersion(byte: number | undefined): boolean {
  if (byte === undefined) return false;
  const char = String.fromCharCode(byte);
  return /[0-9A-Za-z._+-]/.test(char);
}

/** True when `image` contains `text` as a whole version (not the start of a longer tag). */
export function containsVersionText(image: Buffer, text: string): boolean {
  const needle = Buffer.from(text, 'utf8');
  for (let at = image.indexOf(needle); at !== -1; at = image.indexOf(needle, at + 1)) {
    if (!continuesVersion(image[at + needle.length])) return true;
  }
  return false;
}

/** Why a downloaded image is not the built-in firmware it should be. */
export type BuiltinImageProblem = 'not-firmware' | 'wrong-chip' | 'version-missing';

export class BuiltinImageMismatch extends FirmwareImageError {
  override name = 'BuiltinImageMismatch';
  constructor(
    message: string,
    readonly problem: BuiltinImageProblem,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * Checks that `image` is this built-in firmware: a valid image for its chip containing
 * its version text. Throws BuiltinImageMismatch (a FirmwareImageError) saying which.
 */
export function checkBuiltinImage(firmware: Readonly<BuiltinFirmware>, image: Buffer): FirmwareImageInfo {
  const what = `MicroPython ${firmware.version} for ${firmware.chip.toUpperCase()}`;
  let info: FirmwareImageInfo;
  try {
    info = inspectFirmwareImage(image);
  } catch (error) {
    throw new BuiltinImageMismatch(`the download is not ${what} (${(error as Error).message})`, 'not-firmware', { cause: error });
  }
  if (info.chip !== 'ESP8266') {
    throw new BuiltinImageMismatch(`the download is not ${what} (it is an image for the ${info.chip})`, 'wrong-chip');
  }
  if (!containsVersionText(image, firmware.expectText)) {
    throw new BuiltinImageMismatch(`the download is not ${what} (the version text ${JSON.stringify(firmware.expectText)} is missing)`, 'version-missing');
  }
  return info;
}

import { describe, expect, it } from 'vitest';
import {
  BUILTIN_FIRMWARE,
  BuiltinImageMismatch,
  builtinFileName,
  builtinSourceUrl,
  checkBuiltinImage,
  containsVersionText,
  findBuiltinFirmware,
} from '../../electron/manager/usb/builtin-firmware.js';
import { FirmwareImageError } from '../../electron/manager/usb/firmware-image.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';

const OFFICIAL = 'https://micropython.org/resources/firmware/ESP8266_GENERIC-20251209-v1.27.0.bin';
const BANNER = 'MicroPython v1.27.0 on 2025-12-09; ESP module with ESP8266\0';

/** A synthetic ESP8266 image with `text` in its irom part, where MicroPython keeps its strings. */
function imageWith(text: string): Buffer {
  const image = makeEsp8266Image({ size: 96 * 1024 });
  image.write(text, 64 * 1024, 'latin1');
  return image;
}

describe('built-in firmware', () => {
  const firmware = findBuiltinFirmware('micropython-1.27-esp8266')!;

  it('offers MicroPython 1.27 for ESP8266 from the official URL', () => {
    expect(BUILTIN_FIRMWARE).toEqual([
      {
        id: 'micropython-1.27-esp8266',
        title: 'MicroPython 1.27 for ESP8266',
        url: OFFICIAL,
        version: '1.27.0',
        expectText: 'MicroPython v1.27.0',
        chip: 'esp8266',
        approxBytes: 620_000,
      },
    ]);
    expect(Object.isFrozen(BUILTIN_FIRMWARE) && Object.isFrozen(BUILTIN_FIRMWARE[0])).toBe(true);
    expect(findBuiltinFirmware('nope')).toBeUndefined();
    expect(builtinFileName(firmware)).toBe('micropython-1.27-esp8266.bin');
  });

  it('downloads from a mirror or an explicit URL when one is given', () => {
    expect(builtinSourceUrl(firmware, { env: {} })).toEqual({ url: OFFICIAL, fromMirror: false });
    expect(builtinSourceUrl(firmware, { env: { CLOUDMANAGER_FIRMWARE_MIRROR: '  ' } }).url).toBe(OFFICIAL);
    for (const mirror of ['http://mirror.lan/mp', 'http://mirror.lan/mp/']) {
      expect(builtinSourceUrl(firmware, { env: { CLOUDMANAGER_FIRMWARE_MIRROR: mirror } })).toEqual({
        url: 'http://mirror.lan/mp/ESP8266_GENERIC-20251209-v1.27.0.bin',
        fromMirror: true,
      });
    }
    expect(builtinSourceUrl(firmware, { override: 'http://127.0.0.1:1/x.bin', env: { CLOUDMANAGER_FIRMWARE_MIRROR: 'http://mirror.lan/' } })).toEqual({
      url: 'http://127.0.0.1:1/x.bin',
      fromMirror: true,
    });
  });

  it('finds the version text only as a whole version', () => {
    expect(containsVersionText(Buffer.from(BANNER), 'MicroPython v1.27.0')).toBe(true);
    expect(containsVersionText(Buffer.from('xxMicroPython v1.27.0'), 'MicroPython v1.27.0')).toBe(true);
    expect(containsVersionText(Buffer.from('MicroPython v1.27.0\0'), 'MicroPython v1.27.0')).toBe(true);
    expect(containsVersionText(Buffer.from('MicroPython v1.27.0-preview.3.gabc on 2025-11-01'), 'MicroPython v1.27.0')).toBe(false);
    expect(containsVersionText(Buffer.from('MicroPython v1.27.01 on 2026-01-01'), 'MicroPython v1.27.0')).toBe(false);
    expect(containsVersionText(Buffer.from('MicroPython v1.27.0-preview; MicroPython v1.27.0 on'), 'MicroPython v1.27.0')).toBe(true);
    expect(containsVersionText(Buffer.from('MicroPython v1.26.1 on 2025-09-11'), 'MicroPython v1.27.0')).toBe(false);
  });

  it('accepts an ESP8266 image that carries the version banner', () => {
    const image = imageWith(BANNER);
    expect(checkBuiltinImage(firmware, image)).toMatchObject({ chip: 'ESP8266', size: image.length });
  });

  it.each([
    ['an image of another release', imageWith('MicroPython v1.26.1 on 2025-09-11; ESP module with ESP8266\0'), 'version-missing'],
    ['a preview build of the release', imageWith('MicroPython v1.27.0-preview.9.g1234 on 2025-11-30\0'), 'version-missing'],
    ['a text file that mentions the version', Buffer.from(`<html>${BANNER} is not here</html>`), 'not-firmware'],
    [
      'an ESP32 image with the banner',
      (() => {
        const esp32 = Buffer.alloc(4096);
        esp32.set([0xe9, 3, 2, 0x20, 0, 0, 0, 0, 0xee]);
        esp32.write(BANNER, 1024, 'latin1');
        return esp32;
      })(),
      'wrong-chip',
    ],
  ])('refuses %s, saying why', (_what, image, problem) => {
    let caught: unknown;
    try {
      checkBuiltinImage(firmware, image);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(BuiltinImageMismatch);
    expect(caught).toBeInstanceOf(FirmwareImageError);
    expect((caught as BuiltinImageMismatch).problem).toBe(problem);
    expect((caught as Error).message).toMatch(/^the download is not MicroPython 1\.27\.0 for ESP8266 \(/);
  });
});

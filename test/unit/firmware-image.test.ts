import { describe, expect, it } from 'vitest';
import { checkImageFitsBoard, FirmwareImageError, FirmwareVariantError, inspectFirmwareImage, variantNote } from '../../electron/manager/usb/firmware-image.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';

describe('firmware image checks', () => {
  it('reads an ESP8266 image header', () => {
    const info = inspectFirmwareImage(makeEsp8266Image({ size: 64 * 1024, flashMode: 'dio' }));
    expect(info).toMatchObject({ chip: 'ESP8266', segments: 2, flashMode: 'dio', flashSizeBytes: 4 * 1024 * 1024, flashFreq: '40m', size: 65536 });
    expect(info.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it.each([
    ['a text file', Buffer.from('this is not firmware, just some text that is long enough')],
    ['a short file', Buffer.from([0xe9, 1])],
    ['zero segments', Buffer.from([0xe9, 0, 0, 0x40, 0, 0, 0, 0, ...Array(16).fill(0)])],
    ['an unknown flash mode', Buffer.from([0xe9, 1, 9, 0x40, 0, 0, 0, 0, ...Array(16).fill(0)])],
    ['a truncated segment', Buffer.from([0xe9, 1, 0, 0x40, 0, 0, 0, 0, 0, 0, 0x10, 0x40, 0xff, 0xff, 0, 0, 1, 2, 3])],
  ])('refuses %s', (_what, bytes) => {
    expect(() => inspectFirmwareImage(bytes)).toThrow(FirmwareImageError);
  });

  it('refuses an image larger than the flash or for another chip', () => {
    const info = inspectFirmwareImage(makeEsp8266Image({ size: 600 * 1024 }));
    expect(() => checkImageFitsBoard(info, { chip: 'ESP8266EX', flashSizeBytes: 512 * 1024 })).toThrow(/larger than the board's flash/);
    expect(() => checkImageFitsBoard(info, { chip: 'ESP32-D0WD', flashSizeBytes: 4 * 1024 * 1024 })).toThrow(/is an ESP32/);
    expect(() => checkImageFitsBoard(info, { chip: 'ESP8266EX', flashSizeBytes: 4 * 1024 * 1024 })).not.toThrow();
  });

  it('recognises an ESP32-family image by its extended header', () => {
    const esp32 = Buffer.alloc(64);
    esp32.set([0xe9, 3, 2, 0x20, 0, 0, 0, 0, 0xee]);
    expect(inspectFirmwareImage(esp32).chip).toBe('ESP32-family');
  });
});

describe('MicroPython ESP8266 builds', () => {
  it('tells the build by the board name in its banner', () => {
    expect(inspectFirmwareImage(makeEsp8266Image({ size: 640 * 1024, variant: 'GENERIC' })).variant).toMatchObject({
      name: 'GENERIC',
      evidence: 'board-name',
      minFlashBytes: 2 << 20,
      filesystem: true,
      asyncio: true,
      version: 'MicroPython v1.27.0 on 2025-12-09',
    });
    expect(inspectFirmwareImage(makeEsp8266Image({ size: 600 * 1024, variant: 'FLASH_1M' })).variant).toMatchObject({
      name: 'FLASH_1M',
      minFlashBytes: 1 << 20,
      filesystem: true,
      asyncio: false,
    });
    expect(inspectFirmwareImage(makeEsp8266Image({ size: 480 * 1024, variant: 'FLASH_512K' })).variant).toMatchObject({
      name: 'FLASH_512K',
      minFlashBytes: 512 << 10,
      filesystem: false,
      mpy: false,
    });
  });

  it('tells GENERIC by its size when the banner is not there; nothing for an image that is not MicroPython', () => {
    const unnamed = makeEsp8266Image({ size: 700 * 1024 });
    Buffer.from('MicroPython', 'latin1').copy(unnamed, 40_000);
    expect(inspectFirmwareImage(unnamed).variant).toMatchObject({ name: 'GENERIC', evidence: 'size', version: null });
    expect(inspectFirmwareImage(makeEsp8266Image({ size: 700 * 1024 })).variant).toBeNull();
    expect(inspectFirmwareImage(makeEsp8266Image({ size: 300 * 1024 })).variant).toBeNull();
  });

  it('refuses a build made for more flash than the board has, naming the one to use', () => {
    const generic = inspectFirmwareImage(makeEsp8266Image({ size: 640 * 1024, variant: 'GENERIC' }));
    const error = (() => {
      try {
        checkImageFitsBoard(generic, { chip: 'ESP8266EX', flashSizeBytes: 1 << 20 });
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(FirmwareVariantError);
    expect(error).toBeInstanceOf(FirmwareImageError);
    expect((error as Error).message).toBe(
      'this is the ESP8266 build for boards with 2 MB of flash or more; this board has 1 MB: use ESP8266_GENERIC-FLASH_1M-20251209-v1.27.0.bin',
    );
    expect(() => checkImageFitsBoard(generic, { chip: 'ESP8266EX', flashSizeBytes: 512 << 10 })).toThrow(
      /this board has 512 KB: use ESP8266_GENERIC-FLASH_512K-20251209-v1\.27\.0\.bin/,
    );
    const oneMeg = inspectFirmwareImage(makeEsp8266Image({ size: 600 * 1024, variant: 'FLASH_1M' }));
    expect(() => checkImageFitsBoard(oneMeg, { chip: 'ESP8285', flashSizeBytes: 1 << 20 })).not.toThrow();
    expect(() => checkImageFitsBoard(oneMeg, { chip: 'ESP8266EX', flashSizeBytes: 4 << 20 })).not.toThrow();
  });

  it('notes what a smaller build leaves out', () => {
    const small = inspectFirmwareImage(makeEsp8266Image({ size: 480 * 1024, variant: 'FLASH_512K' })).variant;
    expect(variantNote(small, 1 << 20)).toMatch(/no file system/);
    const oneMeg = inspectFirmwareImage(makeEsp8266Image({ size: 600 * 1024, variant: 'FLASH_1M' })).variant;
    expect(variantNote(oneMeg, 4 << 20)).toMatch(/ESP8266_GENERIC-20251209-v1\.27\.0\.bin would give it a larger file system and asyncio/);
    expect(variantNote(oneMeg, 1 << 20)).toBeNull();
  });
});

import { describe, expect, it } from 'vitest';
import { checkImageFitsBoard, FirmwareImageError, inspectFirmwareImage } from '../../electron/manager/usb/firmware-image.js';
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

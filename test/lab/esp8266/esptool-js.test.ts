import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Esp8266Simulator } from './esp8266-simulator.js';
import { closeSession, commandSummary, esptoolSession, esptoolWriteImage, removeTempDirs, tempDir, type EsptoolSession } from './host-tools.js';
import { makeTestImage } from './test-image.js';

afterAll(removeTempDirs);

const md5hex = (data: Uint8Array) => createHash('md5').update(data).digest('hex');

describe('esptool-js against the ESP8266 simulator (pty, no reset lines)', () => {
  let sim: Esp8266Simulator | undefined;
  let session: EsptoolSession | undefined;

  afterEach(async () => {
    if (session) await closeSession(session);
    if (sim) await sim.close();
    session = undefined;
    sim = undefined;
  });

  it('connects, uploads the stub, goes to 460800, erases (a W25Q32 takes 10 s) and writes a compressed image that verifies', { timeout: 60_000 }, async () => {
    const dir = await tempDir();
    sim = new Esp8266Simulator({ flashImagePath: path.join(dir, 'flash.bin') });
    await sim.powerOn({ bootMode: 'download' });
    session = esptoolSession(sim.path, 460800);
    const { loader, port, log } = session;

    const description = await loader.main('default_reset');
    expect(loader.chip.CHIP_NAME).toBe('ESP8266');
    expect(description).toBe('ESP8266EX');
    expect(port.hasResetLines).toBe(false);
    expect(sim.loaderKind).toBe('stub');
    // The stub's divider (52 MHz ÷ 451 × 115200 ÷ 460800 → 112) gives 464286 baud: 0.75 % off, which a UART reads fine.
    expect(Math.abs(sim.lineRate - 460800) / 460800).toBeLessThan(0.01);
    expect(log).toContain('Stub running...');
    expect(log.some((line) => line.startsWith('MAC: 5c:cf:7f:3a:4b:5c'))).toBe(true);
    expect(await loader.detectFlashSize()).toBe('4MB');

    const erase0 = Date.now();
    await loader.eraseFlash();
    const eraseMs = Date.now() - erase0;

    const image = makeTestImage({ flashMode: 'qio', sizeFreq: 0x00 });
    const write0 = Date.now();
    await loader.writeFlash({
      fileArray: [{ data: new Uint8Array(image), address: 0 }],
      flashMode: 'dio',
      flashFreq: 'keep',
      flashSize: 'detect',
      eraseAll: false,
      compress: true,
      calculateMD5Hash: (data) => md5hex(data),
    });
    const writeMs = Date.now() - write0;
    expect(log).toContain('Hash of data verified.');

    // esptool-js patches exactly two header bytes: the flash mode (byte 2, 'dio' = 2) and
    // the size nibble of byte 3 (detected 4MB = 0x40; the frequency nibble is kept).
    const expected = Buffer.from(image);
    expected[2] = 2;
    expected[3] = 0x40 | (image[3]! & 0x0f);
    const written = sim.readFlash(0, image.length);
    const differing = [...written.keys()].filter((i) => written[i] !== image[i]);
    expect(differing).toEqual([2, 3]);
    expect(written.equals(expected)).toBe(true);
    expect(sim.readFlash(image.length, 4096).every((b) => b === 0xff)).toBe(true);
    // The stub's READ_FLASH (packets + acks) as esptool-js reads it back.
    expect(Buffer.from(await loader.readFlash(0, 0x3000)).equals(expected.subarray(0, 0x3000))).toBe(true);

    const compressed = Number(/Compressed \d+ bytes to (\d+)/.exec(log.join('\n'))?.[1]);
    const limitMs = (compressed * 10 * 1000) / 460800;
    console.info(
      `esptool-js @460800: ${image.length} bytes (${compressed} compressed) written+verified in ${writeMs} ms; ` +
        `wire limit ${limitMs.toFixed(0)} ms (${(writeMs / limitMs).toFixed(2)}×); chip erase ${eraseMs} ms`,
    );
    // The line is paced (its speed against the wire limit: npm run bench:flash).
    expect(writeMs).toBeGreaterThan(limitMs);

    console.info(`esptool-js → ESP8266 commands: ${commandSummary(sim.commandLog)}`);
    expect(sim.internalErrors).toEqual([]);
  });

  it('without the stub: the ROM writes uncompressed blocks; MD5 is refused; soft reset boots the flash', async () => {
    const dir = await tempDir();
    sim = new Esp8266Simulator({ flashImagePath: path.join(dir, 'flash.bin') });
    await sim.powerOn({ bootMode: 'download' });
    session = esptoolSession(sim.path, 115200);
    await session.loader.connect('no_reset');
    expect(session.loader.chip.CHIP_NAME).toBe('ESP8266');
    const image = makeTestImage({ iromBytes: 2048, seed: 5 });
    await esptoolWriteImage(session.loader, image, { compress: false });
    expect(sim.loaderKind).toBe('rom');
    expect(sim.readFlash(0, image.length).equals(image)).toBe(true);
    // esptool-js pads the last block to 16 KB with 0xFF, which the ROM writes as is.
    expect(sim.commandLog.filter((entry) => entry.name === 'FLASH_DATA')).toHaveLength(Math.ceil(image.length / 0x4000));
    await expect(session.loader.flashMd5sum(0, image.length)).rejects.toThrow(/unsupported|not supported/i);
    const booted = new Promise((resolve) => sim!.once('boot', resolve));
    await session.loader.after('soft_reset');
    expect(await booted).toMatchObject({ mode: 'flash', result: 'firmware' });
    expect(sim.commandLog.slice(-2).map((entry) => entry.name)).toEqual(['FLASH_BEGIN', 'FLASH_END']);
  });

  it('reports an ESP32 honestly', async () => {
    const dir = await tempDir();
    sim = new Esp8266Simulator({ flashImagePath: path.join(dir, 'flash.bin'), chip: 'ESP32' });
    await sim.powerOn({ bootMode: 'download' });
    // esptool-js gives each of the ROM's 8 sync replies 100 ms; on a loaded machine a pty can
    // take longer, and a reply cut by that timeout reads as "Invalid head of packet". A user
    // would press Connect again, and so does the test (what it asserts is the chip's name).
    for (let attempt = 1; ; attempt += 1) {
      session = esptoolSession(sim.path, 115200);
      try {
        await session.loader.connect('no_reset');
        break;
      } catch (error) {
        if (attempt === 3 || !/Invalid head of packet/.test(String(error))) throw error;
        await closeSession(session);
      }
    }
    expect(session.loader.chip.CHIP_NAME).toBe('ESP32');
  });
});

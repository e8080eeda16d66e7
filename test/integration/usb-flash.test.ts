/**
 * The flash pipeline against the simulated ESP8266 (ROM bootloader + stub on a pty, no
 * reset lines): a clean flash, MD5 mismatch, a port lost mid-write, images refused before
 * a byte is written, and the automatic re-flash in dio of a board that needs it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import path from 'node:path';
import { flashEsp8266, FlashError, FlashVerifyError, type FlashProgress } from '../../electron/manager/usb/esp-flasher.js';
import { FirmwareImageError } from '../../electron/manager/usb/firmware-image.js';
import { Esp8266Simulator } from '../lab/esp8266/esp8266-simulator.js';
import { removeTempDirs, tempDir } from '../lab/esp8266/host-tools.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';

const simulators: Esp8266Simulator[] = [];

async function simulator(options: Partial<ConstructorParameters<typeof Esp8266Simulator>[0]> = {}): Promise<Esp8266Simulator> {
  const sim = new Esp8266Simulator({ flashImagePath: path.join(await tempDir(), 'flash.bin'), ...options });
  simulators.push(sim);
  await sim.powerOn({ bootMode: 'download' });
  return sim;
}

const flashWrites = (sim: Esp8266Simulator) => sim.commandLog.filter((entry) => /FLASH_(DEFL_)?(BEGIN|DATA)/.test(entry.name)).length;

afterEach(async () => {
  await Promise.all(simulators.splice(0).map((sim) => sim.close()));
  await removeTempDirs();
});

describe('flashing an ESP8266 (simulated, no reset lines)', () => {
  it('writes the image at 460800, verifies it, boots it, and reports every phase', { timeout: 60_000 }, async () => {
    const sim = await simulator();
    const image = makeEsp8266Image({ size: 200 * 1024, flashMode: 'dio' });
    const phases: FlashProgress['phase'][] = [];
    // The "user": asked for one plain RESET after a flash without reset lines.
    const result = await flashEsp8266({ portPath: sim.path, image, onProgress: (progress) => phases.push(progress.phase), onNeedReset: () => sim.pressReset() });
    expect(result).toMatchObject({
      chip: expect.stringMatching(/^ESP8266/), flashSizeBytes: 4 * 1024 * 1024, flashMode: 'dio', baud: 460_800, boot: 'ok', attempts: 1,
      restartedBy: 'stub', bootModeLatch: 'flash',
    });
    expect([...new Set(phases)]).toEqual(['check-image', 'connect', 'detect', 'write', 'verify', 'reset', 'boot-check', 'press-reset', 'done']);
    expect(sim.latchedBootMode).toBe('flash');
    const flashed = sim.readFlash(0, image.length);
    // Byte 3 (flash size/frequency) is patched to the detected size; the rest is the image.
    expect(flashed.subarray(4).equals(image.subarray(4))).toBe(true);
    expect([...flashed.subarray(0, 3)]).toEqual([...image.subarray(0, 3)]);
  });

  it('detects an MD5 mismatch', { timeout: 60_000 }, async () => {
    const sim = await simulator({ corruptBlock: 1 });
    const error = await flashEsp8266({ portPath: sim.path, image: makeEsp8266Image({ size: 100 * 1024, flashMode: 'dio' }), bootCheckMs: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FlashVerifyError);
    expect((error as Error).message).toMatch(/MD5/);
  });

  it('gives a clear error when the port goes away mid-write, and a retry succeeds', { timeout: 90_000 }, async () => {
    const sim = await simulator({ failAfterBytes: 20_000 });
    const image = makeEsp8266Image({ size: 150 * 1024, flashMode: 'dio' });
    const error = await flashEsp8266({ portPath: sim.path, image, baud: 115_200, bootCheckMs: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FlashError);
    expect((error as Error).message).toMatch(/flashing failed/);
    sim.setFaults({ failAfterBytes: undefined });
    await sim.pressBootAndReset();
    const result = await flashEsp8266({ portPath: sim.path, image, bootCheckMs: 0 });
    expect(result.imageBytes).toBe(image.length);
  });

  it('refuses a file that is not an ESP image, or too large for the flash, before writing a byte', { timeout: 60_000 }, async () => {
    const sim = await simulator({ flashSizeBytes: 512 * 1024 });
    await expect(flashEsp8266({ portPath: sim.path, image: Buffer.from('#!/bin/sh\necho not firmware\n'.repeat(10)) })).rejects.toBeInstanceOf(FirmwareImageError);
    expect(sim.commandLog).toHaveLength(0); // refused before the board was touched
    await expect(flashEsp8266({ portPath: sim.path, image: makeEsp8266Image({ size: 600 * 1024 }) })).rejects.toThrow(/larger than the board's flash/);
    expect(flashWrites(sim)).toBe(0);
  });

  it('re-flashes in dio when a qio flash does not boot', { timeout: 90_000 }, async () => {
    const sim = await simulator({ needsMode: 'dio' });
    const phases: string[] = [];
    let buttonPresses = 0;
    const result = await flashEsp8266({
      portPath: sim.path,
      image: makeEsp8266Image({ size: 120 * 1024, flashMode: 'qio' }),
      onProgress: (progress) => phases.push(`${progress.phase}: ${progress.message}`),
      // The "user": asked to hold BOOT and press RESET when the board must be re-flashed.
      onNeedBootloader: async () => {
        buttonPresses++;
        await sim.pressBootAndReset();
      },
      onNeedReset: () => sim.pressReset(),
    });
    expect(result).toMatchObject({ flashMode: 'dio', boot: 'ok', attempts: 2 });
    // The qio image crashed right after the stub's "run user code"; its exception reset
    // boots in the latched mode — download, since no hardware reset happened since the
    // user put the board there — so the re-flash needs no button press.
    expect(buttonPresses).toBe(0);
    expect(phases.some((line) => /reflash: .*flash mode qio.*dio/.test(line))).toBe(true);
    expect(sim.readFlash(2, 1)[0]).toBe(2); // dio in the header
  });
});

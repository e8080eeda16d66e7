/**
 * The flash pipeline against the simulated ESP8266 (ROM bootloader + stub on a pty, no
 * reset lines; or behind an auto-reset adapter over RFC 2217, where the simulator knows
 * the host's baud rate): a clean flash, MD5 mismatch, a port lost mid-write, images
 * refused before a byte is written, the automatic re-flash in dio of a board that needs
 * it, how the board came up (read at 74880 and 115200), the MicroPython builds and the
 * ESP8285, and the per-block wait for a block that inflates to a megabyte.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { flashEsp8266, type FlashProgress } from '../../electron/manager/usb/esp-flasher.js';
import { FlashError, FlashVerifyError } from '../../electron/manager/usb/flash-errors.js';
import { FirmwareImageError, FirmwareVariantError } from '../../electron/manager/usb/firmware-image.js';
import { Esp8266Simulator } from '../lab/esp8266/esp8266-simulator.js';
import { FAST_FLASH_TIMING } from '../lab/esp8266/flash-chip.js';
import { removeTempDirs, tempDir } from '../lab/esp8266/host-tools.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';
import { Rfc2217Link } from '../lab/rfc2217-link.js';

/** What a started MicroPython prints first: the first boot's setup line, else the banner. */
const MICROPYTHON_STARTED = /Performing initial setup|MicroPython v1\.27\.0/;

const simulators: Esp8266Simulator[] = [];
const links: Rfc2217Link[] = [];

type SimulatorOptions = Partial<ConstructorParameters<typeof Esp8266Simulator>[0]>;

/** A board on a pty in download mode; flash timing fast unless the test is about it. */
async function simulator(options: SimulatorOptions = {}): Promise<Esp8266Simulator> {
  const sim = new Esp8266Simulator({ flashImagePath: path.join(await tempDir(), 'flash.bin'), flashTiming: FAST_FLASH_TIMING, ...options });
  simulators.push(sim);
  await sim.powerOn({ bootMode: 'download' });
  return sim;
}

/** A board with the NodeMCU auto-reset circuit over RFC 2217, running from its flash; `flash` pre-fills it. */
async function autoResetBoard(options: SimulatorOptions = {}, flash?: Buffer): Promise<Esp8266Simulator> {
  const flashImagePath = path.join(await tempDir(), 'flash.bin');
  if (flash) await writeFile(flashImagePath, flash);
  const link = await Rfc2217Link.open({ baud: 115_200 });
  links.push(link);
  const sim = new Esp8266Simulator({ flashImagePath, link, adapter: 'auto', flashTiming: FAST_FLASH_TIMING, ...options });
  simulators.push(sim);
  await sim.powerOn({ bootMode: 'flash' });
  return sim;
}

const flashWrites = (sim: Esp8266Simulator) => sim.commandLog.filter((entry) => /FLASH_(DEFL_)?(BEGIN|DATA)/.test(entry.name)).length;

afterEach(async () => {
  await Promise.all(simulators.splice(0).map((sim) => sim.close()));
  await Promise.all(links.splice(0).map((link) => link.close()));
  await removeTempDirs();
});

describe('flashing an ESP8266 (simulated, no reset lines)', () => {
  it('writes the image at 460800, verifies it, boots it, and reports every phase', { timeout: 60_000 }, async () => {
    const sim = await simulator();
    const image = makeEsp8266Image({ size: 200 * 1024, flashMode: 'dio' });
    const phases: FlashProgress['phase'][] = [];
    // The "user": asked for one plain RESET after a flash without reset lines.
    const result = await flashEsp8266({
      portPath: sim.path,
      image,
      onProgress: (progress) => phases.push(progress.phase),
      onNeedReset: () => sim.pressReset(),
    });
    expect(result).toMatchObject({
      chip: expect.stringMatching(/^ESP8266/),
      flashSizeBytes: 4 * 1024 * 1024,
      flashMode: 'dio',
      baud: 460_800,
      boot: 'ok',
      attempts: 1,
      restartedBy: 'stub',
      bootModeLatch: 'flash',
    });
    // On a busy computer esptool-js's own read timeouts can miss the first attempt; the
    // flasher then asks for the buttons ('bootloader') and tries again. Every other phase
    // comes, in this order.
    const seen = [...new Set(phases)].filter((phase) => phase !== 'bootloader');
    expect(seen).toEqual(['check-image', 'connect', 'detect', 'write', 'verify', 'reset', 'boot-check', 'press-reset', 'done']);
    expect(sim.latchedBootMode).toBe('flash');
    const flashed = sim.readFlash(0, image.length);
    // Byte 3 (flash size/frequency) is patched to the detected size; the rest is the image.
    expect(flashed.subarray(4).equals(image.subarray(4))).toBe(true);
    expect([...flashed.subarray(0, 3)]).toEqual([...image.subarray(0, 3)]);
  });

  it('after a flash by hand, RESET not pressed: the latch stays "download", whatever MicroPython prints meanwhile', { timeout: 60_000 }, async () => {
    const sim = await simulator();
    // A first boot: "Performing initial setup", a pause while LittleFS is made, then the banner.
    const result = await flashEsp8266({
      portPath: sim.path,
      image: makeEsp8266Image({ size: 64 * 1024, flashMode: 'dio', variant: 'GENERIC' }),
      resetWaitMs: 3_000,
    });
    expect(result).toMatchObject({ boot: 'ok', restartedBy: 'stub', bootModeLatch: 'download' });
    // Which line is the evidence depends on when the host reached 115200: the first line
    // comes 100 ms after the ROM's load log, and a loaded host may still be at 74880 then.
    expect(result.bootEvidence).toMatch(MICROPYTHON_STARTED);
    expect(sim.latchedBootMode).toBe('download');
  });

  it('after a flash by hand, BOOT held with RESET: the flasher says so, and the plain RESET that follows counts', { timeout: 60_000 }, async () => {
    const sim = await simulator();
    const messages: string[] = [];
    const result = await flashEsp8266({
      portPath: sim.path,
      image: makeEsp8266Image({ size: 64 * 1024, flashMode: 'dio' }),
      onNeedReset: () => void sim.pressBootAndReset(),
      onProgress: (progress) => {
        messages.push(progress.message);
        if (/was BOOT held/.test(progress.message)) void sim.pressReset();
      },
    });
    expect(result).toMatchObject({ boot: 'ok', restartedBy: 'stub', bootModeLatch: 'flash' });
    expect(messages).toContain('the board restarted in download mode (was BOOT held?): press RESET alone, without BOOT');
    expect(sim.latchedBootMode).toBe('flash');
  });

  it('detects an MD5 mismatch', { timeout: 60_000 }, async () => {
    const sim = await simulator({ corruptBlock: 1 });
    const error = await flashEsp8266({ portPath: sim.path, image: makeEsp8266Image({ size: 100 * 1024, flashMode: 'dio' }), bootCheckMs: 0 }).catch(
      (e: unknown) => e,
    );
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
    await expect(flashEsp8266({ portPath: sim.path, image: Buffer.from('#!/bin/sh\necho not firmware\n'.repeat(10)) })).rejects.toBeInstanceOf(
      FirmwareImageError,
    );
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

describe('how the board came up, read at the rates it talks at (auto-reset adapter, RFC 2217)', () => {
  it('a qio image on a dio board: "Fatal exception" read at 74880, re-flashed in dio, MicroPython read at 115200', { timeout: 90_000 }, async () => {
    const sim = await autoResetBoard({ needsMode: 'dio' });
    const phases: string[] = [];
    const result = await flashEsp8266({
      portPath: sim.path,
      image: makeEsp8266Image({ size: 120 * 1024, flashMode: 'qio' }),
      onProgress: (p) => phases.push(`${p.phase}: ${p.message}`),
    });
    expect(result).toMatchObject({ flashMode: 'dio', boot: 'ok', attempts: 2, restartedBy: 'reset-lines', bootModeLatch: 'flash' });
    expect(result.bootEvidence).toMatch(/at 115200 baud$/);
    expect(phases.find((line) => line.startsWith('reflash:'))).toMatch(/flash mode qio \(Fatal exception \(0\) at 74880 baud\): flashing again in dio/);
  });

  it('a firmware that keeps restarting is a boot loop: dio and dout tried, then a clear error', { timeout: 120_000 }, async () => {
    const sim = await autoResetBoard({
      // Restarts 50 ms after it started, without a word (a watchdog reset, say).
      onBoot: (firmware) => {
        const timer = setTimeout(() => firmware.restart(), 50);
        return () => clearTimeout(timer);
      },
    });
    const error = await flashEsp8266({ portPath: sim.path, image: makeEsp8266Image({ size: 64 * 1024, flashMode: 'dio' }), bootCheckMs: 4_000 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FlashError);
    expect((error as Error).message).toMatch(/does not boot after flashing \(flash mode dout: the ROM's boot lines repeat: \d+ resets nobody asked for/);
  });

  it("another firmware's data where MicroPython keeps its files: cleared before writing, and the first boot formats it", { timeout: 120_000 }, async () => {
    const flash = Buffer.alloc(4 << 20, 0xff);
    Buffer.from('SPIFFS from the firmware this board had before').copy(flash, 0x100000);
    Buffer.from('more of its files').copy(flash, 0x180000);
    const sim = await autoResetBoard({}, flash);
    const image = makeEsp8266Image({ size: 128 * 1024, flashMode: 'dio', variant: 'GENERIC' });
    const phases: string[] = [];
    const result = await flashEsp8266({ portPath: sim.path, image, onProgress: (p) => phases.push(`${p.phase}: ${p.message}`) });
    expect(result).toMatchObject({ boot: 'ok', attempts: 1, filesystem: 'cleared', variant: { name: 'GENERIC', filesystem: true } });
    expect(result.bootEvidence).toMatch(MICROPYTHON_STARTED);
    expect(phases).toContain(
      "erase: another firmware's data is where MicroPython keeps its files: clearing it, so MicroPython starts with an empty file system",
    );
    // Only the area's first two sectors were erased (the first boot formats the rest).
    expect(sim.commandLog.filter((entry) => entry.name === 'ERASE_REGION')).toHaveLength(1);
    expect(sim.readFlash(0x100000, 16).toString('latin1', 8, 16)).toBe('littlefs');
    expect(sim.readFlash(0x180000, 17).toString('latin1')).toBe('more of its files');
  });

  it('a MicroPython file system is kept when MicroPython is flashed again', { timeout: 120_000 }, async () => {
    const sim = await autoResetBoard();
    const image = makeEsp8266Image({ size: 128 * 1024, flashMode: 'dio', variant: 'GENERIC' });
    const first = await flashEsp8266({ portPath: sim.path, image });
    expect(first).toMatchObject({ boot: 'ok', filesystem: 'blank' });
    const superblock = sim.readFlash(0x100000, 4096);
    const phases: string[] = [];
    const again = await flashEsp8266({ portPath: sim.path, image, onProgress: (p) => phases.push(`${p.phase}: ${p.message}`) });
    expect(again).toMatchObject({ boot: 'ok', filesystem: 'kept' });
    expect(again.bootEvidence).not.toMatch(/Performing initial setup/);
    expect(phases).toContain('detect: the board has a MicroPython file system (LittleFS): its files are kept');
    expect(sim.readFlash(0x100000, 4096).equals(superblock)).toBe(true);
  });

  it('a board that still says "looks corrupt" after flashing: the region it names is cleared and the board started again', { timeout: 120_000 }, async () => {
    const flash = Buffer.alloc(4 << 20, 0xff);
    Buffer.from('SPIFFS from the firmware this board had before').copy(flash, 0x100000);
    const sim = await autoResetBoard({}, flash);
    // An image we do not recognise as a MicroPython build: its layout is not assumed, so
    // only the board's own message tells where its file system is.
    const image = makeEsp8266Image({ size: 128 * 1024, flashMode: 'dio' });
    const phases: string[] = [];
    const result = await flashEsp8266({ portPath: sim.path, image, onProgress: (p) => phases.push(`${p.phase}: ${p.message}`) });
    expect(result).toMatchObject({ boot: 'ok', attempts: 2, filesystem: 'cleared', variant: null });
    expect(result.bootEvidence).toMatch(/Performing initial setup/);
    expect(
      phases.some((line) =>
        /^boot-check: MicroPython runs, but the filesystem starting at sector 256 with size 763 sectors looks corrupt: clearing it/.test(line),
      ),
    ).toBe(true);
    expect(phases).toContain('erase: clearing 8 KB at 0x100000, where MicroPython keeps its files');
    // The image was written once: the second round only erased and restarted.
    expect(sim.commandLog.filter((entry) => entry.name === 'FLASH_DEFL_BEGIN')).toHaveLength(1);
  });

  it('a firmware that never says a word is not reported flashed: restarted twice more, then an error that says what to do', { timeout: 90_000 }, async () => {
    const sim = await autoResetBoard({ onBoot: () => undefined });
    const phases: string[] = [];
    const error = await flashEsp8266({
      portPath: sim.path,
      image: makeEsp8266Image({ size: 64 * 1024, flashMode: 'dio' }),
      bootCheckMs: 2_500,
      onProgress: (p) => phases.push(`${p.phase}: ${p.message}`),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FlashError);
    expect((error as Error).message).toMatch(
      /^the firmware is written and verified, but the board did not start: restarted 3 times through the adapter's reset lines, only the ROM's boot lines; no firmware output\. Unplug the board, plug it in again and flash it again/,
    );
    expect(phases.filter((line) => /^reset: the board said nothing after starting/.test(line))).toEqual([
      "reset: the board said nothing after starting (only the ROM's boot lines; no firmware output): restarting it again (2 of 3)",
      "reset: the board said nothing after starting (only the ROM's boot lines; no firmware output): restarting it again (3 of 3)",
    ]);
    expect(phases.some((line) => line.startsWith('done'))).toBe(false);
  });

  it('a first start that hangs without a word: the board is restarted, and flashed once MicroPython is heard', { timeout: 90_000 }, async () => {
    const sim = await autoResetBoard({ silentBoots: 1 });
    const phases: string[] = [];
    const result = await flashEsp8266({
      portPath: sim.path,
      image: makeEsp8266Image({ size: 64 * 1024, flashMode: 'dio' }),
      onProgress: (p) => phases.push(`${p.phase}: ${p.message}`),
    });
    expect(result).toMatchObject({ boot: 'ok', attempts: 1, restartedBy: 'reset-lines', bootModeLatch: 'flash' });
    expect(result.bootEvidence).toMatch(/Performing initial setup|MicroPython v1\.27|>>>/);
    expect(phases.filter((line) => line.startsWith('reset: the board said nothing'))).toHaveLength(1);
    expect(sim.commandLog.filter((entry) => entry.name === 'FLASH_DEFL_BEGIN')).toHaveLength(1); // not written again
  });
});

describe('a silent start without reset lines: RESET is asked for', () => {
  it('RESET pressed: MicroPython is heard after it, and the latch says "flash" without a second request', { timeout: 90_000 }, async () => {
    const sim = await simulator({ silentBoots: 1 });
    const asked: string[] = [];
    const result = await flashEsp8266({
      portPath: sim.path,
      image: makeEsp8266Image({ size: 64 * 1024, flashMode: 'dio' }),
      onProgress: (p) => p.phase === 'press-reset' && asked.push(p.message),
      onNeedReset: () => sim.pressReset(),
    });
    expect(result).toMatchObject({ boot: 'ok', restartedBy: 'stub', bootModeLatch: 'flash' });
    // Only the ROM's load log came (the stub jumped to the flash: no reset, no banner).
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatch(
      /^the board said nothing after starting \(\d+ bytes, none of them MicroPython's\): press RESET on the board once \(not BOOT\) to start it$/,
    );
  });

  it('RESET not pressed: an error that says to press it, never "flashed"', { timeout: 90_000 }, async () => {
    const sim = await simulator({ silentBoots: 1 });
    const error = await flashEsp8266({ portPath: sim.path, image: makeEsp8266Image({ size: 64 * 1024, flashMode: 'dio' }), resetWaitMs: 1_000 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FlashError);
    expect((error as Error).message).toMatch(
      /^the firmware is written and verified, but the board did not start \(\d+ bytes, none of them MicroPython's\), and RESET was not pressed: press RESET on the board \(not BOOT\), then set it up again$/,
    );
  });
});

describe('MicroPython builds and the ESP8285', () => {
  it('refuses the GENERIC build on a 1 MB board before writing, naming the build to use', { timeout: 60_000 }, async () => {
    const sim = await simulator({ flashSizeBytes: 1 << 20 });
    const error = await flashEsp8266({ portPath: sim.path, image: makeEsp8266Image({ size: 200 * 1024, variant: 'GENERIC' }) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FirmwareVariantError);
    expect((error as Error).message).toBe(
      'this is the ESP8266 build for boards with 2 MB of flash or more; this board has 1 MB: use ESP8266_GENERIC-FLASH_1M-20251209-v1.27.0.bin',
    );
    expect(flashWrites(sim)).toBe(0);
  });

  it('writes the 512 KiB build and says it has no file system; notes what a 1 MB build leaves unused', { timeout: 90_000 }, async () => {
    const small = await simulator({ flashSizeBytes: 1 << 20 });
    const result = await flashEsp8266({
      portPath: small.path,
      image: makeEsp8266Image({ size: 200 * 1024, flashMode: 'dio', variant: 'FLASH_512K' }),
      onNeedReset: () => small.pressReset(),
    });
    expect(result).toMatchObject({ boot: 'ok', variant: { name: 'FLASH_512K', filesystem: false, mpy: false } });
    const big = await simulator();
    const notes: string[] = [];
    await flashEsp8266({
      portPath: big.path,
      image: makeEsp8266Image({ size: 200 * 1024, flashMode: 'dio', variant: 'FLASH_1M' }),
      bootCheckMs: 0,
      onProgress: (p) => p.phase === 'detect' && notes.push(p.message),
    });
    expect(notes.some((note) => /board has 4 MB: ESP8266_GENERIC-20251209-v1\.27\.0\.bin would give it a larger file system and asyncio/.test(note))).toBe(
      true,
    );
  });

  it('an ESP8285 is written in dout from the start: no crash, no second attempt', { timeout: 90_000 }, async () => {
    const sim = await simulator({ chip: 'ESP8285' });
    const phases: string[] = [];
    const result = await flashEsp8266({
      portPath: sim.path,
      image: makeEsp8266Image({ size: 120 * 1024, flashMode: 'qio', variant: 'FLASH_1M' }),
      onProgress: (p) => phases.push(`${p.phase}: ${p.message}`),
      onNeedReset: () => sim.pressReset(),
    });
    expect(result).toMatchObject({ chip: 'ESP8285', flashSizeBytes: 1 << 20, flashMode: 'dout', boot: 'ok', attempts: 1 });
    expect(phases).toContain('detect: an ESP8285: its built-in flash works in dout mode only, so the image is written in dout');
    expect(phases.some((line) => line.startsWith('reflash'))).toBe(false);
    expect(sim.readFlash(2, 1)[0]).toBe(3); // dout in the header
  });
});

describe("flash timing (a W25Q32's, the simulator's default)", () => {
  it("waits out a block that inflates to 800 KB of erasing and writing (esptool's 40 s per MB)", { timeout: 120_000 }, async () => {
    const sim = await simulator({ flashTiming: undefined });
    // 800 KB of padding deflates to under a kilobyte: one block, then over 4 s of flash
    // work (12 block erases, 3200 page programs) before the next block is answered. With
    // the old 3 s per block esptool-js sent that block again, which the stub wrote twice.
    // The image ends below 1 MB, where MicroPython's file system starts.
    const image = Buffer.concat([
      makeEsp8266Image({ size: 48 * 1024, flashMode: 'dio' }),
      Buffer.alloc(800 * 1024, 0xff),
      makeEsp8266Image({ size: 100 * 1024, seed: 4 }).subarray(16),
    ]);
    const result = await flashEsp8266({ portPath: sim.path, image, bootCheckMs: 0, resetWaitMs: 0 });
    expect(result).toMatchObject({ imageBytes: image.length, attempts: 1, baud: 460_800 });
    expect(sim.readFlash(4, image.length - 4).equals(image.subarray(4))).toBe(true);
  });
});

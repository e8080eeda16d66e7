/**
 * Starting the firmware a simulated ESP8266 booted from flash (esp8266-simulator.ts): the
 * test's `onBoot` gets the chip as a BootedFirmware; without one, MicroPython's stand-in
 * runs (micropython-standin.ts). What the firmware does after the chip was reset again is
 * dropped.
 */
import type { SerialLink } from '../pty-link.js';
import type { BootImage } from './boot-console.js';
import type { FlashChip, FlashTiming } from './flash-chip.js';
import { runMicroPythonStandin } from './micropython-standin.js';
import type { BootedFirmware, Esp8266SimulatorOptions } from './simulator-types.js';

/** What the simulator lends the firmware of one life of the chip (from this boot to the next reset). */
export interface FirmwareChip {
  link: SerialLink;
  flash: FlashChip;
  timing: FlashTiming;
  onBoot: Esp8266SimulatorOptions['onBoot'];
  /** Whether this life of the chip goes on (no reset since the firmware started). */
  live(): boolean;
  /** Output to the host at the chip's rate now. */
  send(data: string | Uint8Array): void;
  /** Where what the host sends goes while this firmware runs. */
  setInput(listener: (data: Buffer) => void): void;
  /** A software reset. */
  restart(): void;
  wait(ms: number): Promise<void>;
  fault(error: unknown): void;
}

/** Starts the firmware; returns the cleanup `onBoot` gave, if any. */
export function startFirmware(image: Extract<BootImage, { valid: true }>, chip: FirmwareChip): (() => void) | null {
  const firmware: BootedFirmware = {
    image: { flashMode: image.flashMode, entry: image.entry, segments: image.segments.length },
    readFlash: (offset, length) => chip.flash.read(offset, length),
    write: (data) => {
      if (chip.live()) chip.send(data);
    },
    onInput: (listener) => {
      if (chip.live()) chip.setInput(listener);
    },
    link: chip.link,
    restart: () => {
      if (chip.live()) chip.restart();
    },
  };
  if (chip.onBoot) {
    const cleanup = chip.onBoot(firmware);
    return typeof cleanup === 'function' ? cleanup : null;
  }
  runMicroPythonStandin({
    flash: chip.flash,
    timing: chip.timing,
    write: (text) => firmware.write(text),
    onInput: (listener) => firmware.onInput(listener),
    sleep: async (ms) => {
      await chip.wait(ms);
      return chip.live();
    },
  }).catch((error: unknown) => chip.fault(error));
  return null;
}

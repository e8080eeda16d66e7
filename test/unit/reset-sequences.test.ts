/**
 * The reset sequences the flasher owns, step by step, against the auto-reset circuit of a
 * NodeMCU / Wemos D1 mini (the lab's model of it): what the chip's EN and IO0 pins see.
 */
import { describe, expect, it } from 'vitest';
import { enterBootloader, hardReset, usbJtagSerialReset, RESET_PULSE_MS, type ResetLines } from '../../electron/manager/usb/reset-sequences.js';
import { autoResetPins } from '../lab/esp8266/reset-circuit.js';

/** Records every line state and the time (a fake clock that advances on sleep). */
function recorder() {
  let now = 0;
  const steps: Array<{ at: number; dtr: boolean; rts: boolean; en: boolean; io0: boolean }> = [];
  let dtr = false;
  let rts = false;
  const lines: ResetLines = {
    async setSignals(signals) {
      dtr = signals.dataTerminalReady ?? dtr;
      rts = signals.requestToSend ?? rts;
      steps.push({ at: now, dtr, rts, ...autoResetPins({ dtr, rts }) });
    },
  };
  const sleep = async (ms: number) => {
    now += ms;
  };
  return { lines, sleep, steps };
}

describe('reset sequences', () => {
  it('enterBootloader holds EN low for 100 ms, then releases it with IO0 low (download mode), then releases IO0', async () => {
    const { lines, sleep, steps } = recorder();
    await enterBootloader(lines, { sleep });
    expect(steps.map((step) => [step.at, step.en, step.io0])).toEqual([
      [0, true, true],
      [0, true, true],
      [0, false, true],
      [RESET_PULSE_MS, true, false],
      [RESET_PULSE_MS + 50, true, true],
    ]);
    // The chip samples IO0 just after EN rises: it is low then.
    const released = steps.findIndex((step, index) => index > 0 && step.en && !steps[index - 1]!.en);
    expect(steps[released]!.io0).toBe(false);
  });

  it('hardReset pulses EN low for 100 ms with IO0 high (boot from flash)', async () => {
    const { lines, sleep, steps } = recorder();
    await hardReset(lines, { sleep });
    expect(steps.map((step) => [step.at, step.en, step.io0])).toEqual([
      [0, false, true],
      [RESET_PULSE_MS, true, true],
    ]);
  });

  it('the slow-EN variant keeps IO0 low longer', async () => {
    const { lines, sleep, steps } = recorder();
    await enterBootloader(lines, { sleep, resetDelayMs: 550 });
    expect(steps.at(-1)!.at - steps.at(-2)!.at).toBe(550);
  });

  it('usbJtagSerialReset passes through (1,1), never (0,0), between IO0 low and reset', async () => {
    const { lines, sleep, steps } = recorder();
    await usbJtagSerialReset(lines, { sleep });
    expect(steps.map((step) => [step.dtr, step.rts])).toEqual([
      [false, false],
      [true, false],
      [true, true],
      [false, true],
      [false, false],
    ]);
  });
});

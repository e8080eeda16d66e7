/**
 * How a lab board's USB-serial adapter is wired to the chip's EN and IO0 pins.
 *
 * - `auto`: the two-transistor auto-reset circuit of NodeMCU / Wemos D1 mini boards:
 *     EN  is pulled low while RTS is asserted and DTR is not;
 *     IO0 is pulled low while DTR is asserted and RTS is not;
 *   otherwise both are pulled high (see electron/manager/usb/reset-sequences.ts).
 * - `unwired`: the adapter accepts DTR/RTS changes but nothing is connected to them (an
 *   ESP-01 on a plain adapter): only the buttons reset the chip.
 * - `none`: the link has no modem lines at all (a pty: the host's DTR/RTS calls fail).
 *
 * The chip samples IO0 STRAP_DELAY_MS after EN rises (on a real board EN rises through an
 * RC network, and the ROM reads the strapping pins a moment after reset is released), so
 * a host that releases EN and pulls IO0 low in two quick steps still gets download mode,
 * as esptool's ClassicReset relies on.
 */
import { EventEmitter } from 'node:events';

export type AdapterModel = 'auto' | 'unwired' | 'none';
export const ADAPTER_MODELS: readonly AdapterModel[] = ['auto', 'unwired', 'none'];

/** High (true) or low (false) pin levels. */
export interface ChipPins {
  en: boolean;
  io0: boolean;
}

export const STRAP_DELAY_MS = 5;

/** The auto-reset circuit's truth table: modem lines (true = asserted) → pin levels. */
export function autoResetPins(lines: { dtr: boolean; rts: boolean }): ChipPins {
  return { en: !(lines.rts && !lines.dtr), io0: !(lines.dtr && !lines.rts) };
}

export interface ResetCircuitEvents {
  /** EN went low: the chip stops (held in reset). */
  hold: [];
  /** EN went high and IO0 was sampled: the chip boots in this mode. */
  release: [mode: 'download' | 'flash'];
}

export class ResetCircuit extends EventEmitter<ResetCircuitEvents> {
  private pins: ChipPins = { en: true, io0: true };
  private strapTimer: NodeJS.Timeout | undefined;

  constructor(readonly model: AdapterModel) {
    super();
  }

  /** The host changed its modem lines. */
  setLines(lines: { dtr: boolean; rts: boolean }): void {
    if (this.model !== 'auto') return; // unwired: nothing happens; none: never called
    const before = this.pins;
    this.pins = autoResetPins(lines);
    if (before.en && !this.pins.en) {
      clearTimeout(this.strapTimer);
      this.strapTimer = undefined;
      this.emit('hold');
    } else if (!before.en && this.pins.en) {
      clearTimeout(this.strapTimer);
      this.strapTimer = setTimeout(() => {
        this.strapTimer = undefined;
        if (this.pins.en) this.emit('release', this.pins.io0 ? 'flash' : 'download');
      }, STRAP_DELAY_MS);
    }
  }

  /** The pin levels now (for tests and the lab CLI). */
  get levels(): ChipPins {
    return { ...this.pins };
  }

  dispose(): void {
    clearTimeout(this.strapTimer);
    this.strapTimer = undefined;
  }
}

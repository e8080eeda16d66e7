/** The lab's adapter models: the auto-reset circuit's truth table and strap sampling. */
import { describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { ResetCircuit, autoResetPins } from './reset-circuit.js';

describe('reset circuit (lab)', () => {
  it('follows the NodeMCU truth table', () => {
    expect(autoResetPins({ dtr: false, rts: false })).toEqual({ en: true, io0: true });
    expect(autoResetPins({ dtr: true, rts: true })).toEqual({ en: true, io0: true });
    expect(autoResetPins({ dtr: false, rts: true })).toEqual({ en: false, io0: true });
    expect(autoResetPins({ dtr: true, rts: false })).toEqual({ en: true, io0: false });
  });

  it('auto: EN low holds the chip; released with IO0 low it boots the ROM loader, even when IO0 drops just after EN rises', async () => {
    const circuit = new ResetCircuit('auto');
    const holds: number[] = [];
    circuit.on('hold', () => holds.push(1));
    circuit.setLines({ dtr: false, rts: true });
    expect(holds).toHaveLength(1);
    circuit.setLines({ dtr: true, rts: true }); // EN rises first (two-step ClassicReset)…
    circuit.setLines({ dtr: true, rts: false }); // …IO0 low a moment later
    const [mode] = await once(circuit, 'release');
    expect(mode).toBe('download');
    circuit.setLines({ dtr: false, rts: true });
    circuit.setLines({ dtr: false, rts: false });
    const [again] = await once(circuit, 'release');
    expect(again).toBe('flash');
    circuit.dispose();
  });

  it('unwired: the lines change nothing', () => {
    const circuit = new ResetCircuit('unwired');
    let events = 0;
    circuit.on('hold', () => events++);
    circuit.on('release', () => events++);
    circuit.setLines({ dtr: false, rts: true });
    circuit.setLines({ dtr: true, rts: false });
    expect(events).toBe(0);
    circuit.dispose();
  });
});

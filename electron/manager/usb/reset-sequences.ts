/**
 * The reset sequences that put an ESP chip into its ROM bootloader or restart it from
 * flash, driven through a USB-serial adapter's DTR and RTS lines — esptool's strategies
 * (esptool/reset.py), owned here. esptool-js 0.7's own HardReset only releases RTS (it
 * never pulls EN low, and its setRTS re-sends the saved DTR), so a NodeMCU or a Wemos D1
 * mini would never leave the flasher stub after flashing.
 *
 * Line convention: `true` = asserted (what serialport's set() and Web Serial's
 * setSignals() take; the adapter's pin is then low). On the common two-transistor
 * auto-reset circuit (NodeMCU, Wemos D1 mini, most ESP dev boards):
 *
 *   DTR  RTS  │  EN (CHIP_PU)  IO0 (boot strap)
 *   ──────────┼───────────────────────────────
 *   off  off  │  high          high      idle
 *   on   on   │  high          high      idle (both transistors off)
 *   off  on   │  LOW           high      chip held in reset
 *   on   off  │  high          LOW       boot strap pulled low
 *
 * The chip samples IO0 shortly after EN rises: low → ROM download mode, high → boot from
 * flash. Each step below sets both lines in one call (esptool's UnixTightReset), so the
 * circuit never passes through a state the table does not list. Every timing is written
 * beside its step.
 */

/** Anything that can set the two lines at once (WebSerialPort.setSignals). */
export interface ResetLines {
  setSignals(signals: { dataTerminalReady?: boolean; requestToSend?: boolean }): Promise<void>;
}

export type Sleep = (ms: number) => Promise<void>;

const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** esptool's DEFAULT_RESET_DELAY: how long IO0 stays low after EN rose. */
export const DEFAULT_RESET_DELAY_MS = 50;
/** How long EN is held low: long enough for any EN capacitor to discharge. */
export const RESET_PULSE_MS = 100;

async function step(lines: ResetLines, dtr: boolean, rts: boolean): Promise<void> {
  await lines.setSignals({ dataTerminalReady: dtr, requestToSend: rts });
}

/**
 * Into the ROM bootloader (esptool "default_reset" on Linux/macOS: UnixTightReset):
 *   (DTR,RTS) = (off,off), (on,on)          both lines known, chip untouched
 *   (off,on)                                 EN low: chip in reset, IO0 high
 *   wait 100 ms
 *   (on,off)                                 EN released, IO0 low: boots into the ROM loader
 *   wait resetDelayMs (50 ms; esptool retries with 550 ms for slow EN circuits)
 *   (off,off)                                IO0 released
 */
export async function enterBootloader(lines: ResetLines, options: { resetDelayMs?: number; sleep?: Sleep } = {}): Promise<void> {
  const sleep = options.sleep ?? realSleep;
  await step(lines, false, false);
  await step(lines, true, true);
  await step(lines, false, true);
  await sleep(RESET_PULSE_MS);
  await step(lines, true, false);
  await sleep(options.resetDelayMs ?? DEFAULT_RESET_DELAY_MS);
  await step(lines, false, false);
}

/**
 * Restart from flash (esptool "hard_reset"): EN pulsed low with IO0 high.
 *   (off,on)    EN low, IO0 high
 *   wait 100 ms
 *   (off,off)   EN released with IO0 high: the chip boots the flash, and its boot mode
 *               latch now says "flash" (a later software reset boots the flash too)
 */
export async function hardReset(lines: ResetLines, options: { sleep?: Sleep } = {}): Promise<void> {
  const sleep = options.sleep ?? realSleep;
  await step(lines, false, true);
  await sleep(RESET_PULSE_MS);
  await step(lines, false, false);
}

/**
 * Into the bootloader of a chip on its own USB-Serial/JTAG port (ESP32-C3/S3, 303a:1001),
 * where DTR and RTS are not wires but signals the USB peripheral decodes (esptool's
 * USBJTAGSerialReset). Not used for the ESP8266, which has no native USB; kept so the
 * port layer offers every strategy the flasher may need.
 *   (off,off) wait 100 ms       idle
 *   (on,off)  wait 100 ms       IO0 low
 *   (on,on) then (off,on)       reset, passing through (1,1) rather than (0,0)
 *   wait 100 ms
 *   (off,off)                   out of reset in download mode
 */
export async function usbJtagSerialReset(lines: ResetLines, options: { sleep?: Sleep } = {}): Promise<void> {
  const sleep = options.sleep ?? realSleep;
  await step(lines, false, false);
  await sleep(100);
  await step(lines, true, false);
  await sleep(100);
  await step(lines, true, true);
  await step(lines, false, true);
  await sleep(100);
  await step(lines, false, false);
}

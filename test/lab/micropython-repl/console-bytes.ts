/**
 * The bytes of MicroPython's console that the REPL simulator (micropython-repl-simulator.ts)
 * reads and writes: the control characters, the raw REPL's banner, the soft reboot line,
 * and output as the ESP8266 sends it.
 */
export const CTRL_A = 0x01;
export const CTRL_B = 0x02;
export const CTRL_C = 0x03;
export const CTRL_D = 0x04;
export const CTRL_E = 0x05;
export const RAW_BANNER = 'raw REPL; CTRL-B to exit\r\n';
export const SOFT_REBOOT = 'MPY: soft reboot\r\n';

/** MicroPython's output is "cooked" on the ESP8266: every \n goes out as \r\n. */
export function cook(text: string): string {
  return text.replace(/\n/g, '\r\n');
}

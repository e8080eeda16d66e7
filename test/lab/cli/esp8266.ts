/**
 * npm run lab:esp8266 -- --link PATH [--needs-mode dio|dout] [--dir DIR] [--boot flash]
 *
 * Runs a simulated ESP8266 on a pty linked at PATH until Ctrl-C: the ROM bootloader (it
 * starts in download mode, as if BOOT were held), and after flashing MicroPython with its
 * REPL, running the Cloudmanager client once provisioned. The adapter has no reset lines:
 * press `b` + Enter for BOOT+RESET (download mode), `r` + Enter for RESET.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { SimulatedEsp8266 } from '../simulated-esp8266.js';
import { LAB_WIFI } from '../../../electron/manager/virtual/micropython-fleet.js';

const { values } = parseArgs({ options: {
  link: { type: 'string' }, 'needs-mode': { type: 'string' }, dir: { type: 'string' }, boot: { type: 'string' },
} });
const needsMode = values['needs-mode'] as 'dio' | 'dout' | undefined;
if (!values.link || (needsMode && !['dio', 'dout', 'qio', 'qout'].includes(needsMode)) || (values.boot && !['download', 'flash'].includes(values.boot))) {
  process.stderr.write('usage: npm run lab:esp8266 -- --link PATH [--needs-mode dio|dout] [--dir DIR] [--boot download|flash]\n');
  process.exit(2);
}
const folder = values.dir ?? await mkdtemp(path.join(os.tmpdir(), 'cm-esp8266-'));
const board = new SimulatedEsp8266({
  folder, link: values.link, needsMode,
  onLog: (level, message) => {
    if (level !== 'debug') process.stderr.write(`[board] ${message}\n`);
  },
});
await board.powerOn((values.boot as 'download' | 'flash' | undefined) ?? 'download');
process.stdout.write(`Simulated ESP8266 on ${board.path} (flash and files in ${folder}), in ${values.boot === 'flash' ? 'its firmware' : 'download mode'}.\n` +
  `Its wifi: network ${JSON.stringify(LAB_WIFI.ssid)}, password ${JSON.stringify(LAB_WIFI.password)} (any other fails to join, like a real one).\n` +
  'Keys: b + Enter = hold BOOT and press RESET (download mode), r + Enter = RESET, Ctrl-C = unplug.\n');
const keys = readline.createInterface({ input: process.stdin });
keys.on('line', (line) => {
  if (line.trim() === 'b') void board.rom.pressBootAndReset().then(() => process.stdout.write('download mode\n'));
  else if (line.trim() === 'r') void board.rom.pressReset().then(() => process.stdout.write('reset\n'));
});
await new Promise<void>((resolve) => {
  process.once('SIGINT', resolve);
  process.once('SIGTERM', resolve);
});
keys.close();
await board.close();
process.stdout.write('unplugged\n');

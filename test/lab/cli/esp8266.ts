/**
 * npm run lab:esp8266 -- [--adapter auto|unwired|none] [--link PATH] [--needs-mode dio|dout]
 *                        [--dir DIR] [--boot download|flash] [--port N] [--chip esp8266|esp8285] [--silent-boots N]
 *
 * Runs a simulated ESP8266 until Ctrl-C: the ROM bootloader, and after flashing MicroPython
 * with its REPL, running the Cloudmanager client once provisioned. The adapter:
 * - none (default): a pty linked at PATH, no modem lines (--link is required);
 * - auto: the NodeMCU / D1 mini auto-reset circuit, reached over RFC 2217 (the host's DTR
 *   and RTS reset the chip): flash with --port rfc2217://127.0.0.1:N;
 * - unwired: RFC 2217 too, but DTR/RTS reach nothing (buttons only).
 * `--chip esp8285`: an ESP8285 (1 MB of flash inside the chip, dout only).
 * `--silent-boots N`: the first N starts of the firmware hang without a word (a board that
 * browns out on its first start): only a reset starts it.
 * The flash takes a W25Q32's time (sector erase 45 ms, chip erase 10 s for 4 MB).
 * Keys: `b` + Enter for BOOT+RESET (download mode), `r` + Enter for RESET. Without --dir the
 * flash lives in a temp folder that is removed on exit. `--help` says all this.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { SimulatedEsp8266 } from '../simulated-esp8266.js';
import { Rfc2217Link } from '../rfc2217-link.js';
import { ADAPTER_MODELS, type AdapterModel } from '../esp8266/reset-circuit.js';
import { LAB_WIFI } from '../../../electron/manager/virtual/micropython-fleet.js';

const USAGE =
  'usage: npm run lab:esp8266 -- [--adapter auto|unwired|none] [--link PATH (adapter none)] [--port N (auto, unwired)]\n' +
  '                            [--needs-mode dio|dout] [--dir DIR] [--boot download|flash] [--chip esp8266|esp8285] [--silent-boots N]\n';
const HELP = `Runs a simulated ESP8266 until Ctrl-C: its ROM bootloader, and once flashed MicroPython with its REPL.

${USAGE}
  --adapter auto      the NodeMCU / D1 mini auto-reset circuit over RFC 2217: flash with --port rfc2217://127.0.0.1:N
  --adapter unwired   RFC 2217 too, but DTR/RTS reach nothing (BOOT and RESET buttons only)
  --adapter none      (default) a pty linked at --link PATH, no modem lines
  --port N            the RFC 2217 port (default: a free one)
  --needs-mode MODE   the flash only works when written in this mode (dio or dout)
  --dir DIR           keep the flash and the board's files in DIR (default: a temp folder, removed on exit)
  --boot MODE         start in download mode or in its firmware (default: download with --adapter none, else flash)
  --chip CHIP         esp8266 (default) or esp8285 (1 MB of flash inside the chip, dout only)
  --silent-boots N    the first N starts of the firmware hang without a word; only a reset starts it
  -h, --help          this help
Keys while it runs: b + Enter = hold BOOT and press RESET (download mode), r + Enter = RESET.
`;
let parsed;
try {
  parsed = parseArgs({
    options: {
      link: { type: 'string' },
      'needs-mode': { type: 'string' },
      dir: { type: 'string' },
      boot: { type: 'string' },
      adapter: { type: 'string', default: 'none' },
      port: { type: 'string' },
      chip: { type: 'string', default: 'esp8266' },
      'silent-boots': { type: 'string', default: '0' },
      help: { type: 'boolean', short: 'h' },
    },
  });
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n${USAGE}`);
  process.exit(2);
}
const { values } = parsed;
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const silentBoots = Number(values['silent-boots']);
const needsMode = values['needs-mode'] as 'dio' | 'dout' | undefined;
const adapter = values.adapter as AdapterModel;
if (
  (adapter === 'none' && !values.link) ||
  !ADAPTER_MODELS.includes(adapter) ||
  (needsMode && !['dio', 'dout', 'qio', 'qout'].includes(needsMode)) ||
  (values.boot && !['download', 'flash'].includes(values.boot)) ||
  !['esp8266', 'esp8285'].includes(values.chip) ||
  !Number.isInteger(silentBoots) ||
  silentBoots < 0
) {
  process.stderr.write(USAGE);
  process.exit(2);
}

// Ctrl-C or SIGTERM unplugs the board in whatever state it is (starting, flashing, running
// its firmware): what exists is closed, the temp folder removed, and the process ends
// within STOP_MS even if something does not close. A second signal ends it at once.
const STOP_MS = 1_500;
let tempFolder: string | undefined;
let unplug: (() => Promise<void>) | undefined;
const removeTempFolder = () => {
  if (tempFolder) rmSync(tempFolder, { recursive: true, force: true });
};
const stop = () => {
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  process.on('SIGINT', () => process.exit(130));
  process.on('SIGTERM', () => process.exit(143));
  setTimeout(() => {
    process.stderr.write('the board did not unplug in time; leaving anyway\n');
    removeTempFolder();
    process.exit(1);
  }, STOP_MS).unref();
  void (unplug?.() ?? Promise.resolve())
    .catch((error: Error) => process.stderr.write(`while unplugging: ${error.message}\n`))
    .then(() => {
      removeTempFolder();
      process.stdout.write('unplugged\n');
      process.exit(0);
    });
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

// Made and noted in one step: a signal cannot come in between and leave it behind.
const folder = values.dir ?? (tempFolder = mkdtempSync(path.join(os.tmpdir(), 'cm-esp8266-')));
const link =
  adapter === 'none'
    ? values.link!
    : await Rfc2217Link.open({ baud: 115_200, port: values.port ? Number(values.port) : 0 }).catch((error: NodeJS.ErrnoException) => {
        process.stderr.write(
          error.code === 'EADDRINUSE'
            ? `port ${values.port} is in use (another lab board?): choose another with --port\n`
            : `cannot serve the board: ${error.message}\n`,
        );
        removeTempFolder();
        process.exit(1);
      });
// The RFC 2217 server is ours, not the board's: without closing it the process stays.
unplug = async () => {
  if (typeof link !== 'string') await link.close();
};
const chip = values.chip === 'esp8285' ? ('ESP8285' as const) : ('ESP8266' as const);
const board = new SimulatedEsp8266({
  folder,
  link,
  needsMode,
  adapter,
  chip,
  silentBoots,
  onLog: (level, message) => {
    if (level !== 'debug') process.stderr.write(`[board] ${message}\n`);
  },
});
unplug = async () => {
  await board.close();
  if (typeof link !== 'string') await link.close();
};
const boot = (values.boot as 'download' | 'flash' | undefined) ?? (adapter === 'none' ? 'download' : 'flash');
await board.powerOn(boot);
const adapterText =
  adapter === 'auto'
    ? 'auto-reset adapter (DTR/RTS reset it)'
    : adapter === 'unwired'
      ? 'adapter with DTR/RTS unwired (buttons only)'
      : 'adapter without modem lines';
process.stdout.write(
  `Simulated ${chip} on ${board.path} — ${adapterText} (flash and files in ${folder}), in ${boot === 'flash' ? 'its firmware' : 'download mode'}.\n` +
    `Its wifi: network ${JSON.stringify(LAB_WIFI.ssid)}, password ${JSON.stringify(LAB_WIFI.password)} (any other fails to join, like a real one).\n` +
    'Keys: b + Enter = hold BOOT and press RESET (download mode), r + Enter = RESET, Ctrl-C = unplug.\n',
);
const keys = readline.createInterface({ input: process.stdin });
keys.on('line', (line) => {
  if (line.trim() === 'b') void board.rom.pressBootAndReset().then(() => process.stdout.write('download mode\n'));
  else if (line.trim() === 'r') void board.rom.pressReset().then(() => process.stdout.write('reset\n'));
});
unplug = async () => {
  keys.close();
  await board.close();
  if (typeof link !== 'string') await link.close();
};

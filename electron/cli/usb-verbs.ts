/** `mbm` verbs for boards on USB: ports, flashing, provisioning, serial file copy, firmware. */
import { readFile, access } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import type { ApiClient, EventSubscription } from '../manager/api/client.js';
import type { ApiEvent, SerialPortInfo, UsbProgressEvent } from '../manager/api/contract.js';
import { CliError, intOption, untilInterrupted, write, type OptionSpec, type VerbContext, type VerbSpec } from './cli-framework.js';
import { connectService } from './service-control.js';
import { boardDest } from './board-verbs.js';
import { formatBytes, table } from './format.js';
import { didYouMean } from './suggest.js';

const PROVISION_OPTIONS: Record<string, OptionSpec> = {
  name: { type: 'string', valueName: 'NAME', description: "the board's name in the fleet" },
  'wifi-ssid': { type: 'string', valueName: 'SSID', description: 'the wifi network the board joins' },
  'wifi-password-file': { type: 'string', valueName: 'FILE', description: 'file holding the wifi password (first line; keeps it out of shell history)' },
  server: { type: 'string', valueName: 'HOST', description: "address the board uses to reach the service (default: the service's)" },
  'keep-access-point': { type: 'boolean', description: "leave the board's own wifi access point (MicroPython-xxxxxx) on; by default it is turned off" },
};

/** Prints progress events of USB jobs as they arrive (one line per phase, percent for long ones). */
async function followProgress(api: ApiClient, out: NodeJS.WritableStream): Promise<EventSubscription> {
  let last = '';
  let lastPercent = -10;
  return api.events((event) => {
    if (event.type !== 'usb.progress') return;
    const progress = event as UsbProgressEvent;
    const key = `${progress.step}:${progress.phase}`;
    if (progress.total && progress.done !== undefined) {
      const percent = Math.floor((progress.done / progress.total) * 100);
      if (key === last && (percent < lastPercent + 10 || percent === lastPercent)) return;
      lastPercent = percent;
      last = key;
      write(out, `${progress.step}: ${progress.message} ${percent}% (${formatBytes(progress.done)} of ${formatBytes(progress.total)})\n`);
      return;
    }
    if (key === last && progress.message === '') return;
    last = key;
    lastPercent = -10;
    write(out, `${progress.step}: ${progress.message}\n`);
  });
}

async function wifiPassword(values: VerbContext['values']): Promise<string> {
  const file = values['wifi-password-file'];
  if (typeof file !== 'string') return '';
  try {
    return (await readFile(file, 'utf8')).split(/\r?\n/, 1)[0] ?? '';
  } catch (error) {
    throw new CliError(`cannot read the wifi password file ${file}: ${(error as Error).message}`, 2);
  }
}

async function provisionInput(context: VerbContext, api: ApiClient) {
  const { values } = context;
  if (typeof values.name !== 'string') throw new CliError('--name NAME is required', 2);
  if (typeof values['wifi-ssid'] !== 'string') throw new CliError('--wifi-ssid SSID is required (and --wifi-password-file for a protected network)', 2);
  let server: { host: string; port: number } | undefined;
  if (typeof values.server === 'string') server = { host: values.server, port: (await api.call('status', {})).redis.port };
  return {
    name: values.name,
    wifiSsid: values['wifi-ssid'],
    wifiPassword: await wifiPassword(values),
    server,
    keepAccessPoint: Boolean(values['keep-access-point']),
  };
}

function provisionOutcome(result: { name: string; online: boolean }): string {
  return result.online ? `${result.name} is online.\n` : `${result.name} is provisioned but not online yet: check the wifi name and password.\n`;
}

function requirePort(values: VerbContext['values']): string {
  if (typeof values.port !== 'string') throw new CliError('--port PORT is required (see `mbm usb-ports`)', 2);
  return existingPort(values.port);
}

/**
 * A serial port path that does not exist is said so here (the service runs on this
 * computer), instead of failing later as a board that does not answer.
 */
function existingPort(port: string): string {
  if (process.platform !== 'win32' && !/^rfc2217:\/\//i.test(port) && !existsSync(port)) {
    throw new CliError(`there is no serial port ${port} (unplugged, or another name?); \`mbm usb-ports\` lists the serial ports`, 2);
  }
  return port;
}

/** A --firmware that is neither a file nor in the catalogue: say both, and how to get one. */
async function checkFirmwareName(api: ApiClient, name: string): Promise<void> {
  const names = (await api.call('firmware.list', {})).map((image) => image.name);
  if (names.includes(name)) return;
  throw new CliError(
    `${name}: no such file, and no firmware of that name in the catalogue${didYouMean(name, names)}.\n` +
      'Give the path of a MicroPython .bin file (https://micropython.org/download/ESP8266_GENERIC/), or add one to the catalogue:\n' +
      '  mbm firmware-download URL --sha256 HEX     (`mbm firmware-list` shows what the catalogue holds)',
    2,
  );
}

function portRow(port: SerialPortInfo): string[] {
  const usbId = port.vendorId === undefined ? '-' : `${port.vendorId.toString(16).padStart(4, '0')}:${(port.productId ?? 0).toString(16).padStart(4, '0')}`;
  return [port.path, port.friendlyName, usbId];
}

export const usbPorts: VerbSpec = {
  name: 'usb-ports',
  summary: 'list serial ports (USB adapters of ESP boards first)',
  args: [],
  options: {
    json: { type: 'boolean', description: 'print JSON (with --watch: one line per change)' },
    watch: { type: 'boolean', description: 'then keep printing boards plugged in and unplugged until Ctrl-C' },
  },
  async run({ values, out }) {
    const api = await connectService(values);
    // Subscribed before listing, so nothing plugged in between the two is missed.
    const subscription = values.watch
      ? await api.events((event) => {
          if (event.type !== 'usb.port') return;
          const change = event as ApiEvent & { type: 'usb.port' };
          if (values.json) write(out, JSON.stringify({ kind: change.kind, port: change.port }) + '\n');
          else write(out, `${change.kind === 'added' ? 'plugged in' : 'unplugged'}: ${portRow(change.port).join('  ')}\n`);
        })
      : undefined;
    const ports = await api.call('usb.ports', {});
    if (values.json) write(out, JSON.stringify(ports) + '\n');
    else if (ports.length === 0) write(out, 'No serial ports found. Plug the board in (with a data cable) and try again.\n');
    else write(out, table(['PORT', 'ADAPTER', 'USB ID'], ports.map(portRow)));
    if (!subscription) return 0;
    const interrupted = untilInterrupted((resolve) => subscription.onClose(resolve)); // before saying so (see sim)
    if (!values.json) write(out, 'Watching for boards plugged in or unplugged; Ctrl-C to stop.\n');
    await interrupted;
    subscription.close();
    return 0;
  },
};

export const boardFlash: VerbSpec = {
  name: 'board-flash',
  summary: 'flash MicroPython to an ESP8266 on USB and provision it into the fleet',
  args: [],
  options: {
    port: { type: 'string', valueName: 'PORT', description: 'serial port of the board (see usb-ports)' },
    firmware: { type: 'string', valueName: 'FILE|NAME', description: 'a .bin file, or the name of one in the firmware catalogue' },
    ...PROVISION_OPTIONS,
    baud: { type: 'string', valueName: 'BAUD', description: 'rate for writing (default 460800; falls back to 115200)' },
    erase: { type: 'boolean', description: "erase the whole flash first (the board's files too)" },
    'flash-mode': {
      type: 'string',
      valueName: 'MODE',
      description: "qio, qout, dio or dout (default: the image's, re-flashing in dio/dout if it does not boot)",
    },
    'no-provision': { type: 'boolean', description: 'only flash; do not enroll or configure the board' },
  },
  details:
    'Example:\n  mbm board-flash --port /dev/ttyUSB0 --firmware ESP8266_GENERIC-v1.27.0.bin \\\n      --name kitchen --wifi-ssid home --wifi-password-file ~/.wifi\n' +
    'Boards with an auto-reset circuit (NodeMCU, D1 mini) need no button. When the bootloader does not answer, hold BOOT\n' +
    'and press RESET when asked; after such a flash, press RESET once (alone) when asked, so the board starts by itself.\n' +
    '--port also takes rfc2217://HOST:PORT (a serial port on another computer, DTR/RTS included).',
  async run(context) {
    const { values, out } = context;
    const port = requirePort(values);
    if (typeof values.firmware !== 'string') throw new CliError('--firmware FILE|NAME is required (see firmware-list)', 2);
    const api = await connectService(values);
    const isFile = await access(values.firmware).then(
      () => true,
      () => false,
    );
    if (!isFile) await checkFirmwareName(api, values.firmware);
    const provision = values['no-provision'] ? undefined : await provisionInput(context, api);
    const subscription = await followProgress(api, out);
    try {
      const result = await api.call('usb.flash', {
        port,
        ...(isFile ? { imageBase64: (await readFile(values.firmware)).toString('base64') } : { firmware: values.firmware }),
        baud: values.baud === undefined ? undefined : (intOption(values, 'baud', 460_800, 115_200, 921_600) as 460_800),
        erase: Boolean(values.erase),
        flashMode: values['flash-mode'] as 'qio' | 'qout' | 'dio' | 'dout' | undefined,
        provision,
      });
      const flash = result.flash;
      write(
        out,
        `Flashed ${formatBytes(flash.imageBytes)} to the ${flash.chip} (${formatBytes(flash.flashSizeBytes)} flash, mode ${flash.flashMode}) in ${flash.seconds.toFixed(1)} s.\n`,
      );
      if (flash.filesystem === 'kept') write(out, 'The files already on the board were kept.\n');
      if (flash.filesystem === 'cleared') write(out, 'Data left by another firmware was cleared: MicroPython started with an empty file system.\n');
      if (flash.boot !== 'ok') write(out, `MicroPython was not seen starting: ${flash.bootEvidence}.\n`);
      if (result.provision) write(out, provisionOutcome(result.provision));
      return result.provision && !result.provision.online ? 1 : 0;
    } finally {
      subscription.close();
    }
  },
};

export const boardProvision: VerbSpec = {
  name: 'board-provision',
  summary: 'provision a board that already runs MicroPython (USB, raw REPL)',
  args: [],
  options: { port: { type: 'string', valueName: 'PORT', description: 'serial port of the board' }, ...PROVISION_OPTIONS },
  async run(context) {
    const port = requirePort(context.values);
    const api = await connectService(context.values);
    const input = await provisionInput(context, api);
    const subscription = await followProgress(api, context.out);
    try {
      const result = await api.call('usb.provision', { port, ...input });
      write(context.out, provisionOutcome(result));
      return result.online ? 0 : 1;
    } finally {
      subscription.close();
    }
  },
};

export const usbPut: VerbSpec = {
  name: 'usb-put',
  summary: 'copy a file to a board over its USB serial console (sha256-checked)',
  args: ['PORT', 'FILE', 'DEST'],
  options: {},
  async run({ values, positionals, out }) {
    const [portArg, file, destArg] = positionals as [string, string, string];
    const port = existingPort(portArg);
    const dest = boardDest(destArg, file);
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (error) {
      throw new CliError(`cannot read ${file}: ${(error as Error).message}`, 2);
    }
    const api = await connectService(values);
    const subscription = await followProgress(api, out);
    try {
      const result = await api.call('usb.put', { port, dest, dataBase64: data.toString('base64') });
      write(
        out,
        `${dest}: ${formatBytes(result.bytes)} in ${(result.ms / 1000).toFixed(1)} s (${(result.bytes / 1024 / (result.ms / 1000)).toFixed(1)} KiB/s), sha256 ${result.sha256}\n`,
      );
      return 0;
    } finally {
      subscription.close();
    }
  },
};

export const firmwareList: VerbSpec = {
  name: 'firmware-list',
  summary: 'list firmware images in the catalogue',
  args: [],
  options: { json: { type: 'boolean', description: 'print JSON' } },
  async run({ values, out }) {
    const images = await (await connectService(values)).call('firmware.list', {});
    if (values.json) write(out, JSON.stringify(images) + '\n');
    else if (images.length === 0) write(out, 'The catalogue is empty: add an image with firmware-download, or pass a .bin file to board-flash.\n');
    else
      write(
        out,
        table(
          ['NAME', 'SIZE', 'MODE', 'SHA256'],
          images.map((image) => [image.name, formatBytes(image.size), image.flashMode, image.sha256.slice(0, 16) + '…']),
        ),
      );
    return 0;
  },
};

export const firmwareDownload: VerbSpec = {
  name: 'firmware-download',
  summary: 'download a firmware image into the catalogue (checked against its sha256)',
  args: ['URL'],
  options: {
    sha256: { type: 'string', valueName: 'HEX', description: 'the sha256 published with the release (required)' },
    name: { type: 'string', valueName: 'NAME', description: 'file name in the catalogue (default: from the URL)' },
  },
  details: 'Example:\n  mbm firmware-download https://micropython.org/resources/firmware/ESP8266_GENERIC-20251209-v1.27.0.bin --sha256 <hex>',
  async run({ values, positionals, out }) {
    if (typeof values.sha256 !== 'string') throw new CliError('--sha256 HEX is required: a download is only kept when it matches', 2);
    const entry = await (
      await connectService(values)
    ).call('firmware.download', { url: positionals[0]!, sha256: values.sha256, name: values.name as string | undefined });
    write(out, `Added ${entry.name} (${formatBytes(entry.size)}, ${entry.chip}, flash mode ${entry.flashMode}).\n`);
    return 0;
  },
};

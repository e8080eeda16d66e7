/**
 * Serial ports a board could be on, with names a hobbyist recognises ("Silicon Labs CP210x
 * (ttyUSB0)") and the USB-UART chip behind them, and a watcher for plug/unplug.
 *
 * On Linux, serialport's list() runs `udevadm`, which containers, minimal images and some
 * Raspberry Pi setups do not have; there the ports are read from sysfs instead:
 * /sys/class/tty/<name>/device, walked up to the USB device for idVendor, idProduct,
 * serial, manufacturer and product. /dev/serial/by-id links, when udev made them, are
 * attached as stable names. Extra paths (symlinks, e.g. the lab's pty links) can be added,
 * and so can network serial ports (`rfc2217://host:port`, listed as given: nothing on this
 * computer can tell whether the server is there until the port is opened).
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { SerialPort } from 'serialport';
import { silentLogger, type Logger } from '../log.js';
import { findOnPath } from '../executables.js';
import { formatRfc2217Address, isRfc2217Url, parseRfc2217Url } from './rfc2217-port.js';

export type UsbSerialAdapter = 'cp210x' | 'ch340' | 'ch9102' | 'ftdi' | 'esp-usb' | 'cdc-acm' | 'usb-serial' | 'pty' | 'uart' | 'rfc2217';

export interface SerialPortInfo {
  /** What to open: /dev/ttyUSB0, COM3, or an extra path as given. */
  path: string;
  vendorId?: number;
  productId?: number;
  serialNumber?: string;
  manufacturer?: string;
  product?: string;
  friendlyName: string;
  adapter?: UsbSerialAdapter;
  /** The stable /dev/serial/by-id link to this port, when there is one. */
  byIdPath?: string;
  /** Kernel driver (Linux): cp210x, ch341, ftdi_sio, cdc_acm, … */
  driver?: string;
  /** A USB-UART chip ESP boards use (listed first). */
  likelyEsp?: boolean;
}

export interface ListSerialPortsOptions {
  /** Paths to list too when they exist (e.g. pty links of simulated boards). */
  extraPaths?: string[];
  logger?: Logger;
  /** Where sysfs and /dev are (tests point these at a fake tree). */
  sysfsRoot?: string;
  devRoot?: string;
  /** Force the sysfs reader even when udevadm exists (default: only without udevadm). */
  preferSysfs?: boolean;
  platform?: NodeJS.Platform;
}

interface KnownAdapter {
  vendorId: number;
  productId?: number;
  adapter: UsbSerialAdapter;
  name: string;
}

/** USB-UART bridges found on ESP boards (vendor:product). */
const KNOWN_ADAPTERS: readonly KnownAdapter[] = [
  { vendorId: 0x10c4, productId: 0xea60, adapter: 'cp210x', name: 'Silicon Labs CP210x' },
  { vendorId: 0x1a86, productId: 0x7523, adapter: 'ch340', name: 'WCH CH340' },
  { vendorId: 0x1a86, productId: 0x5523, adapter: 'ch340', name: 'WCH CH341' },
  { vendorId: 0x1a86, productId: 0x55d4, adapter: 'ch9102', name: 'WCH CH9102' },
  { vendorId: 0x0403, productId: 0x6001, adapter: 'ftdi', name: 'FTDI FT232R' },
  { vendorId: 0x0403, productId: 0x6015, adapter: 'ftdi', name: 'FTDI FT231X' },
  { vendorId: 0x303a, productId: 0x1001, adapter: 'esp-usb', name: 'Espressif USB-Serial/JTAG' },
  { vendorId: 0x303a, adapter: 'esp-usb', name: 'Espressif native USB' },
];

/** Kernel tty names that can be serial ports (what serialport's Linux lister accepts). */
const TTY_NAME = /^(tty(S|WCH|ACM|USB|AMA|MFD|O|XRUSB|CH343USB)\d+|rfcomm\d+)$/;

export function describeAdapter(vendorId: number | undefined, productId: number | undefined): KnownAdapter | undefined {
  if (vendorId === undefined) return undefined;
  return KNOWN_ADAPTERS.find((known) => known.vendorId === vendorId && (known.productId === undefined || known.productId === productId));
}

const hex4 = (n: number) => n.toString(16).padStart(4, '0');

function finish(port: Omit<SerialPortInfo, 'friendlyName'>): SerialPortInfo {
  if (port.adapter === 'rfc2217') return { ...port, friendlyName: `Network serial port (${formatRfc2217Address(parseRfc2217Url(port.path))})` };
  const base = path.basename(port.path);
  const known = describeAdapter(port.vendorId, port.productId);
  if (known) return { ...port, adapter: known.adapter, friendlyName: `${known.name} (${base})` };
  if (port.vendorId !== undefined) {
    const label = port.product ?? port.manufacturer ?? `USB serial ${hex4(port.vendorId)}:${hex4(port.productId ?? 0)}`;
    const adapter = port.adapter ?? (port.driver === 'cdc_acm' ? 'cdc-acm' : 'usb-serial');
    return { ...port, adapter, friendlyName: `${label} (${base})` };
  }
  if (port.adapter === 'pty') return { ...port, friendlyName: `Virtual serial port (${base})` };
  return { ...port, friendlyName: `Serial port (${base})` };
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function realpathOrUndefined(file: string): string | undefined {
  try {
    return realpathSync(file);
  } catch {
    return undefined;
  }
}

function hexNumber(text: string | undefined): number | undefined {
  if (!text) return undefined;
  const value = Number.parseInt(text.replace(/^0x/i, ''), 16);
  return Number.isFinite(value) ? value : undefined;
}

/** Linux ports from sysfs, without udev. */
export function listFromSysfs(sysfsRoot = '/sys', devRoot = '/dev'): SerialPortInfo[] {
  const ttyClass = path.join(sysfsRoot, 'class', 'tty');
  let names: string[];
  try {
    names = readdirSync(ttyClass);
  } catch {
    return [];
  }
  const byId = byIdLinks(devRoot);
  const ports: SerialPortInfo[] = [];
  for (const name of names) {
    if (!TTY_NAME.test(name)) continue;
    const device = realpathOrUndefined(path.join(ttyClass, name, 'device'));
    if (!device) continue; // virtual consoles and ptys have no device
    // 8250 UARTs the kernel probed but found nothing at report type 0 (PORT_UNKNOWN).
    if (name.startsWith('ttyS') && readText(path.join(ttyClass, name, 'type')) === '0') continue;
    const devicePath = path.join(devRoot, name);
    const driverLink = realpathOrUndefined(path.join(device, 'driver'));
    const port: Omit<SerialPortInfo, 'friendlyName'> = { path: devicePath };
    if (driverLink) port.driver = path.basename(driverLink);
    const usb = usbDeviceOf(device, sysfsRoot);
    if (usb) {
      port.vendorId = hexNumber(readText(path.join(usb, 'idVendor')));
      port.productId = hexNumber(readText(path.join(usb, 'idProduct')));
      port.serialNumber = readText(path.join(usb, 'serial'));
      port.manufacturer = readText(path.join(usb, 'manufacturer'));
      port.product = readText(path.join(usb, 'product'));
    } else {
      port.adapter = 'uart';
    }
    const stable = byId.get(realpathOrUndefined(devicePath) ?? devicePath);
    if (stable) port.byIdPath = stable;
    ports.push(finish(dropUndefined(port)));
  }
  return ports;
}

/** Walks up from a tty's device to the USB device directory (the one with idVendor). */
function usbDeviceOf(device: string, sysfsRoot: string): string | undefined {
  let dir = device;
  const stop = path.resolve(sysfsRoot);
  while (dir.startsWith(stop) && dir !== stop) {
    if (existsSync(path.join(dir, 'idVendor'))) return dir;
    dir = path.dirname(dir);
  }
  return undefined;
}

/** /dev/serial/by-id/<name> → keyed by the real device path it points at. */
function byIdLinks(devRoot: string): Map<string, string> {
  const links = new Map<string, string>();
  const dir = path.join(devRoot, 'serial', 'by-id');
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return links;
  }
  for (const entry of entries) {
    const target = realpathOrUndefined(path.join(dir, entry));
    if (target) links.set(target, path.join(dir, entry));
  }
  return links;
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

async function listWithSerialport(logger: Logger): Promise<SerialPortInfo[] | undefined> {
  try {
    const found = await SerialPort.list();
    return found.map((info) =>
      finish(
        dropUndefined({
          path: info.path,
          vendorId: hexNumber(info.vendorId),
          productId: hexNumber(info.productId),
          serialNumber: info.serialNumber,
          manufacturer: info.manufacturer,
          // A port with no USB ids on a UART name is the computer's own (as sysfs tells).
          adapter: info.vendorId === undefined && /\/tty(S|AMA)\d+$/.test(info.path) ? ('uart' as const) : undefined,
        }),
      ),
    );
  } catch (error) {
    logger('warn', `listing serial ports failed: ${error instanceof Error ? error.message : String(error)}`);
    return undefined;
  }
}

function rank(port: SerialPortInfo): number {
  if (port.adapter && port.adapter !== 'usb-serial' && port.adapter !== 'uart' && port.adapter !== 'pty' && port.adapter !== 'rfc2217') return 0;
  if (port.vendorId !== undefined) return 1;
  if (port.adapter === 'pty' || port.adapter === 'rfc2217') return 2;
  return 3;
}

export async function listSerialPorts(options: ListSerialPortsOptions = {}): Promise<SerialPortInfo[]> {
  const logger = options.logger ?? silentLogger;
  const platform = options.platform ?? process.platform;
  let ports: SerialPortInfo[] | undefined;
  if (platform === 'linux') {
    const useUdev = !options.preferSysfs && options.sysfsRoot === undefined && (await findOnPath('udevadm')) !== undefined;
    if (useUdev) ports = await listWithSerialport(logger);
    if (!ports) ports = listFromSysfs(options.sysfsRoot, options.devRoot);
  } else {
    ports = (await listWithSerialport(logger)) ?? [];
  }
  const seen = new Set(ports.flatMap((port) => [port.path, realpathOrUndefined(port.path) ?? port.path]));
  for (const extra of options.extraPaths ?? []) {
    if (isRfc2217Url(extra)) {
      if (seen.has(extra)) continue;
      try {
        parseRfc2217Url(extra);
      } catch (error) {
        logger('warn', `extra serial port ${extra} skipped: ${error instanceof Error ? error.message : String(error)}`);
        continue;
      }
      seen.add(extra);
      ports.push(finish({ path: extra, adapter: 'rfc2217' }));
      continue;
    }
    const target = realpathOrUndefined(extra);
    if (!target || seen.has(extra) || seen.has(target)) continue;
    seen.add(extra);
    const isPty = target.startsWith('/dev/pts/');
    ports.push(finish({ path: extra, ...(isPty ? { adapter: 'pty' as const } : {}) }));
  }
  for (const port of ports) port.likelyEsp = rank(port) === 0;
  return ports.sort((a, b) => rank(a) - rank(b) || a.path.localeCompare(b.path));
}

export interface SerialPortChange {
  kind: 'added' | 'removed';
  port: SerialPortInfo;
}

export interface WatchSerialPortsOptions extends ListSerialPortsOptions {
  intervalMs?: number;
}

export interface SerialPortWatcher {
  /** The ports seen by the last poll. */
  readonly ports: SerialPortInfo[];
  /** Resolves after the first poll (the baseline, reported as no change). */
  readonly ready: Promise<void>;
  stop(): void;
}

const identity = (port: SerialPortInfo) => JSON.stringify([port.path, port.vendorId, port.productId, port.serialNumber, port.adapter]);

/** Polls the port list and reports what appeared and disappeared since the last poll. */
export function watchSerialPorts(onChange: (change: SerialPortChange) => void, options: WatchSerialPortsOptions = {}): SerialPortWatcher {
  const intervalMs = options.intervalMs ?? 1000;
  const logger = options.logger ?? silentLogger;
  let known = new Map<string, SerialPortInfo>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let markReady: () => void = () => {};
  const watcher = {
    ports: [] as SerialPortInfo[],
    ready: new Promise<void>((resolve) => (markReady = resolve)),
    stop(): void {
      stopped = true;
      clearTimeout(timer);
    },
  };
  let first = true;
  const poll = async () => {
    try {
      const ports = await listSerialPorts(options);
      if (stopped) return;
      const next = new Map(ports.map((port) => [identity(port), port]));
      if (!first) {
        for (const [key, port] of known) if (!next.has(key)) onChange({ kind: 'removed', port });
        for (const [key, port] of next) if (!known.has(key)) onChange({ kind: 'added', port });
      }
      known = next;
      watcher.ports = ports;
    } catch (error) {
      logger('warn', `serial port watch: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      if (first) markReady();
      first = false;
      if (!stopped) {
        timer = setTimeout(() => void poll(), intervalMs);
        timer.unref();
      }
    }
  };
  void poll();
  return watcher;
}

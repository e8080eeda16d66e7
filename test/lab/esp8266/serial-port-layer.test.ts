import { EventEmitter } from 'node:events';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { listFromSysfs, listSerialPorts, watchSerialPorts, type SerialPortChange } from '../../../electron/manager/usb/serial-ports.js';
import { WebSerialPort, type NodeSerialPort } from '../../../electron/manager/usb/web-serial-port.js';
import { PtyLink } from '../pty-link.js';
import { readFromPort, removeTempDirs, tempDir } from './host-tools.js';
import { waitFor } from '../../helpers/lab.js';

afterAll(removeTempDirs);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function pty(link?: string): Promise<PtyLink> {
  const opened = await PtyLink.open({ link, baud: 0 });
  cleanups.push(() => opened.close());
  return opened;
}

describe('listSerialPorts', () => {
  it('lists an extra pty link on this machine, with udevadm (serialport) or without it (sysfs)', async () => {
    const link = await pty();
    // Both ways of listing: whichever this machine uses by default, and sysfs explicitly.
    const viaSysfs = await listSerialPorts({ extraPaths: [link.path], preferSysfs: true });
    expect(viaSysfs.find((port) => port.path === link.path)).toEqual({
      path: link.path,
      adapter: 'pty',
      friendlyName: 'Virtual serial port (tty)',
      likelyEsp: false,
    });
    const ports = await listSerialPorts({ extraPaths: [link.path, '/nonexistent/tty'] });
    const found = ports.find((port) => port.path === link.path);
    expect(found).toEqual({ path: link.path, adapter: 'pty', friendlyName: 'Virtual serial port (tty)', likelyEsp: false });
    expect(ports.some((port) => port.path === '/nonexistent/tty')).toBe(false);
  });

  it('reads USB adapters from sysfs: ids, names, driver, /dev/serial/by-id', async () => {
    const root = await tempDir('cm-sysfs-');
    const sys = path.join(root, 'sys');
    const dev = path.join(root, 'dev');
    const usbDevice = async (bus: string, ids: Record<string, string>, tty: string, driver: string) => {
      const device = path.join(sys, 'devices/pci0000:00/0000:00:14.0/usb1', bus);
      const iface = path.join(device, `${bus}:1.0`);
      const ttyDevice = driver === 'cdc_acm' ? iface : path.join(iface, tty);
      await mkdir(ttyDevice, { recursive: true });
      for (const [file, value] of Object.entries(ids)) await writeFile(path.join(device, file), `${value}\n`);
      await mkdir(path.join(sys, 'bus/usb-serial/drivers', driver), { recursive: true });
      await symlink(path.join(sys, 'bus/usb-serial/drivers', driver), path.join(ttyDevice, 'driver'));
      await mkdir(path.join(sys, 'class/tty', tty), { recursive: true });
      await symlink(ttyDevice, path.join(sys, 'class/tty', tty, 'device'));
      await writeFile(path.join(dev, tty), '');
    };
    await mkdir(path.join(dev, 'serial/by-id'), { recursive: true });
    await usbDevice(
      '1-1',
      { idVendor: '10c4', idProduct: 'ea60', serial: '0001', manufacturer: 'Silicon Labs', product: 'CP2102 USB to UART Bridge Controller' },
      'ttyUSB0',
      'cp210x',
    );
    await usbDevice('1-2', { idVendor: '1a86', idProduct: '7523', product: 'USB Serial' }, 'ttyUSB1', 'ch341');
    await usbDevice('1-3', { idVendor: '303a', idProduct: '1001', manufacturer: 'Espressif' }, 'ttyACM0', 'cdc_acm');
    await symlink('../../ttyUSB0', path.join(dev, 'serial/by-id/usb-Silicon_Labs_CP2102_0001-if00-port0'));
    // A UART the kernel probed but found absent (type 0), one that exists, a virtual console.
    for (const [name, type] of [
      ['ttyS0', '0'],
      ['ttyS1', '4'],
    ] as const) {
      await mkdir(path.join(sys, 'devices/platform/serial8250/tty', name), { recursive: true });
      await mkdir(path.join(sys, 'class/tty', name), { recursive: true });
      await symlink(path.join(sys, 'devices/platform/serial8250/tty', name), path.join(sys, 'class/tty', name, 'device'));
      await writeFile(path.join(sys, 'class/tty', name, 'type'), `${type}\n`);
      await writeFile(path.join(dev, name), '');
    }
    await mkdir(path.join(sys, 'class/tty/tty1'), { recursive: true });

    const ports = listFromSysfs(sys, dev);
    expect(ports.map((port) => port.friendlyName).sort()).toEqual(
      ['Espressif USB-Serial/JTAG (ttyACM0)', 'Serial port (ttyS1)', 'Silicon Labs CP210x (ttyUSB0)', 'WCH CH340 (ttyUSB1)'].sort(),
    );
    expect(ports.find((port) => port.path === path.join(dev, 'ttyUSB0'))).toEqual({
      path: path.join(dev, 'ttyUSB0'),
      vendorId: 0x10c4,
      productId: 0xea60,
      serialNumber: '0001',
      manufacturer: 'Silicon Labs',
      product: 'CP2102 USB to UART Bridge Controller',
      driver: 'cp210x',
      adapter: 'cp210x',
      byIdPath: path.join(dev, 'serial/by-id/usb-Silicon_Labs_CP2102_0001-if00-port0'),
      friendlyName: 'Silicon Labs CP210x (ttyUSB0)',
    });
    expect(ports.find((port) => port.path.endsWith('ttyACM0'))).toMatchObject({ adapter: 'esp-usb', driver: 'cdc_acm', vendorId: 0x303a });

    const listed = await listSerialPorts({ sysfsRoot: sys, devRoot: dev });
    // Known ESP adapters first (by path), then plain UARTs.
    expect(listed.map((port) => port.adapter)).toEqual(['esp-usb', 'cp210x', 'ch340', 'uart']);
  });

  it('watchSerialPorts notices a pty link appearing and disappearing', async () => {
    const dir = await tempDir('cm-watch-');
    const linkPath = path.join(dir, 'ttyESP');
    const changes: SerialPortChange[] = [];
    const watcher = watchSerialPorts((change) => changes.push(change), { intervalMs: 50, extraPaths: [linkPath] });
    cleanups.push(async () => watcher.stop());
    await watcher.ready;
    const until = async (count: number) => {
      const deadline = Date.now() + 3000;
      while (changes.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    };
    const link = await PtyLink.open({ link: linkPath });
    await until(1);
    expect(changes).toEqual([{ kind: 'added', port: { path: linkPath, adapter: 'pty', friendlyName: 'Virtual serial port (ttyESP)', likelyEsp: false } }]);
    await link.close();
    await until(2);
    expect(changes[1]).toMatchObject({ kind: 'removed', port: { path: linkPath } });
  });
});

describe('WebSerialPort', () => {
  it('on a pty: no reset lines, setSignals resolves, bytes flow both ways, reopen gives new streams', async () => {
    const link = await pty();
    const port = new WebSerialPort({ path: link.path, vendorId: 0x10c4, productId: 0xea60 });
    cleanups.push(async () => void (port.isOpen && (await port.close())));
    const announced: boolean[] = [];
    port.on('reset-lines', (available) => announced.push(available));
    expect(port.readable).toBeNull();
    await port.open({ baudRate: 115200 });
    expect(port.hasResetLines).toBe(false);
    expect(announced).toEqual([false]);
    await expect(port.setSignals({ dataTerminalReady: false, requestToSend: true })).resolves.toBeUndefined();
    await expect(port.setSignals({ requestToSend: false })).resolves.toBeUndefined();
    expect(port.getInfo()).toEqual({ usbVendorId: 0x10c4, usbProductId: 0xea60 });

    const fromDevice: Buffer[] = [];
    link.on('data', (chunk) => fromDevice.push(chunk));
    const writer = port.writable!.getWriter();
    await writer.write(new Uint8Array([1, 2, 3]));
    writer.releaseLock();
    link.write('hello');
    expect((await readFromPort(port, 20_000, (b) => b.length >= 5)).toString()).toBe('hello');
    await waitFor(() => Buffer.concat(fromDevice).length >= 3, 10_000, 'the bytes written to reach the device');
    expect(Buffer.concat(fromDevice)).toEqual(Buffer.from([1, 2, 3]));

    const firstReadable = port.readable;
    await port.setBaudRate(460800);
    expect(port.baudRate).toBe(460800);
    await port.close();
    expect(port.readable).toBeNull();
    await port.open({ baudRate: 921600 });
    expect(port.readable).not.toBe(firstReadable);
    link.write('again');
    expect((await readFromPort(port, 20_000, (b) => b.length >= 5)).toString()).toBe('again');
  });

  it('when the device goes away: disconnect event, readable null, writes fail at once', async () => {
    const link = await PtyLink.open({ baud: 0 });
    const port = new WebSerialPort({ path: link.path });
    await port.open({ baudRate: 115200 });
    cleanups.push(async () => void (port.isOpen && (await port.close())));
    const reader = port.readable!.getReader();
    const pendingRead = reader.read().then(
      () => 'no error',
      (error: unknown) => error,
    );
    const disconnected = new Promise<void>((resolve) => port.once('disconnect', () => resolve()));
    await link.close();
    await disconnected;
    expect(await pendingRead).toMatchObject({ name: 'NetworkError' });
    expect(port.lost).toBe(true);
    expect(port.readable).toBeNull();
    await expect(port.writable!.getWriter().write(new Uint8Array([1]))).rejects.toMatchObject({ name: 'NetworkError' });
    await expect(port.setSignals({ dataTerminalReady: true })).rejects.toMatchObject({ name: 'NetworkError' });
    await port.close();
    expect(port.isOpen).toBe(false);
  });

  it('a reset sequence step is ONE set({dtr, rts}) call, merged with the current state', async () => {
    const calls: { dtr?: boolean; rts?: boolean; brk?: boolean }[] = [];
    const fake = Object.assign(new EventEmitter(), {
      isOpen: true,
      write: (_data: Buffer, done?: (error?: Error | null) => void) => (done?.(null), true),
      drain: (done?: (error?: Error | null) => void) => done?.(null),
      close: (done?: (error?: Error | null) => void) => done?.(null),
      set: (options: { dtr?: boolean; rts?: boolean; brk?: boolean }, done?: (error?: Error | null) => void) => {
        calls.push(options);
        done?.(null);
      },
      get: (done: (error: Error | null, status?: { cts: boolean; dsr: boolean; dcd: boolean }) => void) => done(null, { cts: false, dsr: false, dcd: false }),
      update: (_options: { baudRate: number }, done?: (error?: Error | null) => void) => done?.(null),
    }) satisfies NodeSerialPort;
    const port = new WebSerialPort({ path: '/dev/ttyUSB9', openPort: async () => fake });
    await port.open({ baudRate: 115200 });
    expect(port.hasResetLines).toBeUndefined();
    // esptool-js ClassicReset: (dtr, rts) = (0, 1), (1, 0), (0, 0); then setRTS alone.
    await port.setSignals({ dataTerminalReady: false, requestToSend: true });
    await port.setSignals({ dataTerminalReady: true, requestToSend: false });
    await port.setSignals({ dataTerminalReady: false, requestToSend: false });
    await port.setSignals({ requestToSend: true });
    expect(calls).toEqual([
      { dtr: false, rts: true, brk: false },
      { dtr: true, rts: false, brk: false },
      { dtr: false, rts: false, brk: false },
      { dtr: false, rts: true, brk: false },
    ]);
    expect(port.hasResetLines).toBe(true);
    await port.close();
  });
});

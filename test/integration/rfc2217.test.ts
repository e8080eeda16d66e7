/**
 * A serial port over TCP (RFC 2217): the product's client (openNodeSerialPort on an
 * rfc2217:// URL) against the lab's Rfc2217Link — data both ways with 0xFF in it, DTR/RTS
 * reaching the simulated device in stream order, the host's baud rate, the device going
 * away, one host at a time — and the product's flasher writing a simulated ESP8266 through
 * it, with esptool-js's reset sequence arriving as modem-line changes.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { flashEsp8266 } from '../../electron/manager/usb/esp-flasher.js';
import { Rfc2217DisconnectedError, Rfc2217Error, Rfc2217Port } from '../../electron/manager/usb/rfc2217-port.js';
import { listSerialPorts } from '../../electron/manager/usb/serial-ports.js';
import { closeNodeSerialPort, openNodeSerialPort, WebSerialPort, type NodeSerialPort } from '../../electron/manager/usb/web-serial-port.js';
import { Esp8266Simulator } from '../lab/esp8266/esp8266-simulator.js';
import { removeTempDirs, tempDir } from '../lab/esp8266/host-tools.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';
import { Rfc2217Link, type ModemLines } from '../lab/rfc2217-link.js';

const cleanups: (() => Promise<unknown>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await removeTempDirs();
});

async function link(baud = 115_200): Promise<Rfc2217Link> {
  const opened = await Rfc2217Link.open({ baud });
  cleanups.push(() => opened.close());
  return opened;
}

async function client(url: string, baudRate = 115_200): Promise<NodeSerialPort> {
  const port = await openNodeSerialPort(url, { baudRate });
  cleanups.push(() => closeNodeSerialPort(port));
  return port;
}

const call = (run: (done: (error?: Error | null) => void) => void) =>
  new Promise<void>((resolve, reject) => run((error) => (error ? reject(error) : resolve())));

/** Resolves with the first `bytes` bytes a source emits as 'data'. */
function receive(source: { on(event: 'data', listener: (chunk: Buffer) => void): unknown }, bytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  return new Promise((resolve) => {
    source.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= bytes) resolve(Buffer.concat(chunks).subarray(0, bytes));
    });
  });
}

/** Resolves once the link's lines are `state` (at once if they already are). */
function linesBecome(target: Rfc2217Link, state: ModemLines): Promise<void> {
  const reached = () => target.lineState.dtr === state.dtr && target.lineState.rts === state.rts;
  return new Promise((resolve) => {
    if (reached()) return resolve();
    const check = () => {
      if (!reached()) return;
      target.off('lines', check);
      resolve();
    };
    target.on('lines', check);
  });
}

/** What the device side saw, in order: data runs (merged) and line changes. */
function recordLink(target: Rfc2217Link): (Buffer | ModemLines)[] {
  const log: (Buffer | ModemLines)[] = [];
  target.on('data', (chunk) => {
    const last = log.at(-1);
    if (Buffer.isBuffer(last)) log[log.length - 1] = Buffer.concat([last, chunk]);
    else log.push(chunk);
  });
  target.on('lines', (state) => log.push(state));
  return log;
}

/** Random bytes with plenty of 0xFF (the Telnet escape) in them. */
function noisy(size: number): Buffer {
  const data = randomBytes(size);
  for (let i = 0; i < size; i += 97) data[i] = 0xff;
  data[size - 1] = 0xff;
  return data;
}

describe('RFC 2217: the product client against the lab link', () => {
  it('carries 64 KB of random bytes, 0xFF included, both ways at the line rate', async () => {
    const device = await link(2_000_000);
    const port = await client(device.path);
    const up = noisy(64 * 1024);
    const down = noisy(64 * 1024);
    const atDevice = receive(device, up.length);
    const atHost = receive(port, down.length);
    device.write(down);
    await call((done) => port.write(up, done));
    await call((done) => port.drain(done));
    expect((await atDevice).equals(up)).toBe(true);
    expect((await atHost).equals(down)).toBe(true);
    await device.drain();
  });

  it('asserts DTR and RTS while a host has the port open, and drops both when it closes it (HUPCL)', async () => {
    const device = await link();
    const seen: ModemLines[] = [];
    device.on('lines', (state) => seen.push(state));
    expect(device.lineState).toEqual({ dtr: false, rts: false });
    const port = await openNodeSerialPort(device.path, { baudRate: 115_200 });
    expect(seen).toEqual([{ dtr: true, rts: true }]); // the open's DTR ON / RTS ON change nothing more
    await closeNodeSerialPort(port);
    await linesBecome(device, { dtr: false, rts: false });
    expect(seen).toEqual([
      { dtr: true, rts: true },
      { dtr: false, rts: false },
    ]);
  });

  it('delivers each line change once, in order with the data around it; DTR first unless both drop', async () => {
    const device = await link(0); // unpaced: every byte is delivered as soon as it is parsed
    const log = recordLink(device);
    const port = await client(device.path);
    const before = noisy(3000);
    const after = noisy(2000);
    port.write(before);
    const changed = call((done) => port.set({ dtr: true, rts: false }, done));
    port.write(after);
    const arrived = receive(device, before.length + after.length);
    await changed;
    await arrived;
    expect(log).toEqual([{ dtr: true, rts: true }, before, { dtr: true, rts: false }, after]);

    const changes = async (dtr: boolean, rts: boolean) => {
      log.length = 0;
      await call((done) => port.set({ dtr, rts }, done));
      return [...log];
    };
    expect(await changes(false, true)).toEqual([
      { dtr: false, rts: false },
      { dtr: false, rts: true },
    ]);
    expect(await changes(false, true)).toEqual([]); // no change, no event
    expect(await changes(true, true)).toEqual([{ dtr: true, rts: true }]);
    // Both drop: RTS first, so the lines never rest at RTS alone (EN low on ESP boards).
    expect(await changes(false, false)).toEqual([
      { dtr: true, rts: false },
      { dtr: false, rts: false },
    ]);
    expect(await changes(true, true)).toEqual([
      { dtr: true, rts: false },
      { dtr: true, rts: true },
    ]);
  });

  it('at the line rate, a line change still comes before every byte sent after it', async () => {
    const device = await link(115_200);
    const log = recordLink(device);
    const port = await client(device.path);
    const before = noisy(2000);
    const after = noisy(500);
    const arrived = receive(device, before.length + after.length);
    port.write(before);
    const changed = call((done) => port.set({ dtr: true, rts: false }, done));
    port.write(after);
    await Promise.all([changed, arrived]);
    const change = log.findIndex((entry) => !Buffer.isBuffer(entry) && entry.rts === false);
    const delivered = (entries: (Buffer | ModemLines)[]) => Buffer.concat(entries.filter((entry): entry is Buffer => Buffer.isBuffer(entry)));
    const earlier = delivered(log.slice(0, change));
    const later = delivered(log.slice(change + 1));
    // Bytes sent before the change may still be on the wire when it happens; none sent after it is delivered before it.
    expect(before.subarray(0, earlier.length).equals(earlier)).toBe(true);
    expect(Buffer.concat([earlier, later]).equals(Buffer.concat([before, after]))).toBe(true);
  });

  it('sends the host baud rate (hostBaud) without changing the line rate', async () => {
    const device = await link();
    const port = await client(device.path, 115_200);
    expect(device.hostBaud).toBe(115_200);
    await call((done) => port.update({ baudRate: 460_800 }, done));
    expect(device.hostBaud).toBe(460_800);
    expect((port as Rfc2217Port).baudRate).toBe(460_800);
    expect(device.lineRate).toBe(115_200);
  });

  it('reports the device going away when the server closes: close with a disconnect error, and WebSerialPort loses the device', async () => {
    const device = await link();
    const port = await client(device.path);
    const closed = new Promise<unknown>((resolve) => port.on('close', resolve));
    await device.close();
    const error = await closed;
    expect(error).toBeInstanceOf(Rfc2217DisconnectedError);
    expect((error as Rfc2217DisconnectedError).disconnected).toBe(true);
    expect(port.isOpen).toBe(false);
    await expect(call((done) => port.write(Buffer.from('x'), done))).rejects.toBeInstanceOf(Rfc2217Error);

    // The same through the Web Serial adapter esptool-js uses: a port with reset lines, then lost.
    const other = await link();
    const web = new WebSerialPort({ path: other.path });
    await web.open({ baudRate: 115_200 });
    cleanups.push(() => (web.isOpen ? web.close() : Promise.resolve()));
    await web.setSignals({ dataTerminalReady: false });
    expect(web.hasResetLines).toBe(true);
    await linesBecome(other, { dtr: false, rts: true });
    const lost = new Promise<void>((resolve) => web.once('disconnect', resolve));
    await other.close();
    await lost;
    expect(web.lost).toBe(true);
  });

  it('serves one host at a time: a second client is refused and the first keeps working', async () => {
    const device = await link(0);
    const seen: ModemLines[] = [];
    device.on('lines', (state) => seen.push(state));
    const first = await client(device.path);
    await expect(openNodeSerialPort(device.path, { baudRate: 115_200 })).rejects.toBeInstanceOf(Rfc2217Error);
    const echoed = receive(first, 5);
    device.on('data', (chunk) => device.write(chunk));
    await call((done) => first.write(Buffer.from('hello'), done));
    expect((await echoed).toString()).toBe('hello');
    expect(seen).toEqual([{ dtr: true, rts: true }]);

    await closeNodeSerialPort(first);
    await linesBecome(device, { dtr: false, rts: false });
    const again = await client(device.path);
    expect(again.isOpen).toBe(true);
    expect(device.lineState).toEqual({ dtr: true, rts: true });
  });

  it('says clearly when nothing, or not an RFC 2217 server, answers', async () => {
    // A port nobody listens on.
    const spare = net.createServer();
    await new Promise<void>((resolve) => spare.listen(0, '127.0.0.1', resolve));
    const freePort = (spare.address() as net.AddressInfo).port;
    await new Promise((resolve) => spare.close(resolve));
    const refused = await openNodeSerialPort(`rfc2217://127.0.0.1:${freePort}`, { baudRate: 115_200 }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(Rfc2217Error);
    expect((refused as Error).message).toMatch(new RegExp(`no RFC 2217 server answers at 127\\.0\\.0\\.1:${freePort}`));

    // A server that accepts and never says anything; then a Telnet server that refuses COM-PORT-OPTION.
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    const plainTelnet = net.createServer((socket) => {
      sockets.push(socket);
      socket.on('data', () => socket.write(Buffer.from([255, 254, 44]))); // IAC DONT COM-PORT-OPTION
    });
    for (const server of [silent, plainTelnet]) {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      cleanups.push(
        () =>
          new Promise((resolve) => {
            for (const socket of sockets) socket.destroy();
            server.close(resolve);
          }),
      );
    }
    const url = (server: net.Server) => `rfc2217://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    await expect(Rfc2217Port.open(url(silent), { baudRate: 115_200, timeoutMs: 300 })).rejects.toThrow(/no RFC 2217 server answers/);
    await expect(openNodeSerialPort(url(plainTelnet), { baudRate: 115_200 })).rejects.toThrow(/without RFC 2217 serial port control/);
  });

  it('lists rfc2217:// extra paths as network serial ports', async () => {
    const ports = await listSerialPorts({
      extraPaths: ['rfc2217://192.168.1.20:4000', 'rfc2217://not-a-port'],
      preferSysfs: true,
      sysfsRoot: '/nonexistent',
      devRoot: '/nonexistent',
    });
    expect(ports).toEqual([
      { path: 'rfc2217://192.168.1.20:4000', adapter: 'rfc2217', friendlyName: 'Network serial port (192.168.1.20:4000)', likelyEsp: false },
    ]);
  });
});

describe('flashing a simulated ESP8266 through RFC 2217', () => {
  it('writes an image that verifies, with the bootloader reset arriving as DTR/RTS changes', { timeout: 90_000 }, async () => {
    const device = await link(115_200);
    const sim = new Esp8266Simulator({ flashImagePath: path.join(await tempDir(), 'flash.bin'), link: device });
    cleanups.push(() => sim.close());
    await sim.powerOn({ bootMode: 'download' });
    const seen: ModemLines[] = [];
    device.on('lines', (state) => seen.push(state));

    const image = makeEsp8266Image({ size: 96 * 1024, flashMode: 'dio' });
    const phases: string[] = [];
    const result = await flashEsp8266({ portPath: device.path, image, baud: 115_200, bootCheckMs: 0, onProgress: (progress) => phases.push(progress.phase) });
    // flashEsp8266 checks the MD5 the stub computes over what it wrote.
    expect(result).toMatchObject({ chip: expect.stringMatching(/^ESP8266/), flashMode: 'dio', baud: 115_200, imageBytes: image.length, attempts: 1 });
    expect(phases).toContain('verify');
    expect(phases).not.toContain('bootloader'); // reset lines: nobody was asked to press buttons
    const flashed = sim.readFlash(0, image.length);
    expect(flashed.subarray(4).equals(image.subarray(4))).toBe(true); // byte 3: the detected flash size
    expect([...flashed.subarray(0, 3)]).toEqual([...image.subarray(0, 3)]);
    expect(device.hostBaud).toBe(115_200);

    // The flasher's bootloader reset reached the device: EN held low (RTS alone), then
    // released with IO0 low (DTR alone); the port was opened before and closed after.
    await linesBecome(device, { dtr: false, rts: false });
    const holdsReset = seen.findIndex((state) => !state.dtr && state.rts);
    expect(seen[0]).toEqual({ dtr: true, rts: true });
    expect(holdsReset).toBeGreaterThan(0);
    expect(seen.slice(holdsReset + 1)).toContainEqual({ dtr: true, rts: false });
    expect(seen.at(-1)).toEqual({ dtr: false, rts: false });
  });
});

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { WebSerialPort } from '../../../electron/manager/usb/web-serial-port.js';
import { Esp8266Simulator } from './esp8266-simulator.js';
import { closeSession, commandSummary, esptoolSession, esptoolWriteImage, loadWebFlasher, removeTempDirs, tempDir, type EsptoolSession } from './host-tools.js';
import { makeTestImage } from './test-image.js';

afterAll(removeTempDirs);

const sims: Esp8266Simulator[] = [];
let session: EsptoolSession | undefined;
let webPort: WebSerialPort | undefined;

afterEach(async () => {
  if (session) await closeSession(session);
  if (webPort?.isOpen) await webPort.close();
  for (const sim of sims.splice(0)) await sim.close();
});

it('esp-web-flasher (an independent implementation) writes the same flash as esptool-js', async () => {
  const dir = await tempDir();
  const image = makeTestImage({ iromBytes: 120 * 1024, seed: 11 });

  // Reference: esptool-js at 460800.
  const reference = new Esp8266Simulator({ flashImagePath: path.join(dir, 'esptool-js.bin') });
  sims.push(reference);
  await reference.powerOn({ bootMode: 'download' });
  session = esptoolSession(reference.path, 460800);
  await session.loader.main('default_reset');
  await esptoolWriteImage(session.loader, image, { compress: true });
  await closeSession(session);
  session = undefined;

  // esp-web-flasher, as ESP Web Tools uses it on an ESP8266: ROM sync, stub, 115200.
  const sim = new Esp8266Simulator({ flashImagePath: path.join(dir, 'esp-web-flasher.bin') });
  sims.push(sim);
  await sim.powerOn({ bootMode: 'download' });
  const { ESPLoader } = await loadWebFlasher();
  webPort = new WebSerialPort({ path: sim.path });
  await webPort.open({ baudRate: 115200 });
  const messages: string[] = [];
  const logger = {
    log: (message: string, ...rest: unknown[]) => void messages.push([message, ...rest].join(' ')),
    error: (message: string, ...rest: unknown[]) => void messages.push(`error: ${[message, ...rest].join(' ')}`),
    debug: () => {},
  };
  const loader = new ESPLoader(webPort as unknown as ConstructorParameters<typeof ESPLoader>[0], logger);
  await loader.initialize();
  expect(loader.chipName).toBe('ESP8266');
  expect(loader.macAddr()).toEqual([0x5c, 0xcf, 0x7f, 0x3a, 0x4b, 0x5c]);
  const stub = await loader.runStub();
  expect(stub.flashSize).toBe('4MB');
  const started = Date.now();
  let progress = 0;
  await stub.flashData(new Uint8Array(image).buffer, (written) => (progress = written), 0, true);
  const writeMs = Date.now() - started;
  expect(progress).toBe(image.length);
  const compressed = Number(/Compressed Size: (\d+)/.exec(messages.join('\n'))?.[1]);
  const limitMs = (compressed * 10 * 1000) / 115200;
  console.info(
    `esp-web-flasher @115200: ${image.length} bytes (${compressed} compressed) in ${writeMs} ms; wire limit ${limitMs.toFixed(0)} ms (${(writeMs / limitMs).toFixed(2)}×)`,
  );
  expect(writeMs).toBeGreaterThan(limitMs); // paced by the line (its speed: npm run bench:flash)
  console.info(`esp-web-flasher → ESP8266 commands: ${commandSummary(sim.commandLog)}`);

  const [theirs, ours] = await Promise.all([readFile(path.join(dir, 'esp-web-flasher.bin')), readFile(path.join(dir, 'esptool-js.bin'))]);
  expect(theirs.subarray(0, image.length).equals(image)).toBe(true);
  expect(theirs.equals(ours)).toBe(true);
  expect(sim.internalErrors).toEqual([]);
  expect(reference.internalErrors).toEqual([]);
});

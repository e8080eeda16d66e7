// npm run bench:flash [-- --size 614400]
//
// Flashes a 600 KB synthetic ESP8266 image (compresses like a MicroPython build) to the
// simulated ESP8266 (ROM + stub on a pty, the line paced at the baud rate) and prints one
// JSON line per tool and baud:
//   {"tool","baud","image_bytes","compressed_bytes","seconds","wire_limit_s","ratio"}
// seconds: connect to verified write (our pipeline: without the boot check);
// wire_limit_s = compressed bytes × 10 / baud; ratio = seconds / wire_limit_s.
// Tools: "cloudmanager" (ours), "esptool-js-defaults" (esptool-js as its README uses it),
// "esp-web-flasher" (which keeps an ESP8266 at 115200).
import { deflateSync } from 'node:zlib';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (file) => import(path.join(root, 'dist', file));
const { flashEsp8266 } = await dist('electron/manager/usb/esp-flasher.js');
const { WebSerialPort } = await dist('electron/manager/usb/web-serial-port.js');
const { closeSession, esptoolSession, esptoolWriteImage, loadWebFlasher } = await dist('test/lab/esp8266/host-tools.js');
const { Esp8266Simulator } = await dist('test/lab/esp8266/esp8266-simulator.js');
const { makeEsp8266Image } = await dist('test/lab/esp8266-image.js');

const { values } = parseArgs({ options: { size: { type: 'string', default: String(600 * 1024) } } });
const image = makeEsp8266Image({ size: Number(values.size), flashMode: 'dio' });
const compressedBytes = deflateSync(image, { level: 9 }).length;
const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-bench-flash-'));

async function onSimulator(name, run) {
  const sim = new Esp8266Simulator({ flashImagePath: path.join(folder, `${name}.bin`) });
  await sim.powerOn({ bootMode: 'download' });
  try {
    const started = performance.now();
    const baud = await run(sim.path);
    const seconds = (performance.now() - started) / 1000;
    if (!sim.readFlash(4, image.length - 4).equals(image.subarray(4))) throw new Error(`${name}: the flash does not hold the image`);
    return { seconds, baud };
  } finally {
    await sim.close();
  }
}

function report(tool, requestedBaud, { seconds, baud }, extra = {}) {
  const wireLimit = (compressedBytes * 10) / baud;
  console.log(
    JSON.stringify({
      tool,
      baud,
      image_bytes: image.length,
      compressed_bytes: compressedBytes,
      seconds: Number(seconds.toFixed(2)),
      wire_limit_s: Number(wireLimit.toFixed(2)),
      ratio: Number((seconds / wireLimit).toFixed(3)),
      within_target: seconds <= 1.05 * wireLimit + 1.5,
      ...(requestedBaud !== baud ? { requested_baud: requestedBaud } : {}),
      ...extra,
    }),
  );
}

try {
  for (const baud of [115_200, 460_800]) {
    report(
      'cloudmanager',
      baud,
      await onSimulator(`ours-${baud}`, async (portPath) => {
        const result = await flashEsp8266({ portPath, image, baud, bootCheckMs: 0 });
        return result.baud;
      }),
    );

    report(
      'esptool-js-defaults',
      baud,
      await onSimulator(`esptool-${baud}`, async (portPath) => {
        const session = esptoolSession(portPath, baud);
        await session.loader.main();
        await esptoolWriteImage(session.loader, image, { compress: true });
        await closeSession(session);
        return baud;
      }),
    );

    report(
      'esp-web-flasher',
      baud,
      await onSimulator(`web-${baud}`, async (portPath) => {
        const { ESPLoader: WebLoader } = await loadWebFlasher();
        const port = new WebSerialPort({ path: portPath });
        await port.open({ baudRate: 115_200 });
        const loader = new WebLoader(port, { log() {}, error() {}, debug() {} });
        await loader.initialize();
        const stub = await loader.runStub();
        // On an ESP8266 it keeps the ROM's 115200 (as ESP Web Tools does).
        await stub.flashData(new Uint8Array(image).buffer, () => {}, 0, true);
        await port.close();
        return 115_200;
      }),
      baud === 460_800 ? { note: 'esp-web-flasher does not change the baud rate on an ESP8266' } : {},
    );
  }
} finally {
  await rm(folder, { recursive: true, force: true });
}

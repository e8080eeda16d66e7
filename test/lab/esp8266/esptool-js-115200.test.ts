import path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { Esp8266Simulator } from './esp8266-simulator.js';
import { closeSession, esptoolSession, esptoolWriteImage, removeTempDirs, tempDir, type EsptoolSession } from './host-tools.js';
import { makeTestImage } from './test-image.js';

afterAll(removeTempDirs);

let sim: Esp8266Simulator | undefined;
let session: EsptoolSession | undefined;

afterEach(async () => {
  if (session) await closeSession(session);
  if (sim) await sim.close();
});

// How close to the wire limit it writes is measured by `npm run bench:flash`, not here:
// a test cannot hold a speed on a busy machine. What holds is that the line is paced.
it('writes at 115200 (no baud change), no faster than the wire allows', async () => {
  const dir = await tempDir();
  sim = new Esp8266Simulator({ flashImagePath: path.join(dir, 'flash.bin') });
  await sim.powerOn({ bootMode: 'download' });
  session = esptoolSession(sim.path, 115200);
  const { loader, log } = session;
  await loader.main('default_reset');
  expect(sim.loaderKind).toBe('stub');
  expect(sim.commandLog.some((entry) => entry.name === 'CHANGE_BAUDRATE')).toBe(false);

  const image = makeTestImage();
  const started = Date.now();
  await esptoolWriteImage(loader, image, { compress: true, md5Check: true });
  const writeMs = Date.now() - started;
  expect(log).toContain('Hash of data verified.');
  expect(sim.readFlash(0, image.length).equals(image)).toBe(true);

  const compressed = Number(/Compressed \d+ bytes to (\d+)/.exec(log.join('\n'))?.[1]);
  const limitMs = (compressed * 10 * 1000) / 115200;
  console.info(
    `esptool-js @115200: ${image.length} bytes (${compressed} compressed) written+verified in ${writeMs} ms; wire limit ${limitMs.toFixed(0)} ms (${(writeMs / limitMs).toFixed(2)}×)`,
  );
  expect(writeMs).toBeGreaterThan(limitMs);
  expect(sim.internalErrors).toEqual([]);
});

import path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { Esp8266Simulator } from './esp8266-simulator.js';
import { closeSession, esptoolSession, esptoolWriteImage, removeTempDirs, tempDir, type EsptoolSession } from './host-tools.js';
import { makeTestImage } from './test-image.js';

afterAll(removeTempDirs);

const image = makeTestImage({ iromBytes: 120 * 1024, seed: 3 });

let sim: Esp8266Simulator | undefined;
const sessions: EsptoolSession[] = [];

afterEach(async () => {
  for (const session of sessions.splice(0)) await closeSession(session);
  if (sim) await sim.close();
  sim = undefined;
});

async function connect(target: Esp8266Simulator): Promise<EsptoolSession> {
  const session = esptoolSession(target.path, 460800);
  sessions.push(session);
  await session.loader.main('default_reset');
  return session;
}

function write(session: EsptoolSession): Promise<void> {
  return esptoolWriteImage(session.loader, image, { compress: true, md5Check: true });
}

it('corruptBlock: the stub writes one block wrongly and esptool-js reports the MD5 mismatch', async () => {
  const dir = await tempDir();
  sim = new Esp8266Simulator({ flashImagePath: path.join(dir, 'flash.bin'), corruptBlock: 1 });
  await sim.powerOn({ bootMode: 'download' });
  const session = await connect(sim);
  await expect(write(session)).rejects.toThrow('MD5 of file does not match data in flash!');
  const written = sim.readFlash(0, image.length);
  const wrong = [...written.keys()].filter((i) => written[i] !== image[i]);
  expect(wrong).toHaveLength(1);
  expect(written[wrong[0]!]! ^ image[wrong[0]!]!).toBe(0x01);
});

it('failAfterBytes: the port dies mid-write, the host gets an error, and a second attempt after BOOT+RESET succeeds', async () => {
  const dir = await tempDir();
  sim = new Esp8266Simulator({ flashImagePath: path.join(dir, 'flash.bin'), failAfterBytes: 20_000 });
  await sim.powerOn({ bootMode: 'download' });
  const first = await connect(sim);
  const lost = new Promise<void>((resolve) => first.port.once('disconnect', () => resolve()));
  const attempt = write(first);
  await lost; // the host hears it (not a hang until some timeout)
  expect(sim.state).toBe('off');
  await expect(attempt).rejects.toThrow(/device has been lost/);
  expect(sim.readFlash(0, image.length).equals(image)).toBe(false);

  await sim.pressBootAndReset();
  expect(sim.state).toBe('download');
  await closeSession(first);
  const second = await connect(sim);
  await write(second);
  expect(second.log).toContain('Hash of data verified.');
  expect(sim.readFlash(0, image.length).equals(image)).toBe(true);
  expect(sim.internalErrors).toEqual([]);
});

/**
 * The ESP8266's boot-mode latch, end to end: a board flashed by hand (no reset lines) and
 * not reset afterwards restarts into its bootloader on a reboot. The service knows it:
 * the board is marked "press RESET", its reboot is reported with what to do, and once
 * RESET is pressed it comes back and reboots normally from then on.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsbService } from '../../electron/manager/usb/usb-service.js';
import { LAB_WIFI } from '../../electron/manager/virtual/micropython-fleet.js';
import { SimulatedEsp8266 } from '../lab/simulated-esp8266.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';
import { waitFor } from '../helpers/lab.js';
import { closeUsbLab, startUsbLab, type UsbLab } from '../helpers/usb-lab.js';

describe('boot-mode latch after a flash by hand', () => {
  let service: UsbLab['service'];
  let usb: UsbService;
  let folder: string;
  let board: SimulatedEsp8266;

  beforeAll(async () => {
    ({ service, usb, folder } = await startUsbLab('cm-latch-', { heartbeatS: 1, rebootGraceMs: 8_000 }));
    board = new SimulatedEsp8266({ folder: path.join(folder, 'porch') });
    await board.powerOn('download');
  });
  afterAll(async () => {
    await board?.close();
    await closeUsbLab({ service, usb, folder });
  });

  async function reboot(): Promise<{ status: string; message: string | null }> {
    const job = await service.api.call('jobs.start', { kind: 'reboot', boards: 'porch' });
    const done = await waitFor(
      async () => {
        const view = await service.api.call('jobs.get', { id: job.id });
        return view.state === 'done' ? view : null;
      },
      30_000,
      'the reboot job',
    );
    return done.targets[0]!;
  }

  it('a board whose RESET was not pressed reboots into its bootloader, and the service says what to do', { timeout: 120_000 }, async () => {
    // The user does not press RESET when asked (resetWaitMs 0: not asked at all).
    const result = await usb.flash({
      port: board.path,
      image: makeEsp8266Image({ size: 128 * 1024, flashMode: 'dio' }),
      resetWaitMs: 0,
      provision: { name: 'porch', wifi: LAB_WIFI },
    });
    expect(result.flash).toMatchObject({ restartedBy: 'stub', bootModeLatch: 'download' });
    expect(result.provision?.online).toBe(true);
    expect((await service.api.call('boards.get', { board: 'porch' })).needsReset).toBe(true);

    const outcome = await reboot();
    expect(outcome.status).toBe('failed');
    expect(outcome.message).toMatch(/restarted into its bootloader\. Press RESET on the board once/);
    expect(board.rom.state).toBe('download');
    expect(board.rom.latchedBootMode).toBe('download');
  });

  it('after one press of RESET it comes back, the mark goes, and reboots work', { timeout: 120_000 }, async () => {
    await board.rom.pressReset();
    await waitFor(async () => (await service.api.call('boards.get', { board: 'porch' })).online, 30_000, 'porch online after RESET');
    await waitFor(async () => !(await service.api.call('boards.get', { board: 'porch' })).needsReset, 10_000, 'the mark cleared');
    const outcome = await reboot();
    expect(outcome).toMatchObject({ status: 'ok', message: 'back online' });
    expect(board.rom.latchedBootMode).toBe('flash');
  });
});

/**
 * The three adapters a hobbyist's board may have, modelled in the lab (reset-circuit.ts)
 * and reached over RFC 2217 so the product's DTR/RTS arrive: with the NodeMCU auto-reset
 * circuit a flash needs no button and the board starts by itself; with the lines unwired
 * the BOOT/RESET step appears and the flash succeeds after the buttons; without modem
 * lines (a pty) as in usb-provision.test.ts.
 */
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UsbService, type UsbProgressEvent } from '../../electron/manager/usb/usb-service.js';
import { LAB_WIFI } from '../../electron/manager/virtual/micropython-fleet.js';
import { SimulatedEsp8266 } from '../lab/simulated-esp8266.js';
import { Rfc2217Link } from '../lab/rfc2217-link.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';
import { waitFor } from '../helpers/lab.js';
import { closeUsbLab, startUsbLab, type UsbLab } from '../helpers/usb-lab.js';
import type { AdapterModel } from '../lab/esp8266/reset-circuit.js';

describe('flashing through each kind of adapter (simulated ESP8266 over RFC 2217)', () => {
  let service: UsbLab['service'];
  let usb: UsbService;
  let folder: string;
  const boards: SimulatedEsp8266[] = [];
  const events: UsbProgressEvent[] = [];

  beforeAll(async () => {
    ({ service, usb, folder } = await startUsbLab('cm-adapters-', { heartbeatS: 1 }));
    usb.on('progress', (event) => events.push(event));
  });
  afterEach(async () => {
    await Promise.all(boards.splice(0).map((board) => board.close()));
    await Promise.all(links.splice(0).map((link) => link.close()));
    events.length = 0;
  });
  afterAll(async () => {
    await closeUsbLab({ service, usb, folder });
  });

  const links: Rfc2217Link[] = [];

  /** A board as it comes out of the box: running from its flash (erased), not in download mode. */
  async function plugIn(name: string, adapter: AdapterModel): Promise<SimulatedEsp8266> {
    const link = await Rfc2217Link.open({ baud: 115_200 });
    links.push(link);
    const board = new SimulatedEsp8266({ folder: path.join(folder, name), link, adapter });
    boards.push(board);
    await board.powerOn('flash');
    return board;
  }

  const phases = () => events.filter((event) => event.step === 'flash').map((event) => event.phase);

  it('auto-reset (NodeMCU, D1 mini): no button at any point; the board starts by itself, and reboots normally', { timeout: 120_000 }, async () => {
    const board = await plugIn('nodemcu', 'auto');
    const result = await usb.flash({
      port: board.path,
      image: makeEsp8266Image({ size: 128 * 1024, flashMode: 'dio' }),
      provision: { name: 'nodemcu', wifi: LAB_WIFI },
    });
    expect(result.flash).toMatchObject({ boot: 'ok', restartedBy: 'reset-lines', bootModeLatch: 'flash' });
    expect(result.provision?.online).toBe(true);
    expect(phases()).not.toContain('bootloader');
    expect(phases()).not.toContain('press-reset');
    expect(board.rom.latchedBootMode).toBe('flash');
    expect((await service.api.call('boards.get', { board: 'nodemcu' })).needsReset).toBe(false);
    const job = await service.api.call('jobs.start', { kind: 'reboot', boards: 'nodemcu' });
    const done = await waitFor(
      async () => {
        const view = await service.api.call('jobs.get', { id: job.id });
        return view.state === 'done' ? view : null;
      },
      60_000,
      'the reboot',
    );
    expect(done.targets[0]).toMatchObject({ status: 'ok', message: 'back online' });
  });

  it('unwired (ESP-01 on a plain adapter): the BOOT/RESET step appears, and the flash succeeds after the buttons', { timeout: 120_000 }, async () => {
    const board = await plugIn('esp01', 'unwired');
    const pressed: string[] = [];
    const onProgress = (event: UsbProgressEvent) => {
      if (event.phase === 'bootloader') {
        pressed.push('BOOT+RESET');
        void board.rom.pressBootAndReset();
      }
      if (event.phase === 'press-reset') {
        pressed.push('RESET');
        void board.rom.pressReset();
      }
    };
    usb.on('progress', onProgress);
    try {
      const result = await usb.flash({
        port: board.path,
        image: makeEsp8266Image({ size: 128 * 1024, flashMode: 'dio' }),
        provision: { name: 'esp01', wifi: LAB_WIFI },
      });
      expect(result.flash).toMatchObject({ boot: 'ok', restartedBy: 'stub', bootModeLatch: 'flash' });
      expect(result.provision?.online).toBe(true);
      expect(pressed).toEqual(['BOOT+RESET', 'RESET']);
    } finally {
      usb.off('progress', onProgress);
    }
  });

  it('unwired, buttons pressed a while after the prompt (a user reading it): the bootloader is still heard', { timeout: 120_000 }, async () => {
    const board = await plugIn('esp01-slow', 'unwired');
    const link = links.at(-1)!;
    const onProgress = (event: UsbProgressEvent) => {
      if (event.phase === 'press-reset') void board.rom.pressReset();
    };
    usb.on('progress', onProgress);
    try {
      const flashing = usb.flash({ port: board.path, image: makeEsp8266Image({ size: 64 * 1024, flashMode: 'dio' }) });
      await waitFor(() => phases().includes('bootloader'), 30_000, 'the BOOT/RESET prompt');
      // The flasher keeps trying while the user reaches for the buttons.
      const opensAtPrompt = link.opens;
      await waitFor(() => link.opens >= opensAtPrompt + 4, 30_000, 'a few attempts after the prompt');
      await board.rom.pressBootAndReset();
      const result = await flashing;
      expect(result.flash).toMatchObject({ boot: 'ok', restartedBy: 'stub', bootModeLatch: 'flash' });
    } finally {
      usb.off('progress', onProgress);
    }
  });
});

/**
 * One-click flash and provisioning against a simulated ESP8266 (ROM + stub, then
 * MicroPython with its REPL on the pty): the board comes online in the fleet with the
 * given wifi, server and name, and credentials that work for itself only. Its own wifi
 * access point (on after MicroPython's first boot) is turned off for good, unless the
 * caller keeps it. The boards join the wifi with a board's timing (seconds).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsbService, waitOnline, type UsbProgressEvent } from '../../electron/manager/usb/usb-service.js';
import { provisionBoard, type ProvisionProgress } from '../../electron/manager/usb/board-provisioner.js';
import { ProvisioningInputError } from '../../electron/manager/fleet/provisioning-payload.js';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { RespError } from '../../electron/manager/redis/resp-codec.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import { LAB_WIFI } from '../../electron/manager/virtual/micropython-fleet.js';
import { SimulatedEsp8266 } from '../lab/simulated-esp8266.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';
import { waitFor } from '../helpers/lab.js';
import { closeUsbLab, startUsbLab, type UsbLab } from '../helpers/usb-lab.js';

describe('flash and provision an ESP8266 over USB (simulated)', () => {
  let service: UsbLab['service'];
  let usb: UsbService;
  let folder: string;
  const boards: SimulatedEsp8266[] = [];
  const events: UsbProgressEvent[] = [];

  beforeAll(async () => {
    ({ service, usb, folder } = await startUsbLab('cm-usb-', { heartbeatS: 1 }));
    usb.on('progress', (event) => {
      events.push(event);
      // The "user": presses RESET when asked after a flash without reset lines.
      if (event.phase === 'press-reset') void boards.find((board) => board.path === event.port)?.rom.pressReset();
    });
  });
  afterAll(async () => {
    await Promise.all(boards.map((board) => board.close()));
    await closeUsbLab({ service, usb, folder });
  });

  /** Presses RESET and asks the rebooted MicroPython whether its access point is active. */
  async function accessPointAfterReset(board: SimulatedEsp8266): Promise<string> {
    const before = board.board;
    await board.rom.pressReset();
    const rebooted = await waitFor(
      () => (board.board !== before && board.board?.mode === 'firmware' ? board.board : null),
      30_000,
      'MicroPython running again',
    );
    const result = await rebooted.run('import network\nprint(network.WLAN(network.AP_IF).active())');
    return result.error ? result.error : result.stdout;
  }

  const consoles = new Map<SimulatedEsp8266, string>();
  /** What MicroPython sent on the board's serial line so far. */
  const consoleOf = (board: SimulatedEsp8266) => consoles.get(board) ?? '';

  async function newBoard(name: string) {
    const board = new SimulatedEsp8266({ folder: path.join(folder, name) });
    boards.push(board);
    board.on('console', (text) => consoles.set(board, consoleOf(board) + text));
    await board.powerOn('download');
    return board;
  }

  it('flashes, provisions, and the board comes online with its configuration', { timeout: 120_000 }, async () => {
    const board = await newBoard('kitchen');
    const result = await usb.flash({
      port: board.path,
      image: makeEsp8266Image({ size: 256 * 1024, flashMode: 'dio' }),
      provision: { name: 'kitchen', wifi: LAB_WIFI },
    });
    expect(result.flash).toMatchObject({ boot: 'ok', flashMode: 'dio' });
    expect(result.provision).toMatchObject({ name: 'kitchen', online: true, format: 'mpy' });
    const listed = await service.api.call('boards.get', { board: 'kitchen' });
    expect(listed.online).toBe(true);

    const config = JSON.parse(await readFile(path.join(board.fsFolder, 'cm_config.json'), 'utf8'));
    expect(config).toMatchObject({ name: 'kitchen', wifi_ssid: LAB_WIFI.ssid, wifi_password: LAB_WIFI.password, server: '127.0.0.1', port: service.redisPort });

    // Its credentials work for itself, and for nothing else.
    const other = (await service.api.call('boards.enroll', { name: 'other' })).id;
    const connection = await RespConnection.connect({ host: '127.0.0.1', port: service.redisPort });
    await connection.call('AUTH', config.user, config.password);
    const own = boardKeys(config.id);
    expect(await connection.call('FCALL', 'cm_claim', '2', own.cmd, own.state, '')).toBeTruthy();
    const refused = await connection
      .call('XRANGE', boardKeys(other).cmd, '-', '+')
      .catch((error: unknown) => (error instanceof RespError ? error.code : error));
    expect(refused).toBe('NOPERM');
    connection.destroy();

    const { commands } = await service.api.call('commands.send', { boards: 'kitchen', request: { op: 'exec', code: 'print("hello from the kitchen")' } });
    const [done] = await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 10_000 });
    expect(done!.output[0]?.text).toBe('hello from the kitchen\n');
    const phases = new Set(events.map((event) => `${event.step}:${event.phase}`));
    for (const phase of [
      'flash:write',
      'flash:verify',
      'flash:boot-check',
      'provision:repl',
      'provision:enroll',
      'provision:write',
      'provision:access-point',
      'provision:restart',
      'provision:online',
    ]) {
      expect(phases).toContain(phase);
    }
    expect(events.find((event) => event.phase === 'access-point')?.message).toBe("turning off the board's own wifi access point");

    // MicroPython's first boot had left the access point on; after a reboot it is still off.
    expect(board.accessPoint()).toMatchObject({ apActive: false, apSsid: expect.stringMatching(/^MicroPython-/) });
    expect(await accessPointAfterReset(board)).toBe('False\n');
  });

  it('keeps the access point on when asked (keepAccessPoint)', { timeout: 120_000 }, async () => {
    const board = await newBoard('porch');
    await usb.flash({ port: board.path, image: makeEsp8266Image({ size: 128 * 1024, flashMode: 'dio' }) });
    const fleet = service.manager.fleet;
    const phases: ProvisionProgress['phase'][] = [];
    const result = await provisionBoard({
      portPath: board.path,
      name: 'porch',
      wifi: LAB_WIFI,
      server: { host: '127.0.0.1', port: service.redisPort },
      keepAccessPoint: true,
      enroll: (name) => fleet.enroll(name, { rotate: true, server: '127.0.0.1' }),
      knownBoot: (boardId) => fleet.registry.get(boardId)?.boot ?? null,
      waitOnline: (boardId, previousBoot, timeoutMs) => waitOnline(fleet, boardId, previousBoot, timeoutMs),
      onProgress: (progress) => phases.push(progress.phase),
    });
    expect(result.online).toBe(true);
    expect(phases).not.toContain('access-point');
    expect(board.accessPoint()).toMatchObject({ apActive: true, apKey: 'micropythoN' });
    expect(await accessPointAfterReset(board)).toBe('True\n');
  });

  it('refuses bad wifi settings before touching the board; the board keeps working', { timeout: 60_000 }, async () => {
    const board = boards[0]!;
    await expect(usb.provision(board.path, { name: 'kitchen', wifi: { ssid: LAB_WIFI.ssid, password: 'short' } })).rejects.toBeInstanceOf(
      ProvisioningInputError,
    );
    await expect(
      usb.flash({ port: board.path, image: makeEsp8266Image({ size: 64 * 1024 }), provision: { name: 'bad name!', wifi: LAB_WIFI } }),
    ).rejects.toBeInstanceOf(ProvisioningInputError);
    // A build without a file system cannot hold the client: refused before anything is written.
    const writesBefore = board.rom.commandLog.length;
    await expect(
      usb.flash({ port: board.path, image: makeEsp8266Image({ size: 200 * 1024, variant: 'FLASH_512K' }), provision: { name: 'kitchen', wifi: LAB_WIFI } }),
    ).rejects.toThrow(/FLASH_512K, for 512 KB boards\) has no file system, so the Cloudmanager client cannot be stored/);
    expect(board.rom.commandLog.length).toBe(writesBefore);
    // Its credentials were not re-issued: it is still online and runs commands.
    const { commands } = await service.api.call('commands.send', { boards: 'kitchen', request: { op: 'exec', code: 'print(1)' } });
    expect((await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 10_000 }))[0]!.status).toBe('ok');
  });

  it('a wrong wifi password: the job fails within the join time saying what to check, though the board was online before', { timeout: 120_000 }, async () => {
    const board = boards[0]!;
    expect((await service.api.call('boards.get', { board: 'kitchen' })).online).toBe(true);
    const bootBefore = service.manager.fleet.registry.byNameOrId('kitchen')!.boot;
    const job = await service.api.call('jobs.start', {
      kind: 'provision',
      port: board.path,
      name: 'kitchen',
      wifiSsid: LAB_WIFI.ssid,
      wifiPassword: 'not-the-lab-password',
    });
    const done = await waitFor(
      async () => {
        const view = await service.api.call('jobs.get', { id: job.id });
        return view.state === 'done' ? view : null;
      },
      90_000,
      'the provision job',
    );
    expect(done.targets[0]).toMatchObject({ status: 'failed', message: `the board did not join wifi "${LAB_WIFI.ssid}" — check the password` });
    // What the board said on its console, and that it never said hello from this start.
    expect(consoleOf(board)).toContain(`cm: wifi "${LAB_WIFI.ssid}" wrong password (status 2)`);
    expect(service.manager.fleet.registry.byNameOrId('kitchen')!.boot).toBe(bootBefore);
  });

  it('the right password again: online only once the board said hello from its new start', { timeout: 120_000 }, async () => {
    const board = boards[0]!;
    const bootBefore = service.manager.fleet.registry.byNameOrId('kitchen')!.boot;
    const result = await usb.provision(board.path, { name: 'kitchen', wifi: LAB_WIFI });
    expect(result.online).toBe(true);
    const after = service.manager.fleet.registry.byNameOrId('kitchen')!;
    expect(after.online).toBe(true);
    expect(after.boot).not.toBe(bootBefore);
    expect(consoleOf(board)).toContain(`cm: wifi "${LAB_WIFI.ssid}" joined (status 5)`);
  });

  it('leaves the board out of the raw REPL when provisioning fails midway', { timeout: 60_000 }, async () => {
    const board = boards[0]!;
    const failing = new UsbService({
      fleet: service.manager.fleet,
      log: () => undefined,
      firmwareFolder: path.join(folder, 'firmware'),
    });
    // Enrollment fails after the raw REPL was entered (the service refusing it).
    const fleet = service.manager.fleet;
    const original = fleet.enroll.bind(fleet);
    fleet.enroll = async () => {
      throw new Error('the service could not enroll the board');
    };
    try {
      await expect(failing.provision(board.path, { name: 'kitchen', wifi: LAB_WIFI })).rejects.toThrow(/could not enroll/);
    } finally {
      fleet.enroll = original;
    }
    expect(board.repl?.state).not.toBe('raw');
  });
});

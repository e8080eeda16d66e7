/**
 * The service follows its own LAN address when DHCP changes it, with the real Manager and
 * redis-server. The computer's interfaces are handed in: a fake non-loopback "eth0" whose
 * addresses are loopback ones (127.0.0.3, then 127.0.0.2), so real sockets work on lo.
 * While running, the watcher moves Redis and discovery to the new address, saves it, and
 * closes the connections made to the old one; at start a saved address that is gone is
 * replaced by the interface's new one; an address gone at start is taken up once back.
 * Last, a real MicroPython lab board connected on the old address comes back by itself.
 */
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LanAddressFollowed, Manager } from '../../electron/manager/manager.js';
import { networkSettingsFile, type NetworkInterfaces } from '../../electron/manager/network-access.js';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { LAB_WIFI, provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';
import { DiscoveryClient } from '../helpers/discovery-client.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** What the computer "has": loopback, and eth0 with `eth0.address` (none when null). */
function computer(address: string | null) {
  const state = { address };
  const interfaces = (): NetworkInterfaces => ({
    lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
    eth0: state.address
      ? [{ address: state.address, netmask: '255.0.0.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: `${state.address}/8` }]
      : [],
  });
  return { state, interfaces };
}

/** A data folder whose network.json says boards were let in on `lanAddress` (eth0). */
async function dataDirWithChoice(lanAddress: string): Promise<string> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-lan-follow-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  await writeFile(networkSettingsFile(dataDir), JSON.stringify({ lanAddress, lanInterface: 'eth0' }));
  return dataDir;
}

async function service(dataDir: string, interfaces: () => NetworkInterfaces) {
  const started = await startManager({ dataDir, networkInterfaces: interfaces, lanWatchIntervalMs: 50 });
  cleanups.push(() => started.close());
  return started;
}

/** 'open' when something accepts TCP connections at host:port, else the error code. */
async function tcpProbe(host: string, port: number): Promise<string> {
  const socket = net.connect({ host, port });
  try {
    await once(socket, 'connect', { signal: AbortSignal.timeout(5_000) });
    return 'open';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  } finally {
    socket.destroy();
  }
}

/** The host and port the service's discovery answer names, asked at `address`. */
async function discoveredAt(manager: Manager, boardId: string, address: string): Promise<string> {
  const client = await DiscoveryClient.open();
  try {
    const nonce = await client.request(boardId, (await manager.status()).discovery!.port, address);
    const fields = (await client.answerTo(nonce)).split(' ');
    return `${fields[4]}:${fields[5]}`;
  } finally {
    await client.close();
  }
}

async function savedSettings(dataDir: string): Promise<unknown> {
  return JSON.parse(await readFile(networkSettingsFile(dataDir), 'utf8'));
}

describe('the service follows its LAN address', () => {
  it('moves Redis, network.json and discovery to the new address of eth0 while running, and closes connections to the old one', async () => {
    const lan = computer('127.0.0.3');
    const dataDir = await dataDirWithChoice('127.0.0.3');
    const { manager, api, logs, redisPort } = await service(dataDir, lan.interfaces);
    const [board] = await api.call('boards.enrollMany', { names: ['kitchen'] });
    expect(board!.server).toBe('127.0.0.3');
    expect(await discoveredAt(manager, board!.id, '127.0.0.3')).toBe(`127.0.0.3:${redisPort}`);

    // A board's connection to the old address (a real board's would simply go dead).
    const old = net.connect({ host: '127.0.0.3', port: redisPort });
    cleanups.push(() => old.destroy());
    await once(old, 'connect');
    const oldClosed = once(old, 'close');

    const followed = once(manager, 'lanAddressFollowed', { signal: AbortSignal.timeout(10_000) }) as Promise<[LanAddressFollowed]>;
    lan.state.address = '127.0.0.2'; // a new DHCP lease
    const [event] = await followed;
    expect(event).toEqual({ from: '127.0.0.3', to: '127.0.0.2', interfaceName: 'eth0', closedConnections: 1 });

    expect(await tcpProbe('127.0.0.2', redisPort)).toBe('open');
    expect(await tcpProbe('127.0.0.3', redisPort)).toBe('ECONNREFUSED');
    await oldClosed;
    expect(await savedSettings(dataDir)).toEqual({ lanAddress: '127.0.0.2', lanInterface: 'eth0' });
    expect(await discoveredAt(manager, board!.id, '127.0.0.2')).toBe(`127.0.0.2:${redisPort}`);
    expect(await api.call('service.network', {})).toMatchObject({ lanAddress: '127.0.0.2', advertise: { host: '127.0.0.2', port: redisPort } });
    expect((await api.call('status', {})).discovery!.addresses).toContain(`127.0.0.2:${(await manager.status()).discovery!.port}`);
    expect(logs).toContainEqual({
      level: 'info',
      message: expect.stringContaining("this computer's address on eth0 changed from 127.0.0.3 to 127.0.0.2; boards find it again by discovery"),
    });

    // The manager's own connections (over 127.0.0.1) were not among the closed ones.
    await expect(api.call('boards.enroll', { name: 'garage' })).resolves.toMatchObject({ name: 'garage', server: '127.0.0.2' });
  });

  it('starts on the new address of eth0 when the saved one is gone, and saves it', async () => {
    const lan = computer('127.0.0.2');
    const dataDir = await dataDirWithChoice('127.0.0.3');
    const { api, logs, redisPort } = await service(dataDir, lan.interfaces);

    expect(await tcpProbe('127.0.0.2', redisPort)).toBe('open');
    expect(await tcpProbe('127.0.0.3', redisPort)).toBe('ECONNREFUSED');
    expect(await savedSettings(dataDir)).toEqual({ lanAddress: '127.0.0.2', lanInterface: 'eth0' });
    expect(await api.call('service.network', {})).toMatchObject({ lanAddress: '127.0.0.2', loopbackOnly: false, advertise: { host: '127.0.0.2' } });
    expect(logs).toContainEqual({
      level: 'info',
      message: "this computer's address on eth0 changed from 127.0.0.3 to 127.0.0.2; boards find it again by discovery",
    });
  });

  it('starts on loopback only when eth0 has no address, and takes the new one up once it has', async () => {
    const lan = computer(null);
    const dataDir = await dataDirWithChoice('127.0.0.3');
    const { manager, api, logs, redisPort } = await service(dataDir, lan.interfaces);
    expect(await api.call('service.network', {})).toMatchObject({ lanAddress: null, loopbackOnly: true, advertise: { host: '127.0.0.1' } });
    expect(logs).toContainEqual({
      level: 'warn',
      message: expect.stringContaining('were let in on 127.0.0.3, which is no longer an address of this computer'),
    });
    expect(await savedSettings(dataDir)).toEqual({ lanAddress: '127.0.0.3', lanInterface: 'eth0' }); // kept for when it is back

    const followed = once(manager, 'lanAddressFollowed', { signal: AbortSignal.timeout(10_000) }) as Promise<[LanAddressFollowed]>;
    lan.state.address = '127.0.0.2'; // the wifi connects after the service started
    expect((await followed)[0]).toEqual({ from: '127.0.0.3', to: '127.0.0.2', interfaceName: 'eth0', closedConnections: 0 });
    expect(await tcpProbe('127.0.0.2', redisPort)).toBe('open');
    expect(await savedSettings(dataDir)).toEqual({ lanAddress: '127.0.0.2', lanInterface: 'eth0' });
    expect(await api.call('service.network', {})).toMatchObject({ lanAddress: '127.0.0.2', advertise: { host: '127.0.0.2' } });
  });

  it('with --bind 0.0.0.0 it listens where told and gives boards an address of the interfaces it was handed', async () => {
    const lan = computer('127.0.0.3');
    const dataDir = await dataDirWithChoice('127.0.0.2'); // ignored: --bind decides
    const started = await startManager({ dataDir, networkInterfaces: lan.interfaces, lanWatchIntervalMs: 50, bind: ['0.0.0.0'] });
    cleanups.push(() => started.close());
    expect((await started.api.call('service.network', {})).advertise.host).toBe('127.0.0.3');
    await expect(started.manager.setLanAccess('127.0.0.3')).rejects.toThrow(/started with --bind/);
  });

  it(
    'a MicroPython board connected on the old address comes back on the new one by itself, the service running on',
    { timeout: 90_000 },
    async ({ annotate }) => {
      const lan = computer('127.0.0.3');
      const dataDir = await dataDirWithChoice('127.0.0.3');
      const { manager, api } = await service(dataDir, lan.interfaces);
      const [credentials] = await api.call('boards.enrollMany', { names: ['dhcp-1'] });
      const folder = path.join(dataDir, 'boards', 'dhcp-1');
      await provisionFolder(folder, credentials!, { host: credentials!.server, port: credentials!.port });
      const configFile = path.join(folder, 'cm_config.json');
      // Provisioning leaves `dp` out (18268 is the default); this service answers on its own test port.
      const provisioned = { ...JSON.parse(await readFile(configFile, 'utf8')), dp: (await manager.status()).discovery!.port };
      await writeFile(configFile, JSON.stringify(provisioned));
      expect(provisioned).toMatchObject({ server: '127.0.0.3' });
      const board = new MicroPythonBoard({ folder, wifi: LAB_WIFI, timing: 'fast' });
      cleanups.push(() => board.powerOff());
      await board.start();
      await waitFor(async () => (await api.call('boards.get', { board: 'dhcp-1' })).online, 30_000, 'the board online at the old address');

      const offline = new Promise<void>((resolve) => {
        const onEvent = (event: { type: string; board?: { id: string } }) => {
          if (event.type === 'board.offline' && event.board?.id === credentials!.id) resolve();
        };
        manager.fleet.on('board', onEvent);
        cleanups.push(() => manager.fleet.off('board', onEvent));
      });
      const changedAt = Date.now();
      lan.state.address = '127.0.0.2';
      const [followed] = (await once(manager, 'lanAddressFollowed', { signal: AbortSignal.timeout(10_000) })) as [LanAddressFollowed];
      expect(followed.closedConnections).toBeGreaterThanOrEqual(1);
      await offline; // its session to the old address ended
      await waitFor(async () => (await api.call('boards.get', { board: 'dhcp-1' })).online, 60_000, 'the board online at the new address');
      await annotate(`board back online ${Date.now() - changedAt} ms after the address changed`);
      expect(JSON.parse(await readFile(configFile, 'utf8'))).toEqual({ ...provisioned, server: '127.0.0.2' });
    },
  );
});

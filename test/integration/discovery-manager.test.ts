/**
 * Discovery in the running service: each board gets its own discovery key at enrolment (a
 * new one on rotate), provisioning writes it into the board's cm_config.json, no listing
 * or log shows it, and the service answers boards with the address it advertises now —
 * the new one after the LAN address changed. A taken discovery port never stops the
 * service from starting; with an external Redis there is no discovery.
 */
import { createHmac } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { MANAGER_USER } from '../../electron/manager/redis/acl.js';
import { managerKeys } from '../../electron/manager/redis/keys.js';
import { lanInterfaces } from '../../electron/manager/network-access.js';
import { provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { startManager } from '../helpers/lab.js';
import { startPlainRedis } from '../helpers/plain-redis.js';
import { DiscoveryClient, freeUdpPort } from '../helpers/discovery-client.js';

/** A real non-loopback IPv4 address of this machine, if it has one. */
const LAN = lanInterfaces().find((choice) => choice.family === 'IPv4')?.address;

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function service(options: Parameters<typeof startManager>[0] = {}) {
  const started = await startManager({ discoveryPort: await freeUdpPort(), ...options });
  cleanups.push(() => started.close());
  return started;
}

async function openClient(): Promise<DiscoveryClient> {
  const client = await DiscoveryClient.open();
  cleanups.push(() => client.close());
  return client;
}

/** Asks as board `credentials` would and checks the answer's MAC with its key; returns host:port. */
async function ask(client: DiscoveryClient, credentials: BoardCredentials, port: number, address = '127.0.0.1'): Promise<string> {
  const nonce = await client.request(credentials.id, port, address);
  const fields = (await client.answerTo(nonce)).split(' ');
  expect(fields[6]).toBe(createHmac('sha256', Buffer.from(credentials.dk!, 'ascii')).update(fields.slice(0, 6).join(' ')).digest('hex'));
  return `${fields[4]}:${fields[5]}`;
}

/** True when a request for `boardId` went unanswered (checked behind an answered request of `control`). */
async function unanswered(client: DiscoveryClient, boardId: string, control: BoardCredentials, port: number, address = '127.0.0.1'): Promise<boolean> {
  const nonce = await client.request(boardId, port, address);
  await ask(client, control, port);
  return !client.received.some((text) => text.split(' ')[3] === nonce);
}

describe('discovery in the service', () => {
  it('issues each board its own key at enrolment and a new one on rotate, provisions it, and shows it nowhere else', async () => {
    const { manager, api, logs, dataDir } = await service();
    const [kitchen, garage] = await api.call('boards.enrollMany', { names: ['kitchen', 'garage'] });
    expect(kitchen!.dk).toMatch(/^[0-9a-f]{64}$/);
    expect(garage!.dk).toMatch(/^[0-9a-f]{64}$/);
    expect(kitchen!.dk).not.toBe(garage!.dk);
    const rotated = await api.call('boards.enroll', { name: 'kitchen', rotate: true });
    expect(rotated.dk).toMatch(/^[0-9a-f]{64}$/);
    expect(rotated.dk).not.toBe(kitchen!.dk);

    // Virtual boards get what provisioning writes to a real one.
    const folder = path.join(dataDir, 'flash-kitchen');
    await provisionFolder(folder, rotated, manager.fleet.advertise);
    // The service's discovery port is not the default here: the board is told which one it is.
    const discoveryPort = (await api.call('status', {})).discovery!.port;
    expect(rotated.dp).toBe(discoveryPort);
    expect(JSON.parse(await readFile(path.join(folder, 'cm_config.json'), 'utf8'))).toMatchObject({ id: rotated.id, dk: rotated.dk, dp: discoveryPort });

    const shown = JSON.stringify([
      await api.call('boards.list', {}),
      await api.call('boards.get', { board: 'kitchen' }),
      await api.call('boards.history', { board: 'kitchen' }),
      await api.call('status', {}),
      await api.call('service.network', {}),
      logs,
    ]);
    for (const key of [kitchen!.dk!, garage!.dk!, rotated.dk!]) expect(shown).not.toContain(key);

    // The service answers with the key it holds now: the rotated one.
    const client = await openClient();
    const port = discoveryPort;
    expect(await ask(client, rotated, port)).toBe(`127.0.0.1:${manager.fleet.advertise.port}`);
    await api.call('boards.remove', { board: 'garage' });
    expect(await unanswered(client, garage!.id, rotated, port)).toBe(true);
  });

  it('does not answer a board enrolled before discovery keys (it has none until rotated)', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-disc-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const first = await startManager({ dataDir, discoveryPort: await freeUdpPort() });
    const [old, control] = await first.api.call('boards.enrollMany', { names: ['old', 'control'] });
    // What a data folder from before discovery holds: the board, but no key for it.
    const admin = await RespConnection.connect({ host: '127.0.0.1', port: first.redisPort });
    await admin.call('AUTH', MANAGER_USER, (await readFile(first.manager.paths.managerPassword, 'utf8')).trim());
    await admin.call('HDEL', managerKeys.discoveryKeys, old!.id);
    admin.destroy();
    await first.close();

    const again = await service({ dataDir, redisPort: first.redisPort });
    const client = await openClient();
    const port = (await again.api.call('status', {})).discovery!.port;
    expect(await unanswered(client, old!.id, control!, port)).toBe(true);
    const rotated = await again.api.call('boards.enroll', { name: 'old', rotate: true });
    expect(await ask(client, rotated, port)).toBe(`127.0.0.1:${first.redisPort}`);
  });

  it.skipIf(!LAN)('answers with the new address after LAN access changes (needs a LAN IPv4 address of this machine, skipped without one)', async () => {
    const { manager, api, redisPort } = await service();
    const [board] = await api.call('boards.enrollMany', { names: ['board'] });
    const client = await openClient();
    const port = (await api.call('status', {})).discovery!.port;
    expect(await ask(client, board!, port)).toBe(`127.0.0.1:${redisPort}`);

    await manager.setLanAccess(LAN!);
    expect(await ask(client, board!, port)).toBe(`${LAN}:${redisPort}`);
    expect(await ask(client, board!, port, LAN)).toBe(`${LAN}:${redisPort}`);
    expect((await api.call('status', {})).discovery!.addresses).toContain(`${LAN}:${port}`);

    await manager.setLanAccess(null);
    expect(await ask(client, board!, port)).toBe(`127.0.0.1:${redisPort}`);
    expect(await unanswered(client, board!.id, board!, port, LAN)).toBe(true);
  });

  it('starts without discovery, with a warning, when the discovery port is taken', async () => {
    const port = await freeUdpPort();
    const occupant = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => occupant.bind(port, '127.0.0.1', () => resolve()));
    cleanups.push(() => new Promise<void>((resolve) => occupant.close(() => resolve())));

    const { api, logs } = await service({ discoveryPort: port });
    expect((await api.call('status', {})).discovery).toBeNull();
    expect(logs).toContainEqual({
      level: 'warn',
      message: expect.stringMatching(new RegExp(`discovery is off .*UDP port ${port} on 127\\.0\\.0\\.1 is used by another program`)),
    });
    await expect(api.call('boards.enroll', { name: 'still-works' })).resolves.toMatchObject({ name: 'still-works' });
  });

  it('runs no discovery with an external Redis (the service does not know what boards reach)', async () => {
    const redis = await startPlainRedis();
    cleanups.push(() => redis.kill());
    const { api } = await service({ redisUrl: redis.url(), redisPort: undefined });
    expect((await api.call('status', {})).discovery).toBeNull();
  });
});

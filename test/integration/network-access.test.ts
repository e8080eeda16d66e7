/**
 * Letting boards on the local network in, against the real /usr/bin/redis-server set up as
 * the manager sets it up (default user off, the manager's ACL user): the running server
 * starts listening on a LAN address without a restart, keeps doing so after a crash
 * restart, and a wrong address changes nothing and says what to do.
 */
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RedisServerSupervisor } from '../../electron/manager/redis/redis-server-supervisor.js';
import { RedisAdminError, RedisBindError } from '../../electron/manager/redis/redis-admin.js';
import { embeddedAclFile, MANAGER_USER } from '../../electron/manager/redis/acl.js';
import { NetworkAccessError, applyLanAddress, lanInterfaces, networkSettingsFile, readNetworkSettings } from '../../electron/manager/network-access.js';
import { freePort } from '../helpers/free-port.js';

const REDIS = '/usr/bin/redis-server';
const PASSWORD = 'manager-password-for-this-test';
/** A real non-loopback IPv4 address of this machine, if it has one. */
const LAN = lanInterfaces().find((choice) => choice.family === 'IPv4')?.address;
/** An address from TEST-NET-3 that this machine does not have. */
const FOREIGN = (() => {
  const own = new Set(Object.values(os.networkInterfaces()).flatMap((infos) => (infos ?? []).map((i) => i.address)));
  for (let last = 77; ; last++) if (!own.has(`203.0.113.${last}`)) return `203.0.113.${last}`;
})();

let dir: string;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cm-lan-'));
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(dir, { recursive: true, force: true });
});

async function startSupervisor(password = PASSWORD): Promise<RedisServerSupervisor> {
  const aclFile = path.join(dir, 'users.acl');
  await writeFile(aclFile, embeddedAclFile('', PASSWORD), { mode: 0o600 });
  const supervisor = new RedisServerSupervisor({
    binaryPath: REDIS,
    port: await freePort(),
    bind: ['127.0.0.1'],
    dataDir: path.join(dir, 'redis'),
    aclFile,
    auth: { username: MANAGER_USER, password },
  });
  cleanups.push(() => supervisor.stop());
  await supervisor.start();
  return supervisor;
}

/**
 * Logs in as the manager's user and sends PING over a plain TCP connection to host:port;
 * resolves with everything Redis answered. Rejects (ECONNREFUSED) when nothing listens there.
 */
async function pingAsManager(host: string, port: number): Promise<string> {
  const socket = net.connect({ host, port });
  cleanups.push(() => socket.destroy());
  await once(socket, 'connect', { signal: AbortSignal.timeout(10_000) });
  socket.write(`AUTH ${MANAGER_USER} ${PASSWORD}\r\nPING\r\n`);
  let answer = '';
  socket.setEncoding('utf8');
  for await (const chunk of socket.iterator({ destroyOnReturn: true })) {
    answer += String(chunk);
    if (answer.includes('PONG') || answer.startsWith('-')) break;
  }
  socket.destroy();
  return answer;
}

async function refused(host: string, port: number): Promise<string | undefined> {
  return pingAsManager(host, port).then(
    () => 'accepted',
    (error: NodeJS.ErrnoException) => error.code,
  );
}

describe('letting boards on the local network reach the embedded Redis', () => {
  it.skipIf(LAN === undefined)(
    'setBind adds a LAN address without a restart and a crash restart listens there again (skipped when this machine has no non-loopback IPv4 address)',
    async () => {
      const lan = LAN!;
      const supervisor = await startSupervisor();
      const { port } = supervisor;
      const pidBefore = supervisor.pid;
      expect(await refused(lan, port)).toBe('ECONNREFUSED');

      await supervisor.setBind(['127.0.0.1', lan]);
      expect(await pingAsManager(lan, port)).toBe('+OK\r\n+PONG\r\n');
      expect(await pingAsManager('127.0.0.1', port)).toBe('+OK\r\n+PONG\r\n');
      expect(supervisor.pid).toBe(pidBefore); // same process: no restart
      expect(supervisor.bind).toEqual(['127.0.0.1', lan]);

      const restarted = once(supervisor, 'started', { signal: AbortSignal.timeout(15_000) });
      process.kill(pidBefore!, 'SIGKILL');
      const [started] = (await restarted) as [{ pid: number; restart: boolean }];
      expect(started.restart).toBe(true);
      expect(started.pid).not.toBe(pidBefore);
      expect(await pingAsManager(lan, port)).toBe('+OK\r\n+PONG\r\n');
      expect(await pingAsManager('127.0.0.1', port)).toBe('+OK\r\n+PONG\r\n');
    },
  );

  it.skipIf(LAN === undefined)(
    'applyLanAddress lets boards in, remembers it, and takes it back (skipped when this machine has no non-loopback IPv4 address)',
    async () => {
      const lan = LAN!;
      const supervisor = await startSupervisor();
      const settingsFile = networkSettingsFile(dir);

      // The interface is kept with the address, so a new DHCP lease on it can be followed.
      const lanInterface = lanInterfaces().find((choice) => choice.address === lan)!.name;
      expect(await applyLanAddress({ supervisor, settingsFile, lanAddress: lan })).toEqual({ lanAddress: lan, lanInterface });
      expect(await readNetworkSettings(settingsFile)).toEqual({ lanAddress: lan, lanInterface });
      expect(await pingAsManager(lan, supervisor.port)).toBe('+OK\r\n+PONG\r\n');

      expect(await applyLanAddress({ supervisor, settingsFile, lanAddress: null })).toEqual({ lanAddress: null });
      expect(await readNetworkSettings(settingsFile)).toEqual({ lanAddress: null });
      expect(await refused(lan, supervisor.port)).toBe('ECONNREFUSED');
      expect(await pingAsManager('127.0.0.1', supervisor.port)).toBe('+OK\r\n+PONG\r\n');
    },
  );

  it("an address that is not this machine's fails clearly; 127.0.0.1 keeps working, also after a crash restart", async () => {
    const supervisor = await startSupervisor();
    const { port } = supervisor;
    const pidBefore = supervisor.pid;

    const error = await supervisor.setBind(['127.0.0.1', FOREIGN]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisBindError);
    expect((error as Error).message).toContain(`could not listen on 127.0.0.1, ${FOREIGN} port ${port}`);
    expect((error as Error).message).toContain('it still listens on 127.0.0.1');
    expect(supervisor.bind).toEqual(['127.0.0.1']);
    expect(supervisor.pid).toBe(pidBefore);
    expect(await pingAsManager('127.0.0.1', port)).toBe('+OK\r\n+PONG\r\n');

    // The failed change must not leak into the restart's config either.
    const restarted = once(supervisor, 'started', { signal: AbortSignal.timeout(15_000) });
    process.kill(pidBefore!, 'SIGKILL');
    await restarted;
    expect(await pingAsManager('127.0.0.1', port)).toBe('+OK\r\n+PONG\r\n');
  });

  it('setBind with credentials redis refuses fails clearly and changes nothing', async () => {
    const supervisor = await startSupervisor('not the manager password');
    const error = await supervisor.setBind(['127.0.0.1', FOREIGN]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisAdminError);
    expect((error as Error).message).toBe(`redis-server refused the supervisor's credentials (user ${MANAGER_USER})`);
    expect(supervisor.bind).toEqual(['127.0.0.1']);
    expect(await pingAsManager('127.0.0.1', supervisor.port)).toBe('+OK\r\n+PONG\r\n');
  });

  it("applyLanAddress refuses an address that is not this computer's before touching Redis, and lists the choices", async () => {
    const supervisor = await startSupervisor();
    const settingsFile = networkSettingsFile(dir);
    const error = await applyLanAddress({ supervisor, settingsFile, lanAddress: FOREIGN }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NetworkAccessError);
    expect((error as NetworkAccessError).reason).toBe('not-local');
    expect((error as Error).message).toMatch(
      new RegExp(`^${FOREIGN.replaceAll('.', '\\.')} is not an address of this computer; (choose one of: |this computer has no network)`),
    );
    expect(supervisor.bind).toEqual(['127.0.0.1']);
    expect(await readNetworkSettings(settingsFile)).toEqual({ lanAddress: null });
  });

  it('applyLanAddress reports an address Redis cannot bind as NetworkAccessError and saves nothing', async () => {
    const supervisor = await startSupervisor();
    const settingsFile = networkSettingsFile(dir);
    // An interface list that claims FOREIGN is ours (the address vanished since it was listed).
    const interfaces = {
      wlan0: [{ address: FOREIGN, netmask: '255.255.255.0', family: 'IPv4' as const, mac: '02:00:00:00:00:01', internal: false, cidr: `${FOREIGN}/24` }],
    };
    const error = await applyLanAddress({ supervisor, settingsFile, lanAddress: FOREIGN, interfaces }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NetworkAccessError);
    expect((error as NetworkAccessError).reason).toBe('bind-refused');
    expect((error as Error).message).toContain(`Redis could not listen on ${FOREIGN} port ${supervisor.port}`);
    expect((error as Error).cause).toBeInstanceOf(RedisBindError);
    expect(supervisor.bind).toEqual(['127.0.0.1']);
    expect(await readNetworkSettings(settingsFile)).toEqual({ lanAddress: null });
    expect(await pingAsManager('127.0.0.1', supervisor.port)).toBe('+OK\r\n+PONG\r\n');
  });
});

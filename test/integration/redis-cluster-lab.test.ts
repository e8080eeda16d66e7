/**
 * The Redis Cluster and Sentinel labs themselves (test/helpers/redis-cluster-lab.ts, the
 * logic of `npm run cluster:up`): what the cluster tests of the app will stand on. Real
 * redis-server processes on loopback, driven through ioredis as the manager will be.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/lab.js';
import { startClusterLab, startSentinelLab, type RedisLab } from '../helpers/redis-cluster-lab.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The lab, stopped after the test: its processes gone and its folder removed. */
async function started<T extends RedisLab>(lab: Promise<T>): Promise<T> {
  const ready = await lab;
  cleanups.push(() => ready.stop());
  return ready;
}

/** Writes `key` on the primary holding it and waits until a replica has it too (WAIT), so a kill -9 cannot lose it. */
async function setReplicated(primaryPort: number, key: string, value: string): Promise<void> {
  const direct = new Redis({ host: '127.0.0.1', port: primaryPort, lazyConnect: true });
  try {
    await direct.set(key, value);
    expect(await direct.wait(1, 10_000)).toBe(1);
  } finally {
    direct.disconnect();
  }
}

/** The ports among `ports` where something still accepts a connection. */
async function answering(ports: number[]): Promise<number[]> {
  const accepted = await Promise.all(
    ports.map(
      (port) =>
        new Promise<boolean>((resolve) => {
          const probe = net.connect({ host: '127.0.0.1', port }, () => (probe.destroy(), resolve(true)));
          probe.once('error', () => resolve(false));
        }),
    ),
  );
  return ports.filter((_, index) => accepted[index]);
}

describe('Redis Cluster lab', () => {
  it('covers every slot, keeps keys through ioredis, promotes a replica when a primary is killed, and stops without leftovers', async () => {
    const lab = await started(startClusterLab({ masters: 3, replicas: 1 }));
    expect(lab.nodes.filter((node) => node.role === 'primary')).toHaveLength(3);
    expect(lab.nodes.filter((node) => node.role === 'replica')).toHaveLength(3);
    expect(lab.url).toBe(`redis+cluster://${lab.nodes.map((node) => `127.0.0.1:${node.port}`).join(',')}`);

    const cluster = new Cluster(lab.seeds, { retryDelayOnFailover: 200, retryDelayOnClusterDown: 200 });
    cleanups.push(async () => cluster.disconnect());
    cluster.on('error', () => undefined); // the killed node refuses connections until the client drops it
    const slots = await cluster.cluster('SLOTS');
    expect(slots.reduce((sum, [first, last]) => sum + last - first + 1, 0)).toBe(16_384);
    expect(new Set(slots.map(([, , primary]) => primary?.[1])).size).toBe(3);

    const keys = Array.from({ length: 30 }, (_, index) => `lab:key-${index}`);
    for (const key of keys) await cluster.set(key, `value of ${key}`);
    for (const key of keys) expect(await cluster.get(key)).toBe(`value of ${key}`);
    // Redis lists a replica in CLUSTER SLOTS once it has replicated something (offset > 0, known by gossip).
    await waitFor(async () => (await cluster.cluster('SLOTS')).every(([, , , ...replicas]) => replicas.length === 1), 10_000, 'one replica per slot range');

    // A key on the primary about to die, known to have reached its replica.
    const [first, , primary] = slots[0]!;
    const victim = primary![1];
    const slotOf = async (key: string) => Number(await cluster.cluster('KEYSLOT', key));
    let onVictim = '';
    for (let index = 0; onVictim === ''; index += 1) if ((await slotOf(`lab:victim-${index}`)) === first) onVictim = `lab:victim-${index}`;
    await setReplicated(victim, onVictim, 'survives');

    const { killed, promoted } = await lab.killPrimary(victim);
    expect(killed).toBe(victim);
    expect(lab.nodes.find((node) => node.port === victim)?.role).toBe('down');
    expect(lab.nodes.find((node) => node.port === promoted)?.role).toBe('primary');

    expect(await cluster.get(onVictim)).toBe('survives');
    await cluster.set(onVictim, 'written after the failover');
    expect(await cluster.get(onVictim)).toBe('written after the failover');

    // Stopped: no node answers any more and the lab's folder is gone.
    const ports = lab.nodes.map((node) => node.port);
    cluster.disconnect();
    await lab.stop();
    expect(await answering(ports)).toEqual([]);
    expect(existsSync(lab.dir)).toBe(false);
  });
});

describe('Sentinel lab', () => {
  it('fails over to the replica, ioredis with sentinels follows, and stops without leftovers', async () => {
    const lab = await started(startSentinelLab());
    expect(lab.seeds).toHaveLength(3);
    expect(lab.url).toBe(`redis+sentinel://${lab.seeds.map((seed) => `127.0.0.1:${seed.port}`).join(',')}/${lab.name}`);
    const [primary, replica] = lab.nodes;
    expect(primary?.role).toBe('primary');
    expect(replica?.role).toBe('replica');

    const client = new Redis({ sentinels: lab.seeds, name: lab.name });
    cleanups.push(async () => client.disconnect());
    client.on('error', () => undefined); // the killed primary refuses connections until the sentinels name the new one
    await client.set('lab:key', 'before');
    expect(await client.wait(1, 10_000)).toBe(1);
    expect(client.stream.remotePort).toBe(primary!.port);

    const { killed, promoted } = await lab.killPrimary();
    expect([killed, promoted]).toEqual([primary!.port, replica!.port]);

    expect(await client.get('lab:key')).toBe('before');
    await client.set('lab:key', 'after');
    expect(await client.get('lab:key')).toBe('after');
    expect(client.stream.remotePort).toBe(promoted);

    const ports = [...lab.nodes, ...lab.seeds].map((node) => node.port);
    client.disconnect();
    await lab.stop();
    expect(await answering(ports)).toEqual([]);
    expect(existsSync(lab.dir)).toBe(false);
  });
});

describe('npm run cluster:up / cluster:down', () => {
  const script = fileURLToPath(new URL('../../scripts/redis-cluster.mjs', import.meta.url));

  it('moves past a taken port, prints the cluster, and a bare cluster:down stops it and removes its folder', async () => {
    // Its own temp folder (TMPDIR), where the script remembers its last lab: not the user's.
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'cm-cluster-cli-'));
    cleanups.push(() => rm(tmp, { recursive: true, force: true }));
    const run = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [script, ...args], { env: { ...process.env, TMPDIR: tmp } }, (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
        );
      });
    const taken = net.createServer();
    const base = 20_000 + Math.floor(Math.random() * 9_000);
    await new Promise<void>((resolve) => taken.once('error', () => resolve()).listen(base, '127.0.0.1', () => resolve()));
    cleanups.push(() => new Promise((resolve) => taken.close(resolve)));

    const up = await run('up', '--masters', '3', '--replicas', '0', '--port', String(base));
    expect(up.code, up.stderr).toBe(0);
    const printed = JSON.parse(up.stdout) as { nodes: Array<{ port: number; role: string }>; url: string; dir: string; state: string };
    cleanups.push(() => run('down', '--dir', printed.dir));
    expect(printed.nodes.map((node) => node.role)).toEqual(['primary', 'primary', 'primary']);
    expect(printed.nodes.map((node) => node.port)).not.toContain(base);
    expect(printed.url).toBe(`redis+cluster://${printed.nodes.map((node) => `127.0.0.1:${node.port}`).join(',')}`);
    expect(printed.dir.startsWith(tmp)).toBe(true);
    expect(existsSync(printed.state)).toBe(true);

    const down = await run('down');
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain(`stopped 3 nodes and removed ${printed.dir}`);
    expect(await answering(printed.nodes.map((node) => node.port))).toEqual([]);
    expect(existsSync(printed.dir)).toBe(false);

    const again = await run('down');
    expect([again.code, again.stdout.trim()]).toEqual([0, 'redis-cluster: no lab running']);
    expect((await run('up', '--masters', '2')).stderr).toContain('--masters must be a whole number from 3');
  });
});

/**
 * MicroPython lab boards started the way `mbm sim --micropython` starts them, on a Redis
 * that spans nodes: each board is provisioned with its own address as enrolling gave it,
 * not one address for all. On a Cluster that is its slot's primary (which the board logs
 * in to), with Sentinel the primary (the service's Redis address there names a sentinel,
 * which is no Redis a board can use). The Sentinel case runs the compiled CLI (dist/).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boardKeys, boardUser } from '../../electron/manager/redis/keys.js';
import { startMicroPythonFleet, type MicroPythonFleet } from '../../electron/manager/virtual/micropython-fleet.js';
import { redisCommand } from '../../scripts/redis-cluster-lib.mjs';
import { startManager, waitFor } from '../helpers/lab.js';
import { MBM } from '../helpers/mbm-cli.js';
import { startClusterLab, startSentinelLab, type RedisLab } from '../helpers/redis-cluster-lab.js';

const text = (reply: unknown) => (Buffer.isBuffer(reply) ? reply.toString() : String(reply));
/** The Redis address in a board's flash (what provisioning wrote to /cm_config.json). */
async function provisionedServer(folder: string): Promise<{ host: string; port: number }> {
  const config = JSON.parse(await readFile(path.join(folder, 'cm_config.json'), 'utf8')) as { server: string; port: number };
  return { host: config.server, port: config.port };
}
const primaryPorts = (lab: RedisLab) => lab.nodes.filter((node) => node.role === 'primary').map((node) => node.port);

describe('MicroPython sim boards on a Redis Cluster', () => {
  let lab: RedisLab;
  let service: Awaited<ReturnType<typeof startManager>>;
  let root: string;
  let fleet: MicroPythonFleet | undefined;

  /** The primary serving `key`'s slot, as the cluster itself says (not the manager's view of it). */
  async function primaryOf(key: string): Promise<number> {
    const anyNode = primaryPorts(lab)[0]!;
    const slot = Number(await redisCommand(anyNode, ['CLUSTER', 'KEYSLOT', key]));
    const ranges = (await redisCommand(anyNode, ['CLUSTER', 'SLOTS'])) as Array<[number, number, [unknown, number], ...unknown[]]>;
    const [, , [, port]] = ranges.find(([first, last]) => first <= slot && slot <= last)!;
    return Number(port);
  }

  beforeAll(async () => {
    lab = await startClusterLab({ masters: 3, replicas: 0 });
    service = await startManager({ redisUrl: lab.url, redisPort: undefined });
    root = await mkdtemp(path.join(os.tmpdir(), 'cm-mpy-sim-cluster-'));
  }, 60_000);
  afterAll(async () => {
    await fleet?.close();
    await service?.close();
    await lab?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it("provisions each board with its slot's primary, and each logs in there", async () => {
    fleet = await startMicroPythonFleet({ api: service.api, count: 3, prefix: 'mcl', root, board: { timing: 'fast' } });
    for (const { name, credentials, folder } of fleet.boards) {
      const primary = await primaryOf(boardKeys(credentials.id).cmd);
      expect([name, credentials.port], `${name}: enrolling gave its slot's primary`).toEqual([name, primary]);
      expect([name, await provisionedServer(folder)]).toEqual([name, { host: credentials.server, port: primary }]);
    }
    await waitFor(async () => (await service.api.call('status', {})).boards.online === 3, 60_000, 'the MicroPython boards online');
    for (const { name, credentials } of fleet.boards) {
      // Online says a hello arrived; the connection is looked for on the node itself (a loaded lab may be mid-reconnect).
      const user = `user=${boardUser(credentials.id)} `;
      await waitFor(async () => text(await redisCommand(credentials.port, ['CLIENT', 'LIST'])).includes(user), 20_000, `${name} connected to its primary`);
    }
  }, 120_000);
});

describe('mbm sim --micropython with Redis Sentinel', () => {
  let lab: RedisLab;
  let service: Awaited<ReturnType<typeof startManager>>;
  let root: string;
  let sim: ChildProcess | undefined;
  let output = '';

  beforeAll(async () => {
    lab = await startSentinelLab();
    service = await startManager({ redisUrl: lab.url, redisPort: undefined });
    root = await mkdtemp(path.join(os.tmpdir(), 'cm-mpy-sim-sentinel-'));
  }, 60_000);
  afterAll(async () => {
    if (sim && sim.exitCode === null && sim.signalCode === null) sim.kill('SIGKILL');
    await service?.close();
    await lab?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('provisions the board with the primary, not a sentinel, and the board comes online', async () => {
    // The service runs in this process: its data folder says where, as for any `mbm` command.
    sim = spawn(process.execPath, [MBM, 'sim', '--micropython', '--boards', '1', '--prefix', 'mst', '--fs', root, '--data-dir', service.dataDir], {
      env: { ...process.env, CLOUDMANAGER_DATA_DIR: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let exitCode: number | null | undefined;
    sim.stdout!.on('data', (chunk) => (output += chunk));
    sim.stderr!.on('data', (chunk) => (output += chunk));
    sim.once('exit', (code) => (exitCode = code));
    await waitFor(() => output.includes('running. Press Ctrl-C to stop.') || exitCode !== undefined, 90_000, 'mbm sim to run or exit');
    expect(exitCode, output).toBeUndefined();

    const [primary] = primaryPorts(lab);
    const board = (await service.api.call('boards.list', {})).find((entry) => entry.name === 'mst-1')!;
    expect(await provisionedServer(path.join(root, 'mst-1'))).toEqual({ host: '127.0.0.1', port: primary });
    await waitFor(async () => (await service.api.call('boards.get', { board: 'mst-1' })).online, 60_000, 'mst-1 online');
    const user = `user=${boardUser(board.id)} `;
    expect(text(await redisCommand(primary!, ['CLIENT', 'LIST']))).toContain(user);

    sim.kill('SIGINT');
    await waitFor(() => exitCode !== undefined, 10_000, 'mbm sim to stop');
    expect(exitCode, output).toBe(0);
  }, 150_000);
});

/**
 * The manager on a Redis Cluster (3 primaries, 1 replica each, on loopback): `--redis-url
 * redis+cluster://…` works like one Redis for a user. Boards are given the node of their
 * slot and spread over all three primaries; exec, upload then download (same sha256) and
 * the offline queue work there; the per-node setup (functions, notifications, board ACL
 * users) is on every node, replicas included, because a replica may become the primary.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startVirtualFleet, type VirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';
import { startClusterLab, type RedisLab } from '../helpers/redis-cluster-lab.js';
import { redisCommand } from '../../scripts/redis-cluster-lib.mjs';
import type { ApiCommandRequest } from '../../electron/manager/api/contract.js';
import type { FleetStore } from '../../electron/manager/redis/fleet-store.js';
import { sameRules } from '../../electron/manager/redis/acl-sync.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const text = (reply: unknown) => (Buffer.isBuffer(reply) ? reply.toString() : String(reply));

describe('manager on a Redis Cluster', () => {
  let lab: RedisLab;
  let service: Awaited<ReturnType<typeof startManager>>;
  let fleet: VirtualFleet;

  beforeAll(async () => {
    lab = await startClusterLab({ masters: 3, replicas: 1 });
    service = await startManager({ redisUrl: lab.url, redisPort: undefined });
    // 24 boards: random ids land on all three primaries (a miss is (2/3)^24 × 3 ≈ 0.02 %).
    fleet = await startVirtualFleet({ api: service.api, count: 24, prefix: 'cl', board: { reconnectMinMs: 100 } });
    await waitFor(async () => (await service.api.call('status', {})).boards.online === 24, 15_000, 'boards online');
  }, 60_000);
  afterAll(async () => {
    await fleet?.close();
    await service?.close();
    await lab?.stop();
  });

  const run = async (board: string, request: ApiCommandRequest) => {
    const { commands } = await service.api.call('commands.send', { boards: board, request });
    const [done] = await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 15_000 });
    return done!;
  };

  it('gives each board the primary of its slot, and the boards cover every primary', () => {
    const primaries = lab.nodes.filter((node) => node.role === 'primary').map((node) => node.port);
    const used = new Set(fleet.boards.map((board) => Number(board.config.port)));
    expect([...used].sort()).toEqual([...primaries].sort());
  });

  it('loaded the functions, turned on notifications and made the board users on every node, replicas too', async () => {
    const boardUser = `cmb-${fleet.boards[0]!.id}`;
    for (const { port } of lab.nodes) {
      // Loaded on the primaries; a replica gets it by (asynchronous) replication.
      await waitFor(
        async () => ((await redisCommand(port, ['FUNCTION', 'LIST', 'LIBRARYNAME', 'cloudmanager'])) as unknown[]).length === 1,
        5_000,
        `functions on ${port}`,
      );
      const [, flags] = (await redisCommand(port, ['CONFIG', 'GET', 'notify-keyspace-events'])) as unknown[];
      expect(text(flags), `notifications on ${port}`).toMatch(/K/);
      const users = ((await redisCommand(port, ['ACL', 'USERS'])) as unknown[]).map(text);
      expect(users, `ACL users on ${port}`).toContain(boardUser);
    }
  });

  it('runs code on boards of every primary', async () => {
    const byPort = new Map(fleet.boards.map((board) => [Number(board.config.port), String(board.config.name)]));
    for (const name of byPort.values()) {
      const done = await run(name, { op: 'exec', code: 'print(6*7)' });
      expect([name, done.status, done.output]).toEqual([name, 'ok', [{ stream: 'stdout', text: '42\n' }]]);
    }
    // One command to all 24 at once: one result each.
    const { commands } = await service.api.call('commands.send', { boards: 'cl-*', request: { op: 'exec', code: 'print(1)' } });
    const results = await service.api.call('commands.wait', { cids: commands.map((command) => command.cid), timeoutMs: 15_000 });
    expect(results.map((result) => result.status)).toEqual(Array(24).fill('ok'));
    // The budget checks of the boards' state hashes (MEMORY USAGE of each board's key) reached every node.
    expect(service.logs.filter((entry) => entry.level === 'warn').map((entry) => entry.message)).toEqual([]);
  });

  it('uploads a file and downloads it with the same sha256', async () => {
    const data = randomBytes(200 * 1024);
    const name = String(fleet.boards[1]!.config.name);
    expect((await run(name, { op: 'put', path: '/data.bin', dataBase64: data.toString('base64') })).status).toBe('ok');
    const got = await run(name, { op: 'get', path: '/data.bin' });
    expect(got.status).toBe('ok');
    const file = await service.api.call('commands.file', { cid: got.cid });
    expect(sha256(Buffer.from(file.dataBase64, 'base64'))).toBe(sha256(data));
  });

  it('keeps a command for a board that is off and runs it when the board is back', async () => {
    const board = fleet.boards[2]!;
    const name = String(board.config.name);
    await board.stop();
    await waitFor(async () => (await service.api.call('boards.get', { board: name })).online === false, 10_000, 'board offline');
    const { commands } = await service.api.call('commands.send', { boards: name, request: { op: 'exec', code: 'print("later")' } });
    const cid = commands[0]!.cid;
    expect((await service.api.call('commands.get', { cid })).status).toBe('queued');
    board.start();
    const [done] = await service.api.call('commands.wait', { cids: [cid], timeoutMs: 15_000 });
    expect([done!.status, done!.output]).toEqual(['ok', [{ stream: 'stdout', text: 'later\n' }]]);
    expect(board.executed.filter((executed) => executed === cid)).toHaveLength(1);
  });

  it('a second manager on the cluster stands by and serves the same fleet through it: a broadcast, one result per board', async () => {
    const standby = await startManager({ redisUrl: lab.url, redisPort: undefined });
    try {
      expect((await standby.api.call('status', {})).manager).toMatchObject({ role: 'standby' });
      // The same boards, told alike; lastSeen moves with every heartbeat (each second here) between the two calls.
      const told = (boards: Array<{ lastSeen: unknown }>) => boards.map(({ lastSeen: _moving, ...rest }) => rest);
      expect(told(await standby.api.call('boards.list', {}))).toEqual(told(await service.api.call('boards.list', {})));
      const { commands } = await standby.api.call('commands.send', { boards: 'cl-*', request: { op: 'exec', code: 'print("both")' } });
      const cids = commands.map((command) => command.cid);
      const [viaStandby, viaActive] = await Promise.all([
        standby.api.call('commands.wait', { cids, timeoutMs: 30_000 }),
        service.api.call('commands.wait', { cids, timeoutMs: 30_000 }),
      ]);
      expect(viaStandby.map((result) => [result.status, result.output])).toEqual(Array(24).fill(['ok', [{ stream: 'stdout', text: 'both\n' }]]));
      expect(viaStandby).toEqual(viaActive);
      for (const board of fleet.boards) expect(board.executed.filter((cid) => cids.includes(cid))).toHaveLength(1);
    } finally {
      await standby.close();
    }
  });

  it('copies board users to replicas that missed them, and a revocation they missed', async () => {
    const [missed, revoked] = [fleet.boards[3]!, fleet.boards[4]!];
    await service.api.call('boards.revoke', { board: String(revoked.config.name) });
    const replicas = lab.nodes.filter((node) => node.role === 'replica').map((node) => node.port);
    const aclLine = async (port: number, user: string) =>
      ((await redisCommand(port, ['ACL', 'LIST'])) as unknown[]).map(text).find((line) => line.startsWith(`user ${user} `));
    const primaryLine = async (user: string) => aclLine(lab.nodes.find((node) => node.role === 'primary')!.port, user);
    // As if each replica had been down: one board's user gone, the revocation not applied.
    for (const port of replicas) {
      await redisCommand(port, ['ACL', 'DELUSER', `cmb-${missed.id}`]);
      await redisCommand(port, ['ACL', 'SETUSER', `cmb-${revoked.id}`, 'on']);
    }
    // The comparison runs every 30 s; the test runs it now.
    const store = (service.manager as unknown as { store: FleetStore }).store;
    expect(await store.users.sync()).toBe(2 * replicas.length);
    for (const port of replicas) {
      // Equal as rules: each node lists a user's commands in an order of its own.
      expect(sameRules((await aclLine(port, `cmb-${missed.id}`))!)).toBe(sameRules((await primaryLine(`cmb-${missed.id}`))!));
      expect(await aclLine(port, `cmb-${revoked.id}`)).toMatch(/ off /);
    }
    expect(await store.users.sync()).toBe(0);
    // A rotation one node missed: which password is the newer cannot be told; the log says what to do.
    const rotated = fleet.boards[5]!;
    await redisCommand(replicas[0]!, ['ACL', 'SETUSER', `cmb-${rotated.id}`, 'resetpass', '>an-older-password']);
    expect(await store.users.sync()).toBe(0);
    expect(service.logs.map((entry) => entry.message)).toContainEqual(expect.stringMatching(new RegExp(`different passwords for cmb-${rotated.id}.*--rotate`)));
  });
});

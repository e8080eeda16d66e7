/**
 * Several managers on one Redis (docs/ARCHITECTURE.md "Several managers"): one holds the
 * lease and runs the fleet, the others stand by and take over when it stops, dies or is
 * superseded. Real redis-server started here; managers in-process with their own data
 * folders (one as a child `mbm server-start`, to be killed); virtual boards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPlainRedis, type PlainRedis } from '../helpers/plain-redis.js';
import { startManager, waitFor } from '../helpers/lab.js';
import { startVirtualFleet, type VirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { ApiClient, ApiRequestError } from '../../electron/manager/api/client.js';
import { boardKeys, managerKeys } from '../../electron/manager/redis/keys.js';
import { readServiceInfo, dataPaths } from '../../electron/manager/data-dir.js';
import { freePort } from '../helpers/free-port.js';
import { MBM, runMbm } from '../helpers/mbm-cli.js';
import type { Redis } from 'ioredis';
import { createRedisClient, parseRedisUrl } from '../../electron/manager/redis/redis-connection.js';
import { FleetStore } from '../../electron/manager/redis/fleet-store.js';
import { ManagerLease } from '../../electron/manager/redis/manager-lease.js';

type Service = Awaited<ReturnType<typeof startManager>>;

async function admin(redis: PlainRedis): Promise<RespConnection> {
  const connection = await RespConnection.connect({ host: '127.0.0.1', port: redis.port });
  await connection.call('AUTH', 'admin', 'admin-secret');
  return connection;
}

async function refusal(call: Promise<unknown>): Promise<ApiRequestError> {
  const error = await call.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(error).toBeInstanceOf(ApiRequestError);
  return error as ApiRequestError;
}

async function exec(service: Service, board: string, code: string): Promise<string> {
  const { commands } = await service.api.call('commands.send', { boards: board, request: { op: 'exec', code } });
  const [done] = await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 10_000 });
  return done!.output.map((chunk) => chunk.text).join('');
}

describe('several managers on one Redis', () => {
  let redis: PlainRedis;
  let first: Service | undefined;
  let second: Service | undefined;
  let fleet: VirtualFleet | undefined;
  let connection: RespConnection;

  beforeAll(async () => {
    redis = await startPlainRedis();
    connection = await admin(redis);
  });
  afterAll(async () => {
    await fleet?.close();
    await first?.close();
    await second?.close();
    connection?.destroy();
    redis?.kill();
  });

  it('a second manager stands by, says who is active, and leaves the boards to the active one', async () => {
    first = await startManager({ redisUrl: redis.url(), redisPort: undefined, leaseTtlMs: 3_000 });
    const patterns = Number(await connection.call('PUBSUB', 'NUMPAT'));
    second = await startManager({ redisUrl: redis.url(), redisPort: undefined, leaseTtlMs: 3_000 });
    const firstStatus = await first.api.call('status', {});
    const status = await second.api.call('status', {});
    expect(firstStatus.manager).toMatchObject({ role: 'active', epoch: 1 });
    expect(status.manager).toMatchObject({ role: 'standby', active: { id: firstStatus.manager.id, pid: process.pid, apiUrl: first.manager.apiUrl } });
    // Its own computer's USB ports are not the active manager's: refused, naming the active one.
    const refused = await refusal(second.api.call('usb.ports', {}));
    expect(refused.status).toBe(503);
    expect(refused.message).toMatch(new RegExp(`this manager is standing by; the active one is ${os.hostname()} \\(pid ${process.pid}\\) since `));
    const printed = await runMbm(['server-status'], { dataDir: second.dataDir, cwd: second.dataDir });
    expect(printed.stdout).toMatch(
      new RegExp(`Manager standing by; the active one is ${os.hostname()} \\(pid ${process.pid}\\) since .*, API ${first.manager.apiUrl}`),
    );
    expect((await runMbm(['server-status'], { dataDir: first.dataDir, cwd: first.dataDir })).stdout).toMatch(/Manager active \(epoch 1\)/);

    fleet = await startVirtualFleet({ api: first.api, count: 1, prefix: 'lease', board: { reconnectMinMs: 100 } });
    await waitFor(async () => (await first!.api.call('status', {})).boards.online === 1, 10_000, 'board online');
    for (let i = 0; i < 10; i++) expect(await exec(first, 'lease-1', `print(${i} * 7)`)).toBe(`${i * 7}\n`);
    // The standby reads no uplink: no keyspace subscription of its own, nothing in its fleet.
    expect(Number(await connection.call('PUBSUB', 'NUMPAT'))).toBe(patterns);
    expect((await first.api.call('boards.history', { board: 'lease-1', count: 50 })).length).toBe(10);
    // Its fleet is the active one's, asked through Redis.
    expect(await second.api.call('status', {})).toMatchObject({ manager: { role: 'standby' }, boards: { total: 1, online: 1 }, commandsActive: 0 });
    expect(await second.api.call('boards.list', {})).toEqual(await first.api.call('boards.list', {}));
  });

  it('when the active one stops, the standby takes over within a retry and runs what was queued meanwhile', async () => {
    const board = fleet!.byName('lease-1')!;
    await board.stop();
    await waitFor(async () => (await first!.api.call('status', {})).boards.online === 0, 10_000, 'board offline');
    const { commands } = await first!.api.call('commands.send', { boards: 'lease-1', request: { op: 'exec', code: 'print("queued")' } });
    const stoppedAt = performance.now();
    await first!.close();
    first = undefined;
    const active = await waitFor(async () => {
      const status = await second!.api.call('status', {});
      return status.manager.role === 'active' ? status : undefined;
    });
    const takeoverMs = performance.now() - stoppedAt;
    console.log(`graceful stop → standby active: ${Math.round(takeoverMs)} ms (retry every 1,000 ms)`);
    expect(active.manager.epoch).toBe(2);
    expect(active.boards.total).toBe(1);
    expect(second!.logs.some((line) => /^active \(epoch 2\), took over from /.test(line.message))).toBe(true);
    board.start();
    const [done] = await second!.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 10_000 });
    expect(done).toMatchObject({ status: 'ok', output: [{ stream: 'stdout', text: 'queued\n' }] });
    expect(await exec(second!, 'lease-1', 'print(6 * 7)')).toBe('42\n');
  });

  it('a manager whose epoch was superseded is refused (STALE), deletes nothing and stands by', async () => {
    const service = second!;
    const id = (await service.api.call('boards.get', { board: 'lease-1' })).id;
    const keys = boardKeys(id);
    const before = Number(await connection.call('XLEN', keys.up));
    // What another manager's takeover leaves (it took epoch 99 and acted on the board), and a heartbeat:
    // the uplink read the heartbeat prompts is refused before anything is read or deleted.
    await connection.call('MULTI');
    await connection.call('SET', managerKeys.epoch, '99');
    await connection.call('SET', keys.fence, '99');
    await connection.call('XADD', keys.up, '*', 'k', 'hb');
    await connection.call('EXEC');
    await waitFor(() =>
      service.logs.some((line) => /^standing by: another manager took over \(STALE manager epoch 2 was superseded by epoch 99\)/.test(line.message)),
    );
    // It waits one lease TTL (3 s here) before trying again: meanwhile it is a standby and the entry is still there.
    expect((await service.api.call('status', {})).manager.role).toBe('standby');
    expect((await refusal(service.api.call('boards.list', {}))).status).toBe(503);
    expect(Number(await connection.call('XLEN', keys.up))).toBeGreaterThanOrEqual(before + 1);
    // Nobody else holds the lease: it takes over again, with a new epoch above the fence.
    await waitFor(async () => (await service.api.call('status', {})).manager.role === 'active', 10_000, 'active again');
    expect((await service.api.call('status', {})).manager.epoch).toBe(100);
    expect(await exec(service, 'lease-1', 'print(1 + 1)')).toBe('2\n');
    expect(Number(await connection.call('GET', keys.fence))).toBe(100);
  });
});

describe('a killed active manager', () => {
  /** Undone after the tests, last first. */
  const cleanups: Array<() => unknown> = [];

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  async function setUp(): Promise<{ redis: PlainRedis; dataDir: string }> {
    const redis = await startPlainRedis();
    cleanups.push(() => redis.kill());
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-lease-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    return { redis, dataDir };
  }

  /** `mbm server-start --foreground` on its own data folder (a manager on another computer), active once it answers. */
  async function startChild(redisUrl: string, folder: string): Promise<ChildProcess> {
    const child = spawn(
      process.execPath,
      [MBM, 'server-start', '--foreground', '--redis-url', redisUrl, '--lease-ttl', '2', '--api-port', String(await freePort()), '--data-dir', folder],
      { stdio: 'ignore', env: { ...process.env, CLOUDMANAGER_DATA_DIR: '' } },
    );
    cleanups.push(() => child.kill('SIGKILL'));
    const info = await waitFor(() => readServiceInfo(dataPaths(folder)), 20_000, 'child service up');
    const api = new ApiClient(info.apiUrl, (await readFile(dataPaths(folder).apiToken, 'utf8')).trim());
    expect((await api.call('status', {})).manager).toMatchObject({ role: 'active', epoch: 1 });
    return child;
  }

  it('restarted on its data folder, goes on at once with its lease', async () => {
    const { redis, dataDir } = await setUp();
    const child = await startChild(redis.url(), dataDir);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const restarted = await startManager({ dataDir, redisUrl: redis.url(), redisPort: undefined, leaseTtlMs: 2_000 });
    cleanups.push(() => restarted.close());
    expect((await restarted.api.call('status', {})).manager).toMatchObject({ role: 'active', epoch: 1 });
  });

  it('is taken over after the lease TTL', async () => {
    const { redis, dataDir } = await setUp();
    const child = await startChild(redis.url(), dataDir);
    const standby = await startManager({ redisUrl: redis.url(), redisPort: undefined, leaseTtlMs: 2_000 });
    cleanups.push(() => standby.close());
    expect((await standby.api.call('status', {})).manager).toMatchObject({ role: 'standby', active: { pid: child.pid } });
    const killedAt = performance.now();
    child.kill('SIGKILL');
    await waitFor(async () => (await standby.api.call('status', {})).manager.role === 'active', 10_000, 'standby active');
    const takeoverMs = performance.now() - killedAt;
    console.log(`SIGKILL of the active manager → standby active: ${Math.round(takeoverMs)} ms (TTL 2,000 ms, retry every 666 ms)`);
    expect((await standby.api.call('status', {})).manager.epoch).toBe(2);
  });

  it("a standby's request waiting on the killed manager is ended when the standby takes over, and what it had asked for is there", async () => {
    const { redis, dataDir } = await setUp();
    const child = await startChild(redis.url(), dataDir);
    const standby = await startManager({ redisUrl: redis.url(), redisPort: undefined, leaseTtlMs: 2_000 });
    cleanups.push(() => standby.close());
    // Through the standby: a board enrolled (never started) and a command for it, queued.
    await standby.api.call('boards.enroll', { name: 'far-1' });
    const { commands } = await standby.api.call('commands.send', { boards: 'far-1', request: { op: 'exec', code: 'print(1)' } });
    expect(commands[0]).toMatchObject({ status: 'queued' });
    const waiting = standby.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 120_000 }).catch((error: unknown) => error);
    expect((await standby.api.call('status', {})).manager.active).toMatchObject({ pid: child.pid });
    const events: string[] = [];
    const subscription = await standby.api.events((event) => events.push(event.type));
    cleanups.push(() => subscription.close());
    child.kill('SIGKILL');
    const ended = await waiting;
    expect(ended).toBeInstanceOf(ApiRequestError);
    expect((ended as ApiRequestError).status).toBe(503);
    expect((ended as ApiRequestError).message).toMatch(/changed role while the active one handled the request: check before sending it again/);
    await waitFor(async () => (await standby.api.call('status', {})).manager.role === 'active', 10_000, 'standby active');
    expect(await standby.api.call('commands.get', { cid: commands[0]!.cid })).toMatchObject({ status: 'queued', board: 'far-1' });
    // Its clients may have missed the dead manager's last events: told to load everything again.
    await waitFor(() => events.includes('resync'), 10_000, 'a resync event');
  });
});

describe('an active manager cut off from Redis', () => {
  let redis: PlainRedis;
  let service: Service | undefined;
  let pid = 0;

  afterAll(async () => {
    if (pid) process.kill(pid, 'SIGCONT');
    await service?.close();
    redis?.kill();
  });

  it('stops acting once it could not renew for a TTL, and goes on when Redis is back and nobody took over', async () => {
    redis = await startPlainRedis();
    const probe = await admin(redis);
    pid = Number(/process_id:(\d+)/.exec(String(await probe.call('INFO', 'server')))![1]);
    probe.destroy();
    service = await startManager({ redisUrl: redis.url(), redisPort: undefined, leaseTtlMs: 1_000 });
    const logged = (pattern: RegExp) => service!.logs.filter((line) => pattern.test(line.message)).length;
    expect(logged(/^active \(epoch 1\)/)).toBe(1);
    process.kill(pid, 'SIGSTOP');
    await waitFor(() => logged(/^standing by: could not renew the manager lease for 1000 ms/) === 1, 10_000, 'standing by');
    process.kill(pid, 'SIGCONT');
    await waitFor(() => logged(/^active \(epoch 1\)/) === 2, 10_000, 'active again');
    expect((await service.api.call('status', {})).manager).toMatchObject({ role: 'active', epoch: 1 });
  });
});

describe('the manager lease', () => {
  let redis: PlainRedis;
  let client: Redis;

  beforeAll(async () => {
    redis = await startPlainRedis();
    client = createRedisClient(parseRedisUrl(redis.url()), 'lease-test');
  });
  afterAll(() => {
    client?.disconnect();
    redis?.kill();
  });

  it('gives one holder at a time a new epoch, keeps it over an expiry nobody used, and releases only its own', async () => {
    const store = new FleetStore(client);
    const lease = (id: string) => new ManagerLease(client, { id, ttlMs: 60_000, apiUrl: () => `http://${id}`, loadFunctions: () => store.loadFunctions() });
    const a = lease('manager-a');
    const b = lease('manager-b');
    expect(await a.acquire()).toMatchObject({ held: true, epoch: 1, holder: { id: 'manager-a', apiUrl: 'http://manager-a' } });
    expect(await a.acquire()).toMatchObject({ held: true, epoch: 1 });
    const refused = await b.acquire();
    expect(refused).toMatchObject({ held: false, holder: { id: 'manager-a', epoch: 1, pid: process.pid } });
    expect(refused.held === false && refused.ttlMs).toBeGreaterThan(50_000);
    expect(await b.release()).toBe(false);
    // Expired (a laptop asleep) while nobody took it: the same epoch, the boards' fences stay valid.
    await client.del(managerKeys.lease);
    expect(await a.acquire()).toMatchObject({ held: true, epoch: 1 });
    expect(await a.release()).toBe(true);
    expect(await b.acquire()).toMatchObject({ held: true, epoch: 2 });
    // Taken by another meanwhile: a comes back with a newer epoch than b's, never its old one.
    await client.del(managerKeys.lease);
    expect(await a.acquire()).toMatchObject({ held: true, epoch: 3 });
    await store.close();
  });
});

/**
 * The connection guard lists Redis's clients (CLIENT LIST, which stalls Redis for tens of ms
 * at 10,000 connections) only when that can find something: a steady set of extra, harmless
 * connections (a tool, a board's lingering one) costs no listing per tick, while a new
 * connection that never logs in is still closed once it has waited `unauthenticatedIdleMs`.
 * Real redis-server; the guard ticks every 50 ms so that many ticks pass quickly.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi, type MockInstance } from 'vitest';
import { Redis } from 'ioredis';
import { ConnectionGuard } from '../../electron/manager/redis/connection-guard.js';
import { startPlainRedis, type PlainRedis } from '../helpers/plain-redis.js';
import { waitFor } from '../helpers/lab.js';

const IDLE_MS = 1_000;

describe('connection guard listing', () => {
  let server: PlainRedis;
  let admin: Redis;
  let guard: ConnectionGuard;
  let guardCalls: MockInstance;
  const tools: Redis[] = [];

  /** How often Redis ran a command since it started (INFO commandstats). */
  const calls = async (command: string) =>
    Number(new RegExp(`cmdstat_${command.replace('|', '\\|')}:calls=(\\d+)`).exec(await admin.info('commandstats'))?.[1] ?? 0);
  /** The guard's looks so far (each reads INFO once). */
  const looks = () => guardCalls.mock.calls.filter((args) => args[0] === 'INFO').length;
  /** Waits for the guard to look `count` more times. */
  const ticks = async (count: number) => {
    const start = looks();
    await waitFor(() => looks() >= start + count, 20_000, `${count} guard ticks`);
  };

  beforeAll(async () => {
    server = await startPlainRedis();
    admin = new Redis(server.url());
    // Two authenticated connections the guard cannot account for: a tool, say.
    for (let index = 0; index < 2; index++) tools.push(new Redis(server.url()));
    await Promise.all(tools.map((tool) => tool.ping()));
    const guardRedis = new Redis(server.url());
    guardCalls = vi.spyOn(guardRedis, 'call');
    guard = new ConnectionGuard({
      redis: guardRedis,
      log: () => {},
      // No boards: the guard expects only its service's connections (it counts 3 of its own).
      fleet: () => ({ total: 0, online: 0 }),
      limits: { minClients: 1000, perBoard: 4, headroom: 16, unauthenticatedIdleMs: IDLE_MS },
      intervalMs: 50,
    });
    await guard.start();
  });
  afterAll(async () => {
    await guard?.stop();
    for (const tool of tools) tool.disconnect();
    admin?.disconnect();
    server?.kill();
  });

  it('does not list the clients again while the extra connections stay the same', async () => {
    await ticks(3);
    const listed = await calls('client|list');
    // 40 ticks span 2 s: the guard used to list every half IDLE_MS, 4 times here.
    await ticks(40);
    expect((await calls('client|list')) - listed).toBe(0);
  });

  it('still closes a new connection that never logs in once it has waited', async () => {
    const idle = net.connect({ host: '127.0.0.1', port: server.port });
    idle.on('error', () => {});
    const opened = Date.now();
    let closedAfter = 0;
    idle.once('close', () => (closedAfter = Date.now() - opened));
    await waitFor(() => closedAfter, 10_000, 'the idle connection closed');
    expect(closedAfter).toBeGreaterThanOrEqual(IDLE_MS);
    // Once it was gone, the listing stopped again.
    const listed = await calls('client|list');
    await ticks(40);
    expect((await calls('client|list')) - listed).toBe(0);
  });
});

/**
 * The embedded redis-server supervisor against the real /usr/bin/redis-server: start,
 * crash recovery with the AOF, clean stop, port conflicts, protocol-error reporting and
 * finding the binary.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, mkdir, rm, stat, symlink, writeFile, readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  RedisBinaryNotFoundError,
  RedisConfiguredBinaryError,
  RedisVersionUnsupportedError,
  findRedisServerBinary,
  redisServerVersion,
} from '../../electron/manager/redis/redis-binary.js';
import {
  RedisConfigError,
  RedisPortInUseError,
  RedisServerSupervisor,
  RedisStartError,
  buildRedisConfig,
  parseProtocolErrorLine,
  redisSpawnCommand,
  type RedisProtocolErrorEvent,
  type RedisServerSupervisorOptions,
} from '../../electron/manager/redis/redis-server-supervisor.js';
import { freePort } from '../helpers/free-port.js';

const REDIS = '/usr/bin/redis-server';
const OPEN_ACL = 'user default on nopass ~* &* +@all\n';

/** True while `pid` runs. A zombie counts as gone: an orphan is reaped by whatever PID 1
 * the machine has, which in containers can take seconds. */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state …"; comm may hold spaces, so split after ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function client(port: number): Redis {
  // No retries: a test must see a dead server, not a client hiding it.
  return new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
}

let dir: string;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeEach(async () => {
  // A space in the path checks that redis.conf quoting works.
  dir = await mkdtemp(path.join(os.tmpdir(), 'redis sup-'));
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(dir, { recursive: true, force: true });
});

async function startSupervisor(extra: Partial<RedisServerSupervisorOptions> = {}) {
  const aclFile = path.join(dir, 'users.acl');
  await writeFile(aclFile, OPEN_ACL, { mode: 0o600 });
  const supervisor = new RedisServerSupervisor({
    binaryPath: REDIS,
    port: await freePort(),
    dataDir: path.join(dir, 'data dir'),
    aclFile,
    ...extra,
  });
  cleanups.push(() => supervisor.stop());
  const info = await supervisor.start();
  return { supervisor, info };
}

describe('RedisServerSupervisor', () => {
  it('starts redis-server from a 0600 config in a path with spaces and answers PING', async () => {
    const { supervisor, info } = await startSupervisor();
    expect(info.version).toBe('7.0.15');
    expect(info.pid).toBe(supervisor.pid);
    expect(supervisor.running).toBe(true);
    const conf = path.join(dir, 'data dir', 'redis.conf');
    expect((await stat(conf)).mode & 0o777).toBe(0o600);
    expect(await readFile(conf, 'utf8')).toContain(`dir "${path.join(dir, 'data dir')}"`);

    const redis = client(info.port);
    cleanups.push(() => redis.disconnect());
    await redis.connect();
    expect(await redis.ping()).toBe('PONG');
    // The protections in the generated config are live.
    expect(await redis.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    expect(await redis.config('GET', 'proto-max-bulk-len')).toEqual(['proto-max-bulk-len', String(1024 * 1024)]);
  });

  it('restarts after kill -9 on the same port and keeps data thanks to the AOF', async () => {
    const { supervisor, info } = await startSupervisor();
    const events: string[] = [];
    supervisor.on('exited', (e) => events.push(`exited:${e.signal}`));
    supervisor.on('restarting', (e) => events.push(`restarting:${e.attempt}`));
    supervisor.on('started', (e) => events.push(`started:${e.restart}`));

    const before = client(info.port);
    await before.connect();
    await before.set('survivor', 'still here');
    before.disconnect();

    const restarted = once(supervisor, 'started', { signal: AbortSignal.timeout(20_000) });
    process.kill(info.pid, 'SIGKILL');
    const [started] = (await restarted) as [{ pid: number; port: number }];
    expect(started.pid).not.toBe(info.pid);
    expect(started.port).toBe(info.port);
    expect(events).toEqual(['exited:SIGKILL', 'restarting:1', 'started:true']);

    const after = client(info.port);
    cleanups.push(() => after.disconnect());
    await after.connect();
    expect(await after.get('survivor')).toBe('still here');
  });

  it('stop() ends the process, is idempotent and no restart follows', async () => {
    const { supervisor, info } = await startSupervisor();
    const late: string[] = [];
    supervisor.on('restarting', () => late.push('restarting'));
    supervisor.on('started', () => late.push('started'));
    const stopped = once(supervisor, 'stopped');
    await Promise.all([supervisor.stop(), supervisor.stop()]);
    const [exit] = (await stopped) as [{ code: number | null }];
    expect(exit.code).toBe(0); // SIGTERM → clean shutdown, AOF flushed
    expect(pidAlive(info.pid)).toBe(false);
    expect(supervisor.running).toBe(false);
    expect(supervisor.pid).toBeUndefined();
    await supervisor.stop();
    await new Promise((r) => setTimeout(r, 400)); // longer than the first backoff step
    expect(late).toEqual([]);
  });

  it('reports a taken port as RedisPortInUseError', async () => {
    const port = await freePort();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((r) => blocker.close(r)));
    const supervisor = new RedisServerSupervisor({ binaryPath: REDIS, port, dataDir: dir });
    cleanups.push(() => supervisor.stop());
    const error = await supervisor.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RedisPortInUseError);
    expect((error as RedisPortInUseError).port).toBe(port);
    expect(supervisor.running).toBe(false);
  });

  it('retries a failed restart with growing backoff and recovers', async () => {
    const { supervisor, info } = await startSupervisor({ restartBackoff: { initialMs: 100, maxMs: 1_000 } });
    const events: string[] = [];
    supervisor.on('restarting', (e) => events.push(`restarting:${e.attempt}:${e.delayMs}`));
    supervisor.on('restartFailed', (e) => events.push(`failed:${e.attempt}:${e.error.name}`));
    supervisor.on('started', (e) => events.push(`started:${e.restart}`));
    const exited = once(supervisor, 'exited');
    process.kill(info.pid, 'SIGKILL');
    await exited;
    // Someone else takes the port while redis is down: the first restart must fail.
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(info.port, '127.0.0.1', resolve));
    await once(supervisor, 'restartFailed', { signal: AbortSignal.timeout(15_000) });
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    await once(supervisor, 'started', { signal: AbortSignal.timeout(15_000) });
    expect(events).toEqual(['restarting:1:100', 'failed:1:RedisPortInUseError', 'restarting:2:200', 'started:true']);
    expect(supervisor.running).toBe(true);
  });

  it('rejects with RedisStartError and the log tail when redis-server does not come up', async () => {
    // A stand-in binary: a valid version, then it either hangs or fails with a message.
    const fake = path.join(dir, 'fake-redis');
    await writeFile(
      fake,
      '#!/bin/sh\n[ "$1" = --version ] && { echo "Redis server v=7.0.15"; exit 0; }\n' +
        'echo "line one"; echo "Fatal: nope" >&2; [ -n "$HANG" ] && exec sleep 30; exit 3\n',
    );
    await chmod(fake, 0o755);
    const failing = new RedisServerSupervisor({ binaryPath: fake, port: await freePort(), dataDir: dir });
    const logs: string[] = [];
    failing.on('log', (e) => logs.push(`${e.stream}:${e.line}`));
    const error = await failing.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisStartError);
    expect((error as RedisStartError).reason).toBe('exited');
    expect((error as RedisStartError).logTail).toEqual(expect.arrayContaining(['line one', 'Fatal: nope']));
    expect(logs).toEqual(expect.arrayContaining(['stdout:line one', 'stderr:Fatal: nope']));

    process.env['HANG'] = '1';
    cleanups.push(() => delete process.env['HANG']);
    const hanging = new RedisServerSupervisor({ binaryPath: fake, port: await freePort(), dataDir: dir, readyTimeoutMs: 300 });
    const timeout = await hanging.start().catch((e: unknown) => e);
    expect((timeout as RedisStartError).reason).toBe('timeout');
    expect(hanging.running).toBe(false);
  });

  it('emits protocolError with reason, user and address for garbage on the port', async () => {
    const { supervisor, info } = await startSupervisor();
    const seen = once(supervisor, 'protocolError', { signal: AbortSignal.timeout(15_000) });
    const socket = net.connect(info.port, '127.0.0.1');
    cleanups.push(() => socket.destroy());
    await once(socket, 'connect');
    socket.write('*1\r\n$99999999999\r\n');
    const [event] = (await seen) as [RedisProtocolErrorEvent];
    expect(event.reason).toBe('invalid bulk length');
    expect(event.user).toBe('default');
    expect(event.addr).toBe(`127.0.0.1:${socket.localPort}`);
    expect(event.line).toContain('Protocol error (invalid bulk length) from client: id=');
  });

  it.runIf(process.platform === 'linux')('redis-server gets SIGTERM when the spawning process dies (setpriv --pdeathsig)', async () => {
    const port = await freePort();
    const conf = path.join(dir, 'redis.conf');
    await writeFile(conf, buildRedisConfig({ binaryPath: REDIS, port, dataDir: dir }));
    const { command, args } = await redisSpawnCommand(REDIS, conf);
    expect(path.basename(command)).toBe('setpriv');
    // A stand-in for the manager: spawns redis the way the supervisor does, reports the pid.
    const parent = spawn(
      process.execPath,
      [
        '-e',
        `
      const c = require('node:child_process').spawn(process.argv[1], JSON.parse(process.argv[2]), { stdio: 'ignore' });
      console.log(c.pid); setInterval(() => {}, 1000);`,
        command,
        JSON.stringify(args),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const [chunk] = (await once(parent.stdout, 'data')) as [Buffer];
    const redisPid = Number(chunk.toString().trim());
    cleanups.push(() => {
      if (pidAlive(redisPid)) process.kill(redisPid, 'SIGKILL');
    });
    await waitUntil(() => pidAlive(redisPid), 10_000);
    parent.kill('SIGKILL');
    await waitUntil(() => !pidAlive(redisPid), 15_000);
  });

  it.runIf(process.platform === 'linux')('setBind moves the running server to other addresses without a restart, and restarts keep them', async () => {
    // 127.0.0.0/8 is all on the loopback interface on Linux: a second address without a LAN.
    const { supervisor, info } = await startSupervisor();
    /** '+PONG' from a server listening on host, or the connect error code. */
    const pingAt = async (host: string) => {
      const socket = net.connect({ host, port: info.port });
      try {
        await once(socket, 'connect', { signal: AbortSignal.timeout(10_000) });
        socket.write('PING\r\n');
        const [reply] = (await once(socket, 'data', { signal: AbortSignal.timeout(10_000) })) as [Buffer];
        return reply.toString().trim();
      } catch (error) {
        return (error as NodeJS.ErrnoException).code;
      } finally {
        socket.destroy();
      }
    };
    expect(await pingAt('127.0.0.2')).toBe('ECONNREFUSED');
    await supervisor.setBind(['127.0.0.1', '127.0.0.2', '127.0.0.1']);
    expect(supervisor.bind).toEqual(['127.0.0.1', '127.0.0.2']);
    expect(supervisor.pid).toBe(info.pid);
    expect(await pingAt('127.0.0.2')).toBe('+PONG');

    await supervisor.setBind(['127.0.0.2']);
    expect(await pingAt('127.0.0.1')).toBe('ECONNREFUSED');
    const restarted = once(supervisor, 'started', { signal: AbortSignal.timeout(15_000) });
    process.kill(info.pid, 'SIGKILL');
    await restarted;
    expect(await pingAt('127.0.0.2')).toBe('+PONG');
    expect(await pingAt('127.0.0.1')).toBe('ECONNREFUSED');
    expect(await readFile(path.join(dir, 'data dir', 'redis.conf'), 'utf8')).toContain('bind "127.0.0.2"\n');

    // Malformed lists never reach the server; the binding stays.
    await expect(supervisor.setBind([])).rejects.toBeInstanceOf(RedisConfigError);
    await expect(supervisor.setBind(['127.0.0.1 0.0.0.0'])).rejects.toBeInstanceOf(RedisConfigError);
    expect(supervisor.bind).toEqual(['127.0.0.2']);
    expect(await pingAt('127.0.0.2')).toBe('+PONG');
    // The supervisor reaches its server on whatever loopback address it listens on.
    await supervisor.setBind(['127.0.0.1']);
    expect(await pingAt('127.0.0.1')).toBe('+PONG');
    expect(await pingAt('127.0.0.2')).toBe('ECONNREFUSED');
  });

  it('setBind before start() only changes what start() listens on', async () => {
    const supervisor = new RedisServerSupervisor({ binaryPath: REDIS, port: await freePort(), dataDir: path.join(dir, 'data dir') });
    cleanups.push(() => supervisor.stop());
    // '-' marks an optional address (redis skips it where there is no IPv6).
    await supervisor.setBind(['127.0.0.1', '-::1']);
    await supervisor.start();
    expect(await readFile(path.join(dir, 'data dir', 'redis.conf'), 'utf8')).toContain('bind "127.0.0.1" "-::1"\n');
  });

  it('rejects directives the supervisor manages', () => {
    expect(() => buildRedisConfig({ binaryPath: REDIS, port: 1, dataDir: dir, extraConfig: { daemonize: 'yes' } })).toThrow(RedisConfigError);
    expect(() => buildRedisConfig({ binaryPath: REDIS, port: 1, dataDir: dir, extraConfig: { 'a\nb': 'x' } })).toThrow(RedisConfigError);
    const conf = buildRedisConfig({ binaryPath: REDIS, port: 1, dataDir: dir, extraConfig: { 'maxmemory-policy': 'noeviction"\nport 2' } });
    expect(conf).toContain('maxmemory-policy "noeviction\\"\\x0aport 2"');
  });

  it('parses the protocol-error line redis 7.0 prints', () => {
    const line =
      '3812:M 01 Dec 2026 04:49:56.257 - Protocol error (expected $ but got something else) from client: id=5 addr=127.0.0.1:56260 ' +
      'laddr=127.0.0.1:16399 fd=9 name= age=0 idle=0 flags=N db=0 cmd=NULL user=board-7 redir=-1 resp=2. ' +
      "Query buffer during protocol error: ':5.. (x) from client: '";
    expect(parseProtocolErrorLine(line)).toEqual({ reason: 'expected $ but got something else', user: 'board-7', addr: '127.0.0.1:56260' });
    expect(parseProtocolErrorLine('3812:M 01 Dec 2026 04:49:56.257 * Ready to accept connections')).toBeUndefined();
  });
});

describe('findRedisServerBinary', () => {
  it('finds /usr/bin/redis-server on PATH', async () => {
    const found = await findRedisServerBinary({ packageRoot: dir, env: { PATH: `${path.join(dir, 'nothing')}:/usr/bin` } });
    expect(found).toEqual({ path: REDIS, source: 'path' });
    expect(await redisServerVersion(found.path)).toBe('7.0.15');
  });

  it('takes valkey-server on PATH when there is no redis-server, and redis-server when there are both', async () => {
    const bin = path.join(dir, 'valkey-bin');
    await mkdir(bin, { recursive: true });
    const valkey = path.join(bin, 'valkey-server');
    await writeFile(valkey, '#!/bin/sh\necho "Valkey server v=8.0.1 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1"\n');
    await chmod(valkey, 0o755);
    const found = await findRedisServerBinary({ packageRoot: dir, env: { PATH: bin } });
    expect(found).toEqual({ path: valkey, source: 'path' });
    expect(await redisServerVersion(found.path)).toBe('8.0.1');
    expect(await findRedisServerBinary({ packageRoot: dir, env: { PATH: `${bin}:/usr/bin` } })).toEqual({ path: REDIS, source: 'path' });
  });

  it('prefers a bundled binary, and a configured one over everything', async () => {
    const bundledDir = path.join(dir, 'build', 'redis', `${process.platform}-${process.arch}`);
    await mkdir(bundledDir, { recursive: true });
    // A symlink keeps argv[0] "redis-server" (the Debian binary picks its role from argv[0]).
    await symlink(REDIS, path.join(bundledDir, 'redis-server'));
    const env = { PATH: '/usr/bin' };
    expect(await findRedisServerBinary({ packageRoot: dir, env })).toEqual({ path: path.join(bundledDir, 'redis-server'), source: 'bundled' });
    expect(await findRedisServerBinary({ packageRoot: dir, env, configuredPath: REDIS })).toEqual({ path: REDIS, source: 'configured' });
  });

  it('names a missing configured binary in the error', async () => {
    const missing = path.join(dir, 'no such', 'redis-server');
    const error = await findRedisServerBinary({ packageRoot: dir, configuredPath: missing }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisConfiguredBinaryError);
    expect((error as Error).message).toContain(missing);
    expect((error as Error).message).toContain('does not exist');
  });

  it('falls back to a redis-memory-server system binary, then explains how to install Redis', async () => {
    const emptyPath = { PATH: path.join(dir, 'empty') };
    expect(await findRedisServerBinary({ packageRoot: dir, env: { ...emptyPath, REDISMS_SYSTEM_BINARY: REDIS } })).toEqual({
      path: REDIS,
      source: 'redis-memory-server',
    });
    const error = await findRedisServerBinary({ packageRoot: dir, env: { ...emptyPath, REDISMS_DOWNLOAD_DIR: path.join(dir, 'dl') } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisBinaryNotFoundError);
    expect((error as Error).message).toContain('sudo apt-get install redis-server');
    expect((error as Error).message).toContain('--redis-binary PATH');
  });

  it('refuses Redis older than 7.0', async () => {
    const fake = path.join(dir, 'redis-server');
    await writeFile(fake, '#!/bin/sh\necho "Redis server v=6.2.14 sha=00000000:0 malloc=libc bits=64 build=1"\n');
    await chmod(fake, 0o755);
    await expect(redisServerVersion(fake)).rejects.toBeInstanceOf(RedisVersionUnsupportedError);
  });
});

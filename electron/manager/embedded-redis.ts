/**
 * Starting the embedded redis-server: its ACL file written before it starts (the default
 * user off from the first second, the guard's password new at every start), `maxclients`
 * sized from the board users that file already names, and the supervisor's events turned
 * into log lines (a malformed-data refusal at most once per source, rate-limited); and the
 * two things only the embedded server has, made as the guard's user: the spare connections
 * for the service's own clients and the connection guard.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { findRedisServerBinary } from './redis/redis-binary.js';
import { RedisServerSupervisor } from './redis/redis-server-supervisor.js';
import { adminConnectHost } from './redis/redis-admin.js';
import type { RedisEndpoint } from './redis/redis-connection.js';
import { embeddedAclFile, GUARD_USER, MANAGER_USER } from './redis/acl.js';
import {
  boardUsersInAclFile,
  connectionGuardFor,
  DEFAULT_CONNECTION_LIMITS,
  wantedMaxClients,
  type ConnectionGuard,
  type ConnectionLimits,
} from './redis/connection-guard.js';
import { SlotReserve } from './redis/slot-reserve.js';
import { readOrCreateSecret, writeFileAtomic, type DataPaths } from './data-dir.js';
import { LogRateLimiter, type Logger } from './log.js';
import { packageRoot } from './package-info.js';

export interface EmbeddedRedisOptions {
  paths: DataPaths;
  bind: string[];
  port: number;
  redisBinary?: string;
  connectionLimits?: Partial<ConnectionLimits>;
  log: Logger;
  /** How a board user is named in log lines (`board kitchen (cmb-…)`). */
  boardLabel: (boardId: string) => string;
  /** True once the service is stopping: an exit then is expected. */
  stopping: () => boolean;
  /** Called at each restart of the server after a crash. */
  restarted: () => void;
}

export interface EmbeddedRedis {
  supervisor: RedisServerSupervisor;
  /** How the manager connects (its own user). */
  endpoint: RedisEndpoint;
  /** The guard's password, kept in memory only. */
  guardPassword: string;
  /** Board users in the ACL file at start: the fleet's size before the fleet is loaded. */
  aclBoards: number;
}

export async function startEmbeddedRedisServer(options: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
  const { paths, bind, port, log } = options;
  const password = await readOrCreateSecret(paths.managerPassword);
  let existing = '';
  try {
    existing = await readFile(paths.aclFile, 'utf8');
  } catch {
    // first start
  }
  const guardPassword = randomBytes(24).toString('base64url');
  await writeFileAtomic(paths.aclFile, embeddedAclFile(existing, password, guardPassword));
  const aclBoards = boardUsersInAclFile(existing);
  const binary = await findRedisServerBinary({ configuredPath: options.redisBinary, packageRoot: await packageRoot() });
  const supervisor = new RedisServerSupervisor({
    binaryPath: binary.path,
    port,
    bind,
    dataDir: paths.redisDir,
    aclFile: paths.aclFile,
    auth: { username: MANAGER_USER, password },
    maxClients: wantedMaxClients(aclBoards, { ...DEFAULT_CONNECTION_LIMITS, ...options.connectionLimits }),
    // K t h: uplink streams wake the reader, state hash writes are checked against the board's budget.
    extraConfig: { 'notify-keyspace-events': 'Kth', 'tcp-backlog': '4096' },
  });
  const protocolErrorLog = new LogRateLimiter();
  supervisor.on('log', ({ line }) => log('debug', `redis: ${line}`));
  supervisor.on('protocolError', ({ reason, user, addr }) => {
    const who = user?.startsWith('cmb-') ? options.boardLabel(user.slice(4)) : `user ${user ?? '?'}`;
    if (protocolErrorLog.allow(user ?? addr ?? '?') === 'log') {
      log('warn', `Redis refused malformed data from ${who} at ${addr ?? '?'}: ${reason}`);
    }
  });
  supervisor.on('exited', ({ code, signal }) => {
    if (!options.stopping()) log('error', `redis-server exited unexpectedly (${signal ?? `code ${code}`}); restarting`);
  });
  supervisor.on('started', ({ pid, restart }) => {
    if (restart) {
      options.restarted();
      log('info', `redis-server restarted (pid ${pid})`);
    }
  });
  supervisor.on('restartFailed', ({ attempt, error }) => log('error', `redis-server restart ${attempt} failed: ${error.message}`));
  const started = await supervisor.start();
  log('info', `redis-server ${started.version} (${binary.source} ${binary.path}) pid ${started.pid} on ${bind.join(',')}:${port}`);
  return { supervisor, endpoint: { host: adminConnectHost(bind), port, username: MANAGER_USER, password }, guardPassword, aclBoards };
}

/** Spare connections for the service's own clients (slot-reserve.ts), as the guard's user; opening from now on. */
export function startSlotReserve(endpoint: RedisEndpoint, guardPassword: string, log: Logger): SlotReserve {
  const reserve = new SlotReserve({ host: endpoint.host, port: endpoint.port, username: GUARD_USER, password: guardPassword, log });
  reserve.start();
  return reserve;
}

/** The embedded server's connection guard, as its own user (not started: the caller holds it first, to stop it whatever happens). */
export function embeddedConnectionGuard(
  endpoint: RedisEndpoint,
  guardPassword: string,
  options: Omit<Parameters<typeof connectionGuardFor>[1], 'redis'>,
): ConnectionGuard {
  return connectionGuardFor({ ...endpoint, username: GUARD_USER, password: guardPassword }, options);
}

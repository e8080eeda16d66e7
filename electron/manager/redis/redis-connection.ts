/**
 * Creating ioredis clients for the manager (this folder owns ioredis). The manager's
 * connections queue commands while Redis is down or restarting instead of failing them,
 * because the supervisor brings the embedded server back within a second or two.
 */
import { Redis, type RedisOptions } from 'ioredis';

export interface RedisEndpoint {
  host: string;
  port: number;
  username?: string;
  password?: string;
  tls?: boolean;
}

export class RedisUrlError extends Error {
  override name = 'RedisUrlError';
}

/** `redis://[user[:password]@]host[:port]` or `rediss://…` (TLS). */
export function parseRedisUrl(url: string): RedisEndpoint {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RedisUrlError(`not a Redis URL: ${redactRedisUrl(url)} (expected redis://user:password@host:port)`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new RedisUrlError(`unsupported scheme ${parsed.protocol} in Redis URL (use redis:// or rediss://)`);
  }
  const endpoint: RedisEndpoint = {
    host: parsed.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    tls: parsed.protocol === 'rediss:',
  };
  if (parsed.username) endpoint.username = decodeURIComponent(parsed.username);
  if (parsed.password) endpoint.password = decodeURIComponent(parsed.password);
  return endpoint;
}

/** The URL with its password replaced, for logs and status output. */
export function redactRedisUrl(url: string): string {
  return url.replace(/(\/\/[^:@/]*:)[^@/]*@/, '$1****@');
}

export type RedisClient = Redis;

/** The manager's clients try again after 100 ms, doubling up to 2 s, while Redis is away. */
export function defaultRetryDelay(attempt: number): number {
  return Math.min(50 * 2 ** Math.min(attempt, 6), 2_000);
}

export function createRedisClient(endpoint: RedisEndpoint, connectionName: string, extra: Partial<RedisOptions> = {}): Redis {
  return new Redis({
    host: endpoint.host,
    port: endpoint.port,
    username: endpoint.username,
    password: endpoint.password,
    tls: endpoint.tls ? {} : undefined,
    connectionName,
    // Wait for Redis to come back rather than failing commands; callers bound waits.
    maxRetriesPerRequest: null,
    enableAutoPipelining: true,
    retryStrategy: defaultRetryDelay,
    ...extra,
  });
}

/**
 * Creating ioredis clients for the manager (this folder owns ioredis). The manager's
 * connections queue commands while Redis is down or restarting instead of failing them,
 * because the supervisor brings the embedded server back within a second or two.
 *
 * One Redis (`redis://`), a Redis Cluster (`redis+cluster://h1:p1,h2:p2`) or a primary
 * watched by Sentinel (`redis+sentinel://s1:p1,s2:p2/mastername`) — the form of the URL
 * chooses (parseRedisTarget); the rest of the manager sees a RedisClient either way.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

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

/** The URL with its passwords replaced (userinfo and `sentinel_password`), for logs and status output. */
export function redactRedisUrl(url: string): string {
  return url.replace(/(\/\/[^:@/]*:)[^@/]*@/, '$1****@').replace(/([?&]sentinel_password=)[^&#]*/i, '$1****');
}

/** What `--redis-url` names: one server, a Cluster (seed nodes), or a primary watched by Sentinel. */
export type RedisTarget =
  | { kind: 'single'; endpoint: RedisEndpoint }
  | { kind: 'cluster'; nodes: Array<{ host: string; port: number }>; username?: string; password?: string; tls?: boolean }
  | {
      kind: 'sentinel';
      sentinels: Array<{ host: string; port: number }>;
      /** The primary's name as the sentinels know it (`sentinel monitor NAME …`). */
      name: string;
      username?: string;
      password?: string;
      sentinelPassword?: string;
      tls?: boolean;
    };

const MULTI_HOST_SCHEMES: Record<string, { kind: 'cluster' | 'sentinel'; tls: boolean }> = {
  'redis+cluster:': { kind: 'cluster', tls: false },
  'rediss+cluster:': { kind: 'cluster', tls: true },
  'redis+sentinel:': { kind: 'sentinel', tls: false },
  'rediss+sentinel:': { kind: 'sentinel', tls: true },
};
const URL_FORMS = 'redis://[user:password@]host:port, redis+cluster://[user:password@]h1:p1,h2:p2 or redis+sentinel://[user:password@]s1:p1,s2:p2/mastername';

/**
 * Parses `--redis-url`: `redis://`/`rediss://` (one server), `redis+cluster://[user:pass@]h1:p1,h2:p2`
 * (any reachable nodes of a Cluster; the rest is discovered) or
 * `redis+sentinel://[user:pass@]s1:p1,s2:p2/mastername[?sentinel_password=…]` (the sentinels;
 * user and password are the data nodes'). Errors never quote the password.
 */
export function parseRedisTarget(url: string): RedisTarget {
  const scheme = /^([a-z+]+:)\/\//i.exec(url)?.[1]?.toLowerCase();
  const multi = scheme ? MULTI_HOST_SCHEMES[scheme] : undefined;
  if (!multi) {
    if (scheme && scheme !== 'redis:' && scheme !== 'rediss:') throw new RedisUrlError(`unsupported scheme ${scheme} in Redis URL (use ${URL_FORMS})`);
    return { kind: 'single', endpoint: parseRedisUrl(url) };
  }
  // Like a URL parser: the authority ends at the first / ? or #, the userinfo at its last @.
  const rest = url.slice(scheme!.length + 2);
  const authorityEnd = rest.search(/[/?#]|$/);
  const authority = rest.slice(0, authorityEnd);
  const tail = rest.slice(authorityEnd);
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at) : '';
  const hostList = at >= 0 ? authority.slice(at + 1) : authority;
  if (hostList === '') throw new RedisUrlError(`no host in Redis URL ${redactRedisUrl(url)} (expected ${URL_FORMS})`);
  const hosts = hostList.split(',').map((item) => parseHostPort(item, multi.kind === 'sentinel' ? 26379 : 6379, url));
  const credentials: { username?: string; password?: string } = {};
  if (userinfo) {
    const colon = userinfo.indexOf(':');
    const user = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    const password = colon >= 0 ? userinfo.slice(colon + 1) : '';
    try {
      if (user) credentials.username = decodeURIComponent(user);
      if (password) credentials.password = decodeURIComponent(password);
    } catch {
      throw new RedisUrlError(`bad percent-encoding in the user or password of Redis URL ${redactRedisUrl(url)}`);
    }
  }
  const query = new URLSearchParams(tail.includes('?') ? tail.slice(tail.indexOf('?') + 1).replace(/#.*$/, '') : '');
  const path = tail.replace(/[?#].*$/, '');
  if (multi.kind === 'cluster') {
    if (path !== '' && path !== '/') throw new RedisUrlError(`a redis+cluster:// URL has no path (a Cluster has database 0 only): ${redactRedisUrl(url)}`);
    return { kind: 'cluster', nodes: hosts, ...credentials, ...(multi.tls ? { tls: true } : {}) };
  }
  const name = decodeURIComponent(path.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    throw new RedisUrlError(
      `a redis+sentinel:// URL names the primary after the hosts (…/mymaster, as in "sentinel monitor mymaster"): ${redactRedisUrl(url)}`,
    );
  }
  const sentinelPassword = query.get('sentinel_password') ?? undefined;
  return { kind: 'sentinel', sentinels: hosts, name, ...credentials, ...(sentinelPassword ? { sentinelPassword } : {}), ...(multi.tls ? { tls: true } : {}) };
}

function parseHostPort(item: string, defaultPort: number, url: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(item.trim());
  const port = match?.[2] === undefined ? defaultPort : Number(match[2]);
  if (!match || port < 1 || port > 65535) {
    throw new RedisUrlError(`${JSON.stringify(item.slice(0, 80))} in Redis URL ${redactRedisUrl(url)} is not host:port (expected ${URL_FORMS})`);
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Host and port of a target for logs and `status`: the first node or sentinel. */
export function targetAddress(target: RedisTarget): { host: string; port: number } {
  if (target.kind === 'single') return { host: target.endpoint.host, port: target.endpoint.port };
  const first = target.kind === 'cluster' ? target.nodes[0]! : target.sentinels[0]!;
  return { host: first.host, port: first.port };
}

/** One server or a Cluster: the two ioredis clients share their command methods. */
export type RedisClient = Redis | Cluster;

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

/**
 * The manager's client for any target. Cluster: one connection per node (ioredis follows
 * MOVED/ASK and refreshes the slot map every 2 s and after a failover), reads from primaries
 * only (a replica may lag behind what the manager just wrote). Sentinel: a client that asks
 * the sentinels for the current primary on every (re)connect.
 */
export function createTargetClient(target: RedisTarget, connectionName: string, extra: Partial<RedisOptions> = {}): RedisClient {
  if (target.kind === 'single') return createRedisClient(target.endpoint, connectionName, extra);
  const common: Partial<RedisOptions> = {
    username: target.username,
    password: target.password,
    tls: target.tls ? {} : undefined,
    connectionName,
    maxRetriesPerRequest: null,
    enableAutoPipelining: true,
    retryStrategy: defaultRetryDelay,
    ...extra,
  };
  if (target.kind === 'sentinel') {
    return new Redis({
      ...common,
      sentinels: target.sentinels,
      name: target.name,
      role: 'master',
      sentinelPassword: target.sentinelPassword,
      enableTLSForSentinelMode: target.tls === true,
      sentinelRetryStrategy: defaultRetryDelay,
      // Sentinel pushes +switch-master: reconnect at once rather than on the next failed command.
      failoverDetector: true,
    });
  }
  const options: ClusterOptions = {
    redisOptions: common,
    scaleReads: 'master',
    enableAutoPipelining: true,
    // Auto-pipelining groups a Cluster's commands by the node of their FIRST argument, which
    // for FCALL is the function's name and for MEMORY USAGE the word USAGE, not a key: calls
    // for boards on several nodes would share one pipeline and be answered MOVED (the budget
    // check of 2 boards in 3 failed so). Sent one by one, each goes to its key's node
    // (FCALLs are batched per node by cluster-fcall.ts).
    autoPipeliningIgnoredCommands: ['fcall', 'FCALL', 'memory', 'MEMORY'],
    slotsRefreshInterval: 2_000,
    clusterRetryStrategy: defaultRetryDelay,
    // Through a failover (a primary's node timeout, then the election: seconds, 15 s and more
    // with Redis's default node timeout) a command waits and follows the new slot map, like the
    // manager's commands wait for one server to come back; ioredis's default gives up after
    // 16 redirections (under 2 s) with "Too many Cluster redirections".
    maxRedirections: 1_000,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    retryDelayOnMoved: 10,
  };
  return new Cluster(target.nodes, options);
}

/** The connection options of a client (a Cluster's per-node ones), to open another connection to one of its nodes. */
export function nodeConnectionOptions(client: RedisClient): Partial<RedisOptions> {
  const options = client instanceof Cluster ? (client.options.redisOptions ?? {}) : client.options;
  const { username, password, tls, connectTimeout } = options;
  return { username, password, tls, connectTimeout };
}

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

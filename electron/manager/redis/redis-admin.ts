/**
 * The supervisor's short-lived admin connection to the redis-server it runs: connect over
 * loopback, authenticate, send one command, drop the connection. It uses RespConnection
 * (no reconnect, no resend) on purpose: a dead or restarting server is an error the caller
 * sees at once, not a command queued and replayed later against another process.
 */
import { RespConnection } from './resp-connection.js';
import { RespError, type RespArg, type RespValue } from './resp-codec.js';

export interface RedisAdminCredentials {
  username: string;
  password: string;
}

export interface RedisAdminTarget {
  port: number;
  /** Addresses the server listens on now; the connection goes to a loopback one if any. */
  bind: string[];
  /** Omit while the `default` user is on (tests without an ACL file). */
  auth?: RedisAdminCredentials;
  /** Bound on connecting and on waiting for the replies; default 10 s. */
  timeoutMs?: number;
}

/** redis-server refused to listen on `addresses` (not this machine's, or the port is taken there); it kept `previous`. */
export class RedisBindError extends Error {
  override readonly name = 'RedisBindError';
  constructor(
    readonly addresses: string[],
    readonly previous: string[],
    readonly port: number,
    reply: RespError,
  ) {
    super(`redis-server could not listen on ${addresses.join(', ')} port ${port} (${reply.message}); it still listens on ${previous.join(', ')}`, {
      cause: reply,
    });
  }
}

/** The supervisor could not reach, or authenticate to, its own server. */
export class RedisAdminError extends Error {
  override readonly name = 'RedisAdminError';
}

/** Where to reach a server listening on `bind` from this machine: loopback whenever possible (the supervisor, the manager). */
export function adminConnectHost(bind: string[]): string {
  const plain = bind.map((address) => address.replace(/^-/, ''));
  if (plain.some((a) => ['0.0.0.0', '*', 'localhost'].includes(a))) return '127.0.0.1';
  const loopback = plain.find((a) => a.startsWith('127.')) ?? plain.find((a) => a === '::1');
  if (loopback !== undefined) return loopback;
  if (plain.some((a) => a === '::' || a === '::*')) return '::1';
  return plain[0] ?? '127.0.0.1';
}

/** Runs one command on the server as the admin user; RespError for an error reply. */
async function adminCall(target: RedisAdminTarget, command: RespArg[]): Promise<RespValue> {
  const host = adminConnectHost(target.bind);
  const timeoutMs = target.timeoutMs ?? 10_000;
  let connection: RespConnection;
  try {
    connection = await RespConnection.connect({ host, port: target.port, connectTimeoutMs: timeoutMs });
  } catch (error) {
    throw new RedisAdminError(`cannot reach redis-server at ${host}:${target.port}; is it running?`, { cause: error });
  }
  const timer = setTimeout(() => connection.destroy(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs);
  try {
    if (target.auth) {
      const { username, password } = target.auth;
      await connection.call('AUTH', username, password).catch((error: unknown) => {
        if (!(error instanceof RespError)) throw error;
        throw new RedisAdminError(`redis-server refused the supervisor's credentials (user ${username})`, { cause: error });
      });
    }
    return await connection.call(...command);
  } catch (error) {
    if (error instanceof RespError || error instanceof RedisAdminError) throw error;
    throw new RedisAdminError(`redis-server at ${host}:${target.port} went away before answering ${String(command[0])}`, { cause: error });
  } finally {
    clearTimeout(timer);
    // Nothing is pending any more: dropping the socket now (not awaiting a close) lets the
    // caller record the outcome before anything else can happen to the server.
    connection.destroy();
  }
}

/**
 * `CONFIG SET bind` on the running server: it opens the new listening sockets and closes
 * the old ones, or keeps the old ones and replies an error when one address cannot be
 * bound (Redis 7). Established connections are not touched either way.
 */
export async function configSetBind(target: RedisAdminTarget, addresses: string[]): Promise<void> {
  try {
    await adminCall(target, ['CONFIG', 'SET', 'bind', addresses.join(' ')]);
  } catch (error) {
    if (error instanceof RespError) {
      if (error.code === 'NOPERM') throw new RedisAdminError(`redis user ${target.auth?.username ?? 'default'} may not run CONFIG SET`, { cause: error });
      throw new RedisBindError(addresses, target.bind, target.port, error);
    }
    throw error;
  }
}

/**
 * Closes every client connection that came in on `address` (CLIENT KILL LADDR, Redis 6.2+);
 * resolves with how many were closed. Connections to other addresses — the manager's own,
 * over loopback — are left alone.
 */
export async function killClientsOnAddress(target: RedisAdminTarget, address: string): Promise<number> {
  // Redis writes a connection's local address as ip:port, with an IPv6 ip in brackets.
  const laddr = address.includes(':') ? `[${address}]:${target.port}` : `${address}:${target.port}`;
  const reply = await adminCall(target, ['CLIENT', 'KILL', 'LADDR', laddr]);
  return typeof reply === 'number' ? reply : 0;
}

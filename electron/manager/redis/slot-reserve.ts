/**
 * Connection slots reserved for the service's own connections to the embedded Redis.
 *
 * Redis 7 cannot set slots aside for a user, so the service holds them itself: a few spare
 * connections, already open and logged in as the guard's user (`cm-guard`, so the guard never
 * takes them for suspects and whatever drops the manager's user spares them), named
 * `cm-spare`. When one of the service's ioredis clients (commands, notifications, the guard)
 * connects or reconnects, its connector takes a spare instead of dialling; ioredis then sends
 * its own AUTH, which switches the connection to the client's user, and CLIENT SETNAME. The
 * reserve refills in the background. So during a flood that holds every other slot, the
 * service's reconnect does not race the flood: it uses a slot it already holds. Only the
 * refill races, every 50 ms, with the guard sweeping the flood every 100 ms meanwhile.
 *
 * Only for the embedded Redis (plain TCP on loopback, the guard's user exists only there);
 * boards never use it.
 */
import net from 'node:net';
import type { RedisOptions, StandaloneConnectionOptions } from 'ioredis';
import { StandaloneConnector } from 'ioredis/built/connectors/index.js';
import type { Logger } from '../log.js';
import { RespError, RespParser, encodeCommands, type RespValue } from './resp-codec.js';

/** The name a spare carries in CLIENT LIST until a client takes it and names it. */
export const SPARE_CONNECTION_NAME = 'cm-spare';
export const DEFAULT_SPARE_CONNECTIONS = 3;
/** How soon a client that lost its connection tries again while a spare waits for it. */
const RESERVED_RETRY_MS = 50;
/** A spare that is neither refused nor logged in after this long is given up and tried again. */
const LOGIN_TIMEOUT_MS = 5_000;
/** The wait before trying again after Redis refused the login itself (a wrong password, a missing permission). */
const SLOW_RETRY_MS = 1_000;

export interface SlotReserveOptions {
  host: string;
  port: number;
  /** The user the spares log in as (the guard's) and its password. */
  username: string;
  password: string;
  log: Logger;
  /** Spares held (default 3). */
  size?: number;
  /** The wait before trying again while Redis refuses (default 50 ms). */
  retryMs?: number;
}

interface Spare {
  socket: net.Socket;
  /** Our listeners, removed by reference when the spare is handed out (the socket has Node's own too). */
  onData: (chunk: Buffer) => void;
  onError: (error: Error) => void;
  onClose: () => void;
}

export class SlotReserve {
  readonly size: number;
  private readonly retryMs: number;
  private readonly ready: Spare[] = [];
  /** Every socket opened and not yet closed or handed out (logging in, or ready). */
  private readonly open = new Set<net.Socket>();
  private loggingIn = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private running = false;
  /** The last failure logged, so that a refusal repeated every 50 ms is logged once. */
  private lastFailure = '';
  private readonly waiters = new Set<() => void>();
  /** The connector class ioredis instantiates for each client that takes from this reserve. */
  readonly connector: NonNullable<RedisOptions['Connector']>;

  constructor(private readonly options: SlotReserveOptions) {
    this.size = options.size ?? DEFAULT_SPARE_CONNECTIONS;
    if (!Number.isInteger(this.size) || this.size < 1 || this.size > 16) throw new RangeError(`spare connections: ${this.size} (1 to 16)`);
    this.retryMs = options.retryMs ?? 50;
    this.connector = reservedSlotConnector(this);
  }

  /** Spares open and logged in now. */
  get available(): number {
    return this.ready.length;
  }

  /** Starts opening the spares (returns at once; `full()` waits for them). */
  start(): void {
    this.running = true;
    this.fill();
  }

  /** Resolves once every spare is open and logged in (for tests and callers that want to wait). */
  full(): Promise<void> {
    if (this.ready.length >= this.size) return Promise.resolve();
    return new Promise((resolve) => this.waiters.add(resolve));
  }

  /** Whether a client of `host:port` may take from this reserve (the same endpoint). */
  serves(host: string | undefined, port: number | undefined): boolean {
    return host === this.options.host && port === this.options.port;
  }

  /**
   * A spare, connected and logged in, paused and without any listener of ours (as a fresh
   * stream for ioredis); undefined when none is ready. Another is opened in its place.
   */
  take(): net.Socket | undefined {
    if (!this.running) return undefined;
    const spare = this.ready.shift();
    if (!spare) return undefined;
    const { socket } = spare;
    socket.removeListener('data', spare.onData);
    socket.removeListener('error', spare.onError);
    socket.removeListener('close', spare.onClose);
    socket.pause();
    this.open.delete(socket);
    this.fill();
    return socket;
  }

  /** Closes every spare and stops refilling; resolves once they are closed. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const closing = [...this.open].map((socket) => new Promise<void>((resolve) => (socket.closed ? resolve() : socket.once('close', () => resolve()))));
    for (const socket of this.open) socket.destroy();
    await Promise.all(closing);
    this.ready.length = 0;
    for (const resolve of this.waiters) resolve();
    this.waiters.clear();
  }

  /** Opens spares up to `size`, unless a retry is already scheduled after a refusal. */
  private fill(): void {
    while (this.running && this.retryTimer === undefined && this.ready.length + this.loggingIn < this.size) this.openSpare();
  }

  private retryLater(delayMs: number): void {
    if (!this.running || this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.fill();
    }, delayMs);
  }

  /** A spare failed to log in: try again soon (`slow`: after a second), and log the reason once while it repeats. */
  private failed(reason: string, slow: boolean): void {
    if (!this.running) return;
    if (reason !== this.lastFailure) this.options.log('debug', `reserved Redis connection: ${reason}`);
    this.lastFailure = reason;
    this.retryLater(slow ? SLOW_RETRY_MS : this.retryMs);
  }

  /** One spare: connect, AUTH and CLIENT SETNAME in one write, both answered +OK, or it is closed and tried again. */
  private openSpare(): void {
    const { host, port, username, password } = this.options;
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    this.open.add(socket);
    this.loggingIn++;
    const parser = new RespParser({ maxLineBytes: 4096, maxBulkBytes: 4096, maxArrayLength: 16, maxDepth: 2 });
    const replies: RespValue[] = [];
    let loggedIn = false;
    let cause = '';
    let slow = false;
    const give = (reason: string) => {
      if (loggedIn || cause) return;
      cause = reason;
      this.loggingIn--;
      socket.destroy();
    };
    const onLoginTimeout = () => give(`no answer from ${host}:${port} within ${LOGIN_TIMEOUT_MS / 1000} s`);
    socket.setTimeout(LOGIN_TIMEOUT_MS, onLoginTimeout);
    socket.once('connect', () =>
      socket.write(
        encodeCommands([
          ['AUTH', username, password],
          ['CLIENT', 'SETNAME', SPARE_CONNECTION_NAME],
        ]),
      ),
    );
    const onLoginData = (chunk: Buffer) => {
      try {
        replies.push(...parser.push(chunk));
      } catch (error) {
        give((error as Error).message);
        return;
      }
      // Refused (`-ERR max number of clients reached`, sent before Redis closes it) or a wrong password.
      const refusal = replies.find((reply) => reply instanceof RespError);
      if (refusal) {
        // Anything but a full server (a wrong password, a missing permission) will not pass in 50 ms either.
        if (!/max number of clients/.test(refusal.message)) slow = true;
        give(refusal.message);
      } else if (replies.length > 2 || (replies.length === 2 && parser.hasPartialReply)) give('unexpected data from Redis');
      else if (replies.length === 2) ready();
    };
    const onLoginError = (error: Error) => give(error.message);
    const onLoginClose = () => {
      this.open.delete(socket);
      give('closed by Redis before logging in');
      this.failed(cause, slow);
    };
    const ready = () => {
      loggedIn = true;
      this.loggingIn--;
      this.lastFailure = '';
      socket.setTimeout(0);
      socket.removeListener('timeout', onLoginTimeout);
      socket.removeListener('data', onLoginData);
      socket.removeListener('error', onLoginError);
      socket.removeListener('close', onLoginClose);
      const spare: Spare = {
        socket,
        // Redis sends nothing unasked on an idle RESP2 connection: anything else spoils the stream for ioredis.
        onData: () => socket.destroy(),
        onError: (error) => this.options.log('debug', `reserved Redis connection: ${error.message}`),
        onClose: () => {
          this.open.delete(socket);
          const index = this.ready.indexOf(spare);
          if (index >= 0) this.ready.splice(index, 1);
          this.fill();
        },
      };
      socket.on('data', spare.onData);
      socket.on('error', spare.onError);
      socket.on('close', spare.onClose);
      this.ready.push(spare);
      if (this.ready.length >= this.size) {
        for (const resolve of this.waiters) resolve();
        this.waiters.clear();
      }
    };
    socket.on('data', onLoginData);
    socket.on('error', onLoginError);
    socket.on('close', onLoginClose);
  }
}

/**
 * ioredis's standalone connector, except that a plain TCP connection to the reserve's
 * endpoint is a spare when one is ready. ioredis accepts a stream already connected
 * (`connecting === false`: it runs its connect handler, AUTH first, on the next tick).
 */
function reservedSlotConnector(reserve: SlotReserve): NonNullable<RedisOptions['Connector']> {
  return class ReservedSlotConnector extends StandaloneConnector {
    // ioredis hands each connector the client's whole options (RedisOptions).
    constructor(options: unknown) {
      super(options as StandaloneConnectionOptions);
    }

    override connect(emitter: Parameters<StandaloneConnector['connect']>[0]): ReturnType<StandaloneConnector['connect']> {
      const { tls, path, host, port } = this.options;
      const spare = !tls && !path && reserve.serves(host, port) ? reserve.take() : undefined;
      if (!spare) return super.connect(emitter);
      this.connecting = true;
      this.stream = spare;
      spare.once('error', (error) => {
        this.firstError = error;
      });
      return Promise.resolve(spare);
    }
  };
}

/**
 * ioredis options for one of the service's own clients: its connections come from `reserve`
 * when a spare is ready, and it tries again within 50 ms while one is; `backoff` otherwise.
 */
export function reservedClientOptions(reserve: SlotReserve, backoff: (attempt: number) => number): Pick<RedisOptions, 'Connector' | 'retryStrategy'> {
  return {
    Connector: reserve.connector,
    retryStrategy: (attempt) => (reserve.available > 0 ? Math.min(backoff(attempt), RESERVED_RETRY_MS) : backoff(attempt)),
  };
}

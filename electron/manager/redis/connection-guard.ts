/**
 * Keeps the embedded Redis's connection slots for the boards: sizes `maxclients` from the
 * fleet, closes connections that never authenticated, and raises an alarm when Redis
 * refuses connections because every slot is taken.
 *
 * Why a sweeper and not Redis's `timeout`: `timeout` closes every idle client, boards and
 * the manager included (a board running a long program sends nothing), while only
 * connections that never authenticated are suspect. Redis 7 cannot reserve slots for some
 * users or addresses, nor refuse a connection by its age before AUTH, so this runs from
 * outside over its own long-lived connection, opened with the manager's others before any
 * board and reconnecting quickly when lost (it must get in to free the slots for the rest).
 * That connection uses a user of its own (`cm-guard`, acl.ts), so that when the manager's
 * connections drop during a flood (CLIENT KILL USER cm-manager) the guard goes on sweeping
 * and they get back in; had it dropped too, nothing would free a slot for any of them.
 * They do not race the flood for the freed slots: the service's clients, this one included,
 * reconnect over spare connections it holds open (slot-reserve.ts), counted here as its own.
 *
 * Every tick (1 s) reads INFO clients and stats (a few hundred bytes):
 *  - Redis refused connections since the last tick, or 90 % of the slots are taken: the
 *    slots are being filled on purpose. All unauthenticated connections are closed at once
 *    (`CLIENT KILL USER default`: the default user is off, so only connections that have not
 *    authenticated use it), and the next tick comes after 250 ms while it lasts. A board
 *    caught between its connect and its AUTH (a few ms) is closed too and retries.
 *  - More connections than the service and the online boards account for: CLIENT LIST, and
 *    unauthenticated connections older than `unauthenticatedIdleMs` are closed, as are a
 *    board user's connections beyond `perBoard` (a stolen password used to fill the slots).
 *    CLIENT LIST stalls Redis (about 45 ms at 10,000 connections: every board's commands
 *    wait), and extra connections are common and harmless (a board's old connection lingering
 *    after it reconnected, a tool, another manager), so it runs only when it can find
 *    something: when the extra connections grew past what the last listing found harmless,
 *    when an unauthenticated connection it saw becomes old enough to close, and every
 *    LIST_CATCH_ALL_MS. A steady fleet never pays it per second.
 * The file-descriptor limit: Redis raises its own soft limit up to the hard limit when it
 * starts or `maxclients` grows, and Node had already raised its own (inherited by Redis) to
 * the hard limit; raising the hard limit needs privileges the service does not have. So the
 * guard asks for what the fleet needs and takes what Redis reports it got, with a warning.
 */
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { createRedisClient, type RedisEndpoint } from './redis-connection.js';
import { reservedClientOptions, type SlotReserve } from './slot-reserve.js';

export interface ConnectionLimits {
  /** `maxclients` is never below this. */
  minClients: number;
  /** Connection slots per enrolled board: its own, one lingering after a reconnect, spares. */
  perBoard: number;
  /** Slots on top for the service, the CLI and tools. */
  headroom: number;
  /** An unauthenticated connection is closed within 2 s after waiting this long (a board sends AUTH at once). */
  unauthenticatedIdleMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { minClients: 1000, perBoard: 4, headroom: 256, unauthenticatedIdleMs: 5_000 };

/** Redis refused connections (max number of clients reached), as `status` lists it. */
export interface ConnectionsRefusedAlarm {
  kind: 'connections-refused';
  /** Connections refused since `since`. */
  count: number;
  /** The first refusal of this episode (ms since the epoch). */
  since: number;
  /** The latest refusal seen. */
  at: number;
  /** Redis's `maxclients` then. */
  maxClients: number;
}

export interface ConnectionGuardEvents {
  /** Refusals began (a new alarm) or went on; at most once a tick. */
  alarm: [ConnectionsRefusedAlarm];
  /** No refusals for `alarmQuietMs`: the alarm is gone. */
  cleared: [ConnectionsRefusedAlarm];
}

export interface ConnectionGuardOptions {
  /** A connection of the guard's own, authenticated as the guard's user (or the manager's). */
  redis: Redis;
  log: Logger;
  /** Boards enrolled and online now. */
  fleet: () => { total: number; online: number };
  limits?: Partial<ConnectionLimits>;
  /** Default 1000 ms; 250 ms while connections are being refused. */
  intervalMs?: number;
  /** How long without a refusal ends the alarm (default 60 s). */
  alarmQuietMs?: number;
  /** Spare connections the service holds open (slot-reserve.ts): counted as the service's, not suspects. */
  reservedConnections?: number;
}

/** The service's own long-lived connections (commands, notifications, this guard). */
const SERVICE_CONNECTIONS = 3;
const PRESSURE_SHARE = 0.9;
const PRESSURE_INTERVAL_MS = 100;
const WARN_EVERY_MS = 10_000;
/** However steady the connections, CLIENT LIST at least this often while there are extra ones. */
const LIST_CATCH_ALL_MS = 60_000;

/** `maxclients` for a fleet of `enrolled` boards (pure; exported for tests). */
export function wantedMaxClients(enrolled: number, limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS): number {
  return Math.max(limits.minClients, limits.perBoard * enrolled + limits.headroom);
}

/** How many board users the ACL file names: the fleet's size before the fleet is loaded. */
export function boardUsersInAclFile(text: string): number {
  return text.split('\n').filter((line) => line.trimStart().startsWith('user cmb-')).length;
}

export interface ClientEntry {
  id: string;
  user: string;
  ageS: number;
}

/** The fields the guard needs from CLIENT LIST (one client a line, `key=value` pairs). */
export function parseClientList(text: string): ClientEntry[] {
  const clients: ClientEntry[] = [];
  for (const line of text.split('\n')) {
    const field = (name: string) => new RegExp(`(?:^| )${name}=(\\S*)`).exec(line)?.[1];
    const id = field('id');
    const user = field('user');
    if (id === undefined || user === undefined) continue;
    clients.push({ id, user, ageS: Number(field('age') ?? 0) });
  }
  return clients;
}

function infoNumber(text: string, name: string): number {
  return Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
}

export class ConnectionGuard extends EventEmitter<ConnectionGuardEvents> {
  private readonly limits: ConnectionLimits;
  private readonly redis: Redis;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private ticking: Promise<void> = Promise.resolve();
  private max = 0;
  /** maxclients asked for at the last adjustment, and what the system allowed. */
  private asked = 0;
  private lastRejected: number | undefined;
  private lastList = 0;
  /** Extra connections the last CLIENT LIST found harmless (lowered as connections go). */
  private harmlessExtra = 0;
  /** When an unauthenticated connection seen by the last CLIENT LIST becomes old enough to close. */
  private recheckAt = Infinity;
  private episode: ConnectionsRefusedAlarm | undefined;
  private lastWarn = 0;
  private lastNote = 0;
  private refusedSinceWarn = 0;
  private closedSinceWarn = 0;

  constructor(private readonly options: ConnectionGuardOptions) {
    super();
    this.limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.limits };
    this.redis = options.redis;
    // After a reconnect (Redis restarted: its counters and maxclients are the config's again).
    this.redis.on('ready', () => {
      this.lastRejected = undefined;
      this.asked = 0;
      if (this.running) this.schedule(0);
    });
  }

  /** Redis's `maxclients` as last read (0 before the first tick). */
  get maxClients(): number {
    return this.max;
  }

  /** Sizes maxclients for the fleet and starts watching. */
  async start(): Promise<void> {
    this.running = true;
    await this.tick();
  }

  /** Stops watching and closes the guard's connection. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    await this.ticking;
    this.redis.disconnect();
  }

  /** The refusals alarm while it lasts. */
  alarms(): ConnectionsRefusedAlarm[] {
    return this.episode ? [{ ...this.episode }] : [];
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), delayMs);
  }

  private tick(): Promise<void> {
    const run = this.ticking.then(async () => {
      if (!this.running) return;
      let pressure = false;
      try {
        pressure = await this.check();
      } catch (error) {
        // Redis down or restarting: the connection's 'ready' brings the next tick.
        this.options.log('debug', `connection guard: ${(error as Error).message}`);
      }
      if (this.running) this.schedule(pressure ? PRESSURE_INTERVAL_MS : (this.options.intervalMs ?? 1_000));
    });
    this.ticking = run;
    return run;
  }

  /** One look; true while the slots are under pressure. */
  private async check(): Promise<boolean> {
    const now = Date.now();
    await this.adjustMaxClients();
    const info = String(await this.redis.call('INFO', 'clients', 'stats'));
    const connected = infoNumber(info, 'connected_clients');
    const rejected = infoNumber(info, 'rejected_connections');
    // Counters start from 0 again when Redis restarts.
    const refused = this.lastRejected === undefined ? 0 : rejected >= this.lastRejected ? rejected - this.lastRejected : rejected;
    this.lastRejected = rejected;
    if (refused > 0) this.refusals(refused, now);
    else if (this.episode && now - this.episode.at >= (this.options.alarmQuietMs ?? 60_000)) this.clear();

    const pressure = refused > 0 || connected >= this.max * PRESSURE_SHARE;
    if (pressure) {
      this.closedSinceWarn += Number(await this.redis.call('CLIENT', 'KILL', 'USER', 'default'));
    } else {
      const extra = connected - this.options.fleet().online - SERVICE_CONNECTIONS - (this.options.reservedConnections ?? 0);
      this.harmlessExtra = Math.min(this.harmlessExtra, Math.max(0, extra));
      if (this.listDue(now, extra)) {
        this.lastList = now;
        const closed = await this.closeSuspects(now);
        this.harmlessExtra = Math.max(0, extra - closed);
        this.closedSinceWarn += closed;
      }
    }
    this.warn(now, connected);
    return pressure;
  }

  /** Whether CLIENT LIST may find something now (see the header); at most every half `unauthenticatedIdleMs`. */
  private listDue(now: number, extra: number): boolean {
    if (extra <= 0 || now - this.lastList < this.limits.unauthenticatedIdleMs / 2) return false;
    return extra > this.harmlessExtra || now >= this.recheckAt || now - this.lastList >= LIST_CATCH_ALL_MS;
  }

  /** CLIENT LIST: closes unauthenticated connections that waited too long, and a board's extra ones. */
  private async closeSuspects(now: number): Promise<number> {
    const clients = parseClientList(String(await this.redis.call('CLIENT', 'LIST', 'TYPE', 'normal')));
    // `age` is in whole seconds of the server's clock, so one more second makes sure the connection waited the full time.
    const tooOld = (client: ClientEntry) => (client.ageS - 1) * 1000 >= this.limits.unauthenticatedIdleMs;
    const unauthenticated = clients.filter((client) => client.user === 'default');
    const victims = unauthenticated.filter(tooOld).map((client) => client.id);
    // The rest are looked at again once they have waited long enough (they need not grow the count to be found).
    const oldAtS = Math.ceil(this.limits.unauthenticatedIdleMs / 1000) + 1;
    this.recheckAt = unauthenticated.reduce((soonest, client) => (tooOld(client) ? soonest : Math.min(soonest, now + (oldAtS - client.ageS) * 1000)), Infinity);
    const perUser = new Map<string, ClientEntry[]>();
    for (const client of clients) {
      if (!client.user.startsWith('cmb-')) continue;
      const list = perUser.get(client.user) ?? [];
      list.push(client);
      perUser.set(client.user, list);
    }
    for (const [user, list] of perUser) {
      if (list.length <= this.limits.perBoard) continue;
      // The newest are the board's live ones; older ones linger from reconnects, or were opened to fill slots.
      list.sort((a, b) => a.ageS - b.ageS);
      const extra = list.slice(this.limits.perBoard);
      this.options.log(
        'warn',
        `Redis: board user ${user} held ${list.length} connections (at most ${this.limits.perBoard}); closing the ${extra.length} oldest`,
      );
      victims.push(...extra.map((client) => client.id));
    }
    if (victims.length === 0) return 0;
    const pipeline = this.redis.pipeline();
    for (const id of victims) pipeline.call('CLIENT', 'KILL', 'ID', id);
    const replies = (await pipeline.exec()) ?? [];
    return replies.reduce((sum, [error, count]) => sum + (error ? 0 : Number(count)), 0);
  }

  /** Sets maxclients to what the fleet needs, or the most the system allows. */
  private async adjustMaxClients(): Promise<void> {
    const wanted = wantedMaxClients(this.options.fleet().total, this.limits);
    if (wanted === this.asked) return;
    try {
      await this.redis.call('CONFIG', 'SET', 'maxclients', String(wanted));
    } catch (error) {
      // "The operating system is not able to handle the specified number of clients, try with N".
      const allowed = Number(/try with (\d+)/.exec((error as Error).message)?.[1] ?? NaN);
      if (!Number.isInteger(allowed)) throw error;
      await this.redis.call('CONFIG', 'SET', 'maxclients', String(allowed));
    }
    this.asked = wanted;
    this.max = Number(((await this.redis.call('CONFIG', 'GET', 'maxclients')) as string[])[1]);
    if (this.max < wanted) {
      this.options.log(
        'warn',
        `Redis may hold ${this.max} connections, fewer than the ${wanted} a fleet of ${this.options.fleet().total} boards should have: ` +
          'the open-files limit is too low (raise it: ulimit -n, or LimitNOFILE for a systemd service)',
      );
    } else {
      this.options.log('debug', `Redis maxclients ${this.max} (fleet of ${this.options.fleet().total} boards)`);
    }
  }

  private refusals(count: number, now: number): void {
    this.refusedSinceWarn += count;
    if (this.episode) {
      this.episode.count += count;
      this.episode.at = now;
      this.episode.maxClients = this.max;
    } else {
      this.episode = { kind: 'connections-refused', count, since: now, at: now, maxClients: this.max };
    }
    this.emit('alarm', { ...this.episode });
  }

  private clear(): void {
    const episode = this.episode!;
    this.episode = undefined;
    this.options.log(
      'info',
      `Redis accepts connections again: ${episode.count} were refused from ${new Date(episode.since).toISOString()} to ${new Date(episode.at).toISOString()}`,
    );
    this.emit('cleared', episode);
  }

  /** A warning about refusals at most every 10 s, a note about closed connections at most every 10 s; each with the count since the last. */
  private warn(now: number, connected: number): void {
    if (this.refusedSinceWarn > 0 && now - this.lastWarn >= WARN_EVERY_MS) {
      this.lastWarn = now;
      this.options.log(
        'warn',
        `Redis refused ${this.refusedSinceWarn} connections: all ${this.max} connection slots were taken (${connected} open now); ` +
          `closed ${this.closedSinceWarn} connections that had not logged in. Someone may be flooding the boards' port.`,
      );
      this.refusedSinceWarn = 0;
      this.closedSinceWarn = 0;
    } else if (this.refusedSinceWarn === 0 && this.closedSinceWarn > 0 && now - this.lastNote >= WARN_EVERY_MS) {
      this.lastNote = now;
      this.options.log('info', `Redis: closed ${this.closedSinceWarn} connections that had not logged in within ${this.limits.unauthenticatedIdleMs / 1000} s`);
      this.closedSinceWarn = 0;
    }
  }
}

/**
 * A guard on its own connection to `endpoint` (the guard's user), retrying every ≤ 0.5 s when lost: it must get in first.
 * With `reserve`, that connection is a reserved one when lost (slot-reserve.ts) and the spares are counted as the service's.
 */
export function connectionGuardFor(endpoint: RedisEndpoint, options: Omit<ConnectionGuardOptions, 'redis'> & { reserve?: SlotReserve }): ConnectionGuard {
  const { reserve, ...guardOptions } = options;
  const backoff = (attempt: number) => Math.min(50 * attempt, 500);
  const redis = createRedisClient(endpoint, 'cm-manager-guard', {
    enableAutoPipelining: false,
    ...(reserve ? reservedClientOptions(reserve, backoff) : { retryStrategy: backoff }),
  });
  redis.on('error', (error) => options.log('debug', `connection guard: ${error.message}`));
  return new ConnectionGuard({ ...guardOptions, redis, reservedConnections: reserve?.size ?? guardOptions.reservedConnections });
}

/**
 * Answers boards that lost the service (its computer got a new address from DHCP): a board
 * broadcasts `cm-find`, and the responder tells it where Redis is now, signed with the
 * board's own discovery key so a forged answer cannot lure it (and its Redis password)
 * elsewhere. Wire format and rules: firmware/PROTOCOL.md, "Finding the service again".
 *
 * It listens only where Redis lets boards in (its bind addresses and their subnets'
 * broadcast addresses), answers only enrolled boards that have a key, at most 5 times a
 * second per board, and never logs a nonce, a MAC or a key. Everything it needs comes in
 * through the options, so tests swap the interface list and the clock.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import { LogRateLimiter, silentLogger, type Logger } from '../log.js';
import type { NetworkInterfaces } from '../network-access.js';
import { listenPlan } from './discovery-addresses.js';
import { discoveryAnswer, discoveryPortOf, parseDiscoveryRequest } from './discovery-message.js';

/** Answers per board id per second; more requests than this in a second go unanswered. */
export const ANSWERS_PER_SECOND = 5;

export interface DiscoveryResponderOptions {
  /** The addresses the embedded Redis listens on (wildcard `0.0.0.0` = every IPv4 interface). */
  bind: readonly string[];
  /** UDP port (default 18268; 0 also means 18268 — discovery never runs on "any port"). */
  port?: number;
  /** Where this board should reach Redis now (the advertised host and the Redis port; with a Cluster, its slot's node). */
  advertise: (boardId: string) => { host: string; port: number };
  /** The board's discovery key, or undefined for a board that is not enrolled or has none. */
  keyFor: (boardId: string) => string | undefined;
  interfaces?: () => NetworkInterfaces;
  platform?: NodeJS.Platform;
  log?: Logger;
  /** Clock of the rate limit (ms). */
  now?: () => number;
}

/** A UDP port the responder needs is taken (another service, or a second manager). */
export class DiscoveryBindError extends Error {
  override name = 'DiscoveryBindError';
  constructor(
    readonly address: string,
    readonly port: number,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(
      code === 'EADDRINUSE'
        ? `UDP port ${port} on ${address} is used by another program (another Cloudmanager service?)`
        : `cannot listen on UDP ${address}:${port}: ${(options?.cause as Error | undefined)?.message ?? code ?? 'unknown error'}`,
      options,
    );
  }
}

/** At most `limit` answers per board id in any window of `windowMs`. */
class AnswerLimiter {
  private readonly recent = new Map<string, number[]>();

  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
  ) {}

  allow(boardId: string, now: number): boolean {
    const times = (this.recent.get(boardId) ?? []).filter((time) => now - time < this.windowMs);
    if (times.length >= this.limit) {
      this.recent.set(boardId, times);
      return false;
    }
    times.push(now);
    // Keys come only from enrolled boards (looked up first), so the map stays that small.
    this.recent.set(boardId, times);
    return true;
  }
}

interface Listener {
  socket: dgram.Socket;
  /** `address:port` it is bound to. */
  label: string;
}

export class DiscoveryResponder {
  readonly port: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly limiter = new AnswerLimiter(ANSWERS_PER_SECOND, 1_000);
  private readonly ignoredLog = new LogRateLimiter(5, 60_000);
  private readonly answeredLog = new LogRateLimiter(3, 60_000);
  private readonly listeners: Listener[] = [];

  private constructor(private readonly options: DiscoveryResponderOptions) {
    this.port = discoveryPortOf(options.port);
    this.log = options.log ?? silentLogger;
    this.now = options.now ?? Date.now;
  }

  /** Opens every socket, or none: a port that is taken rejects with DiscoveryBindError. */
  static async start(options: DiscoveryResponderOptions): Promise<DiscoveryResponder> {
    const responder = new DiscoveryResponder(options);
    try {
      await responder.listen();
    } catch (error) {
      await responder.close();
      throw error;
    }
    return responder;
  }

  /** `address:port` of every socket, unicast ones first. */
  get addresses(): string[] {
    return this.listeners.map((listener) => listener.label);
  }

  private async listen(): Promise<void> {
    const plan = listenPlan(this.options.bind, (this.options.interfaces ?? os.networkInterfaces)(), this.options.platform);
    const unicast = new Map<string, dgram.Socket>();
    // Unicast sockets first and without reuseAddr: a second service on this port fails here.
    for (const address of plan.unicast) {
      const socket = await this.open(address, false);
      unicast.set(address, socket);
      socket.on('message', (datagram, from) => this.onDatagram(datagram, from, socket, address));
    }
    // reuseAddr: the broadcast address is not this computer's own, and other programs
    // (another service's discovery, say) may listen on it too.
    for (const { address, answerFrom } of plan.broadcast) {
      const socket = await this.open(address, true);
      socket.on('message', (datagram, from) => this.onDatagram(datagram, from, unicast.get(answerFrom)!, answerFrom));
    }
  }

  private async open(address: string, reuseAddr: boolean): Promise<dgram.Socket> {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr });
    const label = `${address}:${this.port}`;
    // Registered first so close() closes a socket whose bind failed too.
    this.listeners.push({ socket, label });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address, port: this.port }, () => {
        socket.off('error', reject);
        resolve();
      });
    }).catch((error: NodeJS.ErrnoException) => {
      this.listeners.pop();
      try {
        socket.close();
      } catch {
        // never bound: nothing to close
      }
      throw new DiscoveryBindError(address, this.port, error.code, { cause: error });
    });
    // Windows delivers broadcasts to sockets bound to the interface's address only with it.
    socket.setBroadcast(true);
    socket.on('error', (error) => this.log('debug', `discovery socket ${label}: ${error.message}`));
    return socket;
  }

  private onDatagram(datagram: Buffer, from: dgram.RemoteInfo, replyFrom: dgram.Socket, localAddress: string): void {
    const source = `${from.address}:${from.port}`;
    const request = parseDiscoveryRequest(datagram);
    if (!request) return this.ignored('malformed', `ignored a ${datagram.length}-byte datagram from ${source}: not a discovery request`);
    const key = this.options.keyFor(request.boardId);
    if (key === undefined) {
      return this.ignored('unknown', `ignored a request from ${source} for board id ${request.boardId}: not enrolled, or enrolled before discovery keys`);
    }
    if (!this.limiter.allow(request.boardId, this.now())) {
      return this.ignored(`busy ${request.boardId}`, `ignored a request from ${source} for board id ${request.boardId}: more than 5 a second`);
    }
    const advertised = this.options.advertise(request.boardId);
    // Boards accept a dotted IPv4 only; an advertised host name is answered with the
    // address the request came in on, which Redis listens on too.
    const host = net.isIPv4(advertised.host) ? advertised.host : localAddress;
    replyFrom.send(discoveryAnswer(request, host, advertised.port, key), from.port, from.address, (error) => {
      if (error) this.log('debug', `discovery: answering ${source} failed: ${error.message}`);
    });
    if (this.answeredLog.allow(request.boardId) === 'log') {
      this.log('info', `discovery: told board ${request.boardId} at ${from.address} to reach Redis at ${host}:${advertised.port}`);
    }
  }

  private ignored(reason: string, message: string): void {
    if (this.ignoredLog.allow(reason) === 'log') this.log('debug', `discovery: ${message}`);
  }

  /** Closes every socket. Idempotent. */
  async close(): Promise<void> {
    const listeners = this.listeners.splice(0);
    await Promise.all(listeners.map(({ socket }) => new Promise<void>((resolve) => socket.close(() => resolve()))));
  }
}

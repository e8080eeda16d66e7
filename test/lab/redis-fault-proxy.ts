/**
 * A TCP proxy between boards and Redis that can lose or hold back a chosen reply: the
 * faults a board on a flaky wifi link meets. Redis has already carried out the command
 * whose reply is lost — exactly the case PROTOCOL.md §4.2 must survive.
 *
 * It reads both directions as RESP2 frames (requests are arrays of bulk strings; replies
 * any RESP2 value) and pairs replies with requests in order, as Redis answers them. It
 * scans frames itself rather than using the product's codec, so it also checks it.
 */
import net from 'node:net';

export interface ProxiedReply {
  /** The request, its arguments as text (`['FCALL', 'cm_claim', '2', …]`). */
  request: string[];
  /** The reply's raw bytes. */
  reply: Buffer;
}

export type FaultAction = { drop: true } | { delayMs: number };

interface FaultRule {
  /** Requests are judged before they reach Redis (reply empty); replies after. */
  on: 'request' | 'reply';
  match: (exchange: ProxiedReply) => boolean;
  action: FaultAction;
  left: number;
  hits: ProxiedReply[];
  waiters: Array<() => void>;
}

/** A fault that was armed; `hit` resolves when it has happened as often as asked. */
export interface ArmedFault {
  hit: Promise<ProxiedReply[]>;
  hits: ProxiedReply[];
  disarm(): void;
}

const CRLF = 0x0d;

/** The end (exclusive) of the RESP2 value starting at `at`, or -1 while incomplete. */
export function respFrameEnd(buffer: Buffer, at: number): number {
  if (at >= buffer.length) return -1;
  const lineEnd = buffer.indexOf(CRLF, at);
  if (lineEnd === -1 || lineEnd + 1 >= buffer.length) return -1;
  const type = String.fromCharCode(buffer[at]!);
  const next = lineEnd + 2;
  if (type === '+' || type === '-' || type === ':') return next;
  const count = Number(buffer.subarray(at + 1, lineEnd).toString('latin1'));
  if (!Number.isInteger(count)) throw new Error(`not RESP2: ${JSON.stringify(buffer.subarray(at, lineEnd).toString('latin1'))}`);
  if (type === '$') {
    if (count < 0) return next;
    return next + count + 2 <= buffer.length ? next + count + 2 : -1;
  }
  if (type === '*') {
    let end = next;
    for (let i = 0; i < count; i += 1) {
      end = respFrameEnd(buffer, end);
      if (end === -1) return -1;
    }
    return end;
  }
  throw new Error(`not RESP2: type byte ${JSON.stringify(type)}`);
}

/** A request frame's arguments as text (inline commands are split on spaces). */
function requestArgs(frame: Buffer): string[] {
  if (frame[0] !== 0x2a) return frame.toString('latin1').trim().split(/\s+/);
  const args: string[] = [];
  let at = frame.indexOf(CRLF) + 2;
  while (at < frame.length) {
    const lineEnd = frame.indexOf(CRLF, at);
    const length = Number(frame.subarray(at + 1, lineEnd).toString('latin1'));
    args.push(frame.subarray(lineEnd + 2, lineEnd + 2 + length).toString('utf8'));
    at = lineEnd + 2 + length + 2;
  }
  return args;
}

/**
 * Splits off the complete frames at the front of `buffer`; returns them and the rest.
 * Requests may also be inline commands (a line of words); replies are always RESP values.
 */
function takeFrames(buffer: Buffer, requests: boolean): { frames: Buffer[]; rest: Buffer } {
  const frames: Buffer[] = [];
  let at = 0;
  for (;;) {
    const inline = requests && at < buffer.length && buffer[at] !== 0x2a;
    const end = inline ? inlineEnd(buffer, at) : respFrameEnd(buffer, at);
    if (end === -1) break;
    frames.push(buffer.subarray(at, end));
    at = end;
  }
  return { frames, rest: buffer.subarray(at) };
}

function inlineEnd(buffer: Buffer, at: number): number {
  const lineEnd = buffer.indexOf(0x0a, at);
  return lineEnd === -1 ? -1 : lineEnd + 1;
}

export class RedisFaultProxy {
  private readonly rules: FaultRule[] = [];
  private readonly sockets = new Set<net.Socket>();
  /** Every connection a board made through the proxy. */
  connections = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  /** Listens on 127.0.0.1 (a free port) and forwards to Redis at `target`. */
  static async start(target: { host?: string; port: number }): Promise<RedisFaultProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const proxy = new RedisFaultProxy(server, (server.address() as net.AddressInfo).port);
    server.on('connection', (client) => proxy.accept(client, target));
    return proxy;
  }

  /**
   * Loses the reply of the next `times` requests that `match` accepts: the connection is
   * cut instead of delivering it, as when a board's wifi drops at that moment.
   */
  dropReply(match: (exchange: ProxiedReply) => boolean, times = 1): ArmedFault {
    return this.arm('reply', match, { drop: true }, times);
  }

  /**
   * Loses the next `times` requests that `match` accepts before they reach Redis: the
   * connection is cut instead, as when a board's wifi drops while it sends.
   */
  dropRequest(match: (request: string[]) => boolean, times = 1): ArmedFault {
    return this.arm('request', (exchange) => match(exchange.request), { drop: true }, times);
  }

  /** Holds back the reply (and, as Redis answers in order, everything after it) for `delayMs`. */
  delayReply(match: (exchange: ProxiedReply) => boolean, delayMs: number, times = 1): ArmedFault {
    return this.arm('reply', match, { delayMs }, times);
  }

  /** Cuts every connection now (a board's link goes down); boards reconnect through it. */
  cutAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private arm(on: FaultRule['on'], match: (exchange: ProxiedReply) => boolean, action: FaultAction, times: number): ArmedFault {
    const rule: FaultRule = { on, match, action, left: times, hits: [], waiters: [] };
    this.rules.push(rule);
    const hit = new Promise<ProxiedReply[]>((resolve) => rule.waiters.push(() => resolve(rule.hits)));
    return { hit, hits: rule.hits, disarm: () => this.rules.splice(this.rules.indexOf(rule) >>> 0, 1) };
  }

  /** The first armed rule that wants this exchange, counted down; null when none does. */
  private faultFor(on: FaultRule['on'], exchange: ProxiedReply): FaultAction | null {
    const rule = this.rules.find((candidate) => candidate.on === on && candidate.left > 0 && candidate.match(exchange));
    if (!rule) return null;
    rule.left -= 1;
    rule.hits.push(exchange);
    if (rule.left === 0) {
      this.rules.splice(this.rules.indexOf(rule), 1);
      // After the fault has been carried out, so a waiting test sees its effect.
      setImmediate(() => rule.waiters.forEach((wake) => wake()));
    }
    return rule.action;
  }

  private accept(client: net.Socket, target: { host?: string; port: number }): void {
    this.connections += 1;
    const upstream = net.connect(target.port, target.host ?? '127.0.0.1');
    this.sockets.add(client);
    this.sockets.add(upstream);
    const requests: string[][] = [];
    let fromClient: Buffer = Buffer.alloc(0);
    let fromServer: Buffer = Buffer.alloc(0);
    // Replies leave in order; a delayed one holds back those after it.
    let outgoing: Promise<void> = Promise.resolve();
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', cut);
      socket.on('close', () => {
        this.sockets.delete(socket);
        cut();
      });
    }
    client.on('data', (chunk) => {
      fromClient = Buffer.concat([fromClient, chunk]);
      let frames: Buffer[];
      try {
        ({ frames, rest: fromClient } = takeFrames(fromClient, true));
        fromClient = Buffer.from(fromClient);
      } catch {
        return cut();
      }
      // Whole requests only, each judged before it goes on.
      for (const frame of frames) {
        const request = requestArgs(frame);
        if (this.faultFor('request', { request, reply: Buffer.alloc(0) })) return cut();
        requests.push(request);
        upstream.write(frame);
      }
    });
    upstream.on('data', (chunk) => {
      fromServer = Buffer.concat([fromServer, chunk]);
      let frames: Buffer[];
      try {
        ({ frames, rest: fromServer } = takeFrames(fromServer, false));
        fromServer = Buffer.from(fromServer);
      } catch {
        return cut();
      }
      for (const reply of frames) {
        const exchange = { request: requests.shift() ?? [], reply: Buffer.from(reply) };
        const fault = this.faultFor('reply', exchange);
        if (fault && 'drop' in fault) {
          outgoing = outgoing.then(cut);
          return;
        }
        const delayMs = fault ? fault.delayMs : 0;
        outgoing = outgoing.then(async () => {
          if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
          if (!client.destroyed) client.write(exchange.reply);
        });
      }
    });
  }
}

/** A `cm_claim` reply that hands the board a command (not just a cursor). */
export function isClaimOfCommand(exchange: ProxiedReply): boolean {
  if (exchange.request[0]?.toUpperCase() !== 'FCALL' || exchange.request[1] !== 'cm_claim') return false;
  const header = exchange.reply.subarray(0, exchange.reply.indexOf(CRLF)).toString('latin1');
  return header.startsWith('*') && Number(header.slice(1)) > 1;
}

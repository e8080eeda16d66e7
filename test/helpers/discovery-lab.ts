/**
 * Pieces for testing board discovery (PROTOCOL.md, "Finding the service again") against
 * real lab boards: a responder that speaks the wire format from the test's side (it
 * answers what the test tells it to, forged or not), TCP listeners that count who
 * connects, and the board's flash folder set up as provisioning leaves it.
 */
import { createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';

export interface FindRequest {
  id: string;
  nonce: string;
  from: dgram.RemoteInfo;
}

/** A discovery key as the service issues one: 32 random bytes as 64 lowercase hex characters. */
export function newDiscoveryKey(): string {
  return randomBytes(32).toString('hex');
}

/** The answer the wire format defines, signed with `key` (the HMAC key is the hex text's ASCII). */
export function signedAnswer(id: string, nonce: string, host: string, port: number, key: string): Buffer {
  const text = `cm-here 1 ${id} ${nonce} ${host} ${port}`;
  return Buffer.from(`${text} ${createHmac('sha256', Buffer.from(key, 'ascii')).update(text).digest('hex')}`);
}

export { freeUdpPort } from './free-port.js';

/**
 * Listens where a service would (the lab subnet's broadcast address and 127.0.0.1, one
 * port) and records every request; `reply` decides what goes back to each (from the
 * unicast socket, to the request's source).
 */
export class TestResponder {
  readonly requests: FindRequest[] = [];
  /** Datagrams that are not requests (anything else a board might send). */
  readonly other: Buffer[] = [];
  reply: (request: FindRequest, index: number) => Buffer[] = () => [];
  private readonly sockets: dgram.Socket[] = [];

  private constructor(readonly port: number) {}

  static async start(port: number): Promise<TestResponder> {
    const responder = new TestResponder(port);
    const unicast = await responder.bind('127.0.0.1');
    await responder.bind('127.255.255.255');
    for (const socket of responder.sockets) {
      socket.on('message', (data, from) => {
        const match = /^cm-find 1 ([a-z0-9-]{1,32}) ([0-9a-f]{32})$/.exec(data.toString('latin1'));
        if (!match) return void responder.other.push(data);
        const request = { id: match[1]!, nonce: match[2]!, from };
        responder.requests.push(request);
        for (const answer of responder.reply(request, responder.requests.length - 1)) unicast.send(answer, from.port, from.address);
      });
    }
    return responder;
  }

  /** The nonces seen, in order, each once. */
  nonces(): string[] {
    return [...new Set(this.requests.map((request) => request.nonce))];
  }

  async close(): Promise<void> {
    await Promise.all(this.sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))));
  }

  private async bind(address: string): Promise<dgram.Socket> {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.port, address, () => resolve());
    });
    this.sockets.push(socket);
    return socket;
  }
}

/**
 * A TCP listener that counts connections and the bytes sent to it, and closes each
 * connection at once (to a board, a connect that failed: what is at an old address now).
 */
export class CountingListener {
  connections = 0;
  bytes = 0;
  port = 0;
  private readonly server = net.createServer((socket) => {
    this.connections++;
    socket.on('data', (chunk) => (this.bytes += chunk.length));
    socket.on('error', () => undefined);
    // Reads what arrives first (AUTH, if the board sends it), then hangs up.
    setImmediate(() => socket.destroy());
  });

  private constructor(readonly host: string) {}

  static async start(host: string, port = 0): Promise<CountingListener> {
    const listener = new CountingListener(host);
    await new Promise<void>((resolve, reject) => {
      listener.server.once('error', reject);
      listener.server.listen(port, host, () => resolve());
    });
    listener.port = (listener.server.address() as net.AddressInfo).port;
    return listener;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Made-up credentials for a board that never needs a real service. */
export function fakeCredentials(id: string): BoardCredentials {
  return { v: 1, id, name: id, user: `cmb-${id}`, password: 'x'.repeat(43), server: '127.0.0.3', port: 1, hb: 5 };
}

/**
 * The board's flash as provisioning writes it (server, credentials, the lab wifi), plus the
 * discovery settings: key `dk` (left out when null) and port `dp`.
 */
export async function provisionForDiscovery(
  folder: string,
  credentials: BoardCredentials,
  server: { host: string; port: number },
  discovery: { dk: string | null; dp: number },
): Promise<Record<string, unknown>> {
  await provisionFolder(folder, credentials, server);
  const file = path.join(folder, 'cm_config.json');
  const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  delete config.dk;
  if (discovery.dk !== null) config.dk = discovery.dk;
  config.dp = discovery.dp;
  await writeFile(file, JSON.stringify(config));
  return config;
}

export async function readBoardConfig(folder: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path.join(folder, 'cm_config.json'), 'utf8')) as Record<string, unknown>;
}

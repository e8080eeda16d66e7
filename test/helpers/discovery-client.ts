/**
 * What a board does on the discovery port, from a test: send `cm-find` from its own UDP
 * socket and collect what comes back. Also a free UDP port for each test's responder.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { waitFor } from './lab.js';

export { freeUdpPort } from './free-port.js';

export const newNonce = (): string => randomBytes(16).toString('hex');

export class DiscoveryClient {
  /** Every datagram received, as text, in arrival order. */
  readonly received: string[] = [];

  private constructor(private readonly socket: dgram.Socket) {
    socket.on('message', (datagram) => this.received.push(datagram.toString('latin1')));
  }

  /** A socket bound to `address` (any 127.x.y.z on Linux loopback), broadcasts allowed. */
  static async open(address = '127.0.0.1'): Promise<DiscoveryClient> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, address, () => resolve());
    });
    socket.setBroadcast(true);
    return new DiscoveryClient(socket);
  }

  send(datagram: string | Buffer, port: number, address = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(datagram, port, address, (error) => (error ? reject(error) : resolve())));
  }

  /** Sends a request for `boardId` with a fresh nonce; returns the nonce. */
  async request(boardId: string, port: number, address = '127.0.0.1'): Promise<string> {
    const nonce = newNonce();
    await this.send(`cm-find 1 ${boardId} ${nonce}`, port, address);
    return nonce;
  }

  /** The answer that carries `nonce` (waits for it). */
  answerTo(nonce: string, timeoutMs = 5_000): Promise<string> {
    return waitFor(() => this.received.find((text) => text.split(' ')[3] === nonce), timeoutMs, `the answer to nonce ${nonce.slice(0, 6)}…`);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

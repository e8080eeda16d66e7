import dgram from 'node:dgram';
import net from 'node:net';

/**
 * A TCP port that was free a moment ago: the OS picks it for a listen on port 0, we close
 * the listener and hand the number out. Another process could grab it in between; the
 * ephemeral range is large enough that this does not happen in practice in tests.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : undefined;
      server.close(() => (port === undefined ? reject(new Error('no port assigned')) : resolve(port)));
    });
  });
}

/** A UDP port that was free on 127.0.0.1 a moment ago (each test its own, e.g. the service's discovery port). */
export async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

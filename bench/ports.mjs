// Ports for the benches' own services: free a moment ago (the OS picks one for port 0).
import dgram from 'node:dgram';
import net from 'node:net';

/** A TCP port free on 127.0.0.1 a moment ago. */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A UDP port free on 127.0.0.1 a moment ago. */
export function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4').once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

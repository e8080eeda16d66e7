/**
 * UDP in the MicroPython board lab (socket.SOCK_DGRAM), as the esp8266 port's modlwip has
 * it: real datagrams on the host's loopback, which is the lab board's WLAN (127.0.0.1/8),
 * a receive queue of 4 that drops newcomers, SO_BROADCAST needed for a broadcast, and the
 * errors a board raises. The lab's rules are in micropython-board-udp.ts.
 */
import dgram from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { BoardUdp, LAB_BROADCAST_ADDRESS, UDP_QUEUE_LENGTH } from '../../electron/manager/virtual/micropython-board-udp.js';
import { DATA_BYTES, ERRNO, UDP_HEADER_BYTES } from '../../electron/manager/virtual/micropython-board-protocol.mjs';
import { waitFor } from '../helpers/lab.js';

const tempDirs: string[] = [];
const boards: MicroPythonBoard[] = [];
const sockets: dgram.Socket[] = [];

async function makeBoard(): Promise<MicroPythonBoard> {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-mpudp-'));
  tempDirs.push(folder);
  const board = new MicroPythonBoard({ folder, timing: 'fast', firmwareModule: 'no_firmware_here' });
  boards.push(board);
  await board.start();
  return board;
}

async function run(board: MicroPythonBoard, code: string): Promise<string> {
  const result = await board.run(code);
  if (result.error) throw new Error(result.traceback ?? result.error);
  return result.stdout;
}

/** A host socket bound to `address` on a free port (the broadcast address shares it with reuseAddr). */
async function hostSocket(address: string, port = 0): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => resolve());
  });
  return socket;
}

function nextMessage(socket: dgram.Socket): Promise<{ data: Buffer; from: dgram.RemoteInfo }> {
  return new Promise((resolve) => socket.once('message', (data, from) => resolve({ data, from })));
}

afterEach(async () => {
  await Promise.all(boards.splice(0).map((board) => board.powerOff()));
  for (const socket of sockets.splice(0)) socket.close();
});
afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('UDP on a MicroPython lab board', () => {
  it('broadcasts to its subnet (127.0.0.1/8) with SO_BROADCAST only, and gets a unicast answer with its sender', async () => {
    const board = await makeBoard();
    const listener = await hostSocket(LAB_BROADCAST_ADDRESS);
    const port = listener.address().port;
    // The answer goes out from a unicast socket on the same port, as a service's would.
    const answerer = await hostSocket('127.0.0.1', port);
    await run(board, `import network, socket, time\nw = network.WLAN(network.STA_IF)\nw.active(True)\nw.connect('cloudmanager-lab', 'lab-password')`);
    await waitFor(async () => (await run(board, 'print(w.isconnected())')).trim() === 'True', 10_000, 'the lab wifi joined');
    expect(await run(board, 'print(w.ifconfig()[:2])')).toBe("('127.0.0.1', '255.0.0.0')\n");

    const refused = await run(
      board,
      `s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.sendto(b'no', ('${LAB_BROADCAST_ADDRESS}', ${port}))
except OSError as e:
    print(e.args[0])`,
    );
    expect(refused).toBe(`${ERRNO.EINVAL}\n`);

    listener.once('message', (data, from) => answerer.send(Buffer.concat([Buffer.from('re: '), data]), from.port, from.address));
    const heard = nextMessage(listener);
    const out = await run(
      board,
      `s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.settimeout(10)
print(s.sendto(b'hello', ('${LAB_BROADCAST_ADDRESS}', ${port})))
print(s.recvfrom(64))`,
    );
    const { data, from } = await heard;
    expect(data.toString()).toBe('hello');
    expect(from.address).toBe('127.0.0.1');
    expect(out).toBe(`5\n(b're: hello', ('127.0.0.1', ${port}))\n`);

    // 255.255.255.255 stays on the lab's WLAN: it reaches the same broadcast listener.
    const limited = nextMessage(listener);
    await run(board, `s.sendto(b'all', ('255.255.255.255', ${port}))`);
    expect((await limited).data.toString()).toBe('all');
  });

  it('raises what modlwip raises: timeouts, nothing to read, no name lookup, unreachable networks, ports in use', async () => {
    const board = await makeBoard();
    const taken = await hostSocket('127.0.0.1');
    const out = await run(
      board,
      `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('', 0))
def attempt(f):
    try:
        f()
    except Exception as e:
        print(type(e).__name__, e.args[0] if isinstance(e, OSError) else e)
s.settimeout(0.05)
attempt(lambda: s.recvfrom(10))
s.setblocking(False)
attempt(lambda: s.recvfrom(10))
attempt(lambda: s.sendto(b'x', ('localhost', 9)))
attempt(lambda: s.sendto(b'x', ('10.1.2.3', 9)))
attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(('', ${taken.address().port})))
attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(('192.168.1.2', 0)))
attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW))
s.close()
import os
a, b = os.urandom(16), os.urandom(16)
print(type(a).__name__, len(a), a != b)`,
    );
    expect(out.trim().split('\n')).toEqual([
      `OSError ${ERRNO.ETIMEDOUT}`,
      `OSError ${ERRNO.EAGAIN}`,
      'ValueError invalid arguments',
      `OSError ${ERRNO.EHOSTUNREACH}`,
      `OSError ${ERRNO.EADDRINUSE}`,
      `OSError ${ERRNO.EINVAL}`,
      `OSError ${ERRNO.EINVAL}`,
      'bytes 16 True',
    ]);
  });

  it('keeps only what recvfrom(n) asks for of a datagram; Ctrl-C stops a blocking recvfrom', async () => {
    const board = await makeBoard();
    const peer = await hostSocket('127.0.0.1');
    const port = peer.address().port;
    peer.on('message', (data, from) => {
      if (data.toString() === 'long please') peer.send(Buffer.from('0123456789abcdefghij'), from.port, from.address);
      if (data.toString() === 'waiting') void board.interrupt();
    });
    const out = await run(
      board,
      `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b'long please', ('127.0.0.1', ${port}))
print(s.recvfrom(5)[0])
s.settimeout(0.05)
try:
    s.recvfrom(64)
except OSError as e:
    print('then', e.args[0])`,
    );
    expect(out).toBe(`b'01234'\nthen ${ERRNO.ETIMEDOUT}\n`);

    const interrupted = await board.run(`s.settimeout(None)\ns.sendto(b'waiting', ('127.0.0.1', ${port}))\ns.recvfrom(64)`);
    expect(interrupted.interrupted).toBe(true);
    expect(interrupted.error).toMatch(/KeyboardInterrupt/);
  });
});

describe('the lab UDP socket (main-thread side)', () => {
  it(`queues ${UDP_QUEUE_LENGTH} datagrams the board has not read and drops newcomers, and frames over 1472 bytes`, async () => {
    const data = new Uint8Array(DATA_BYTES);
    const udp = new BoardUdp(data);
    const probe = await hostSocket('127.0.0.1');
    const port = probe.address().port;
    probe.close();
    sockets.splice(sockets.indexOf(probe), 1);
    try {
      expect(await new Promise<number>((resolve) => udp.bind(1, '', port, resolve))).toBe(0);
      const sender = await hostSocket('127.0.0.1');
      const big = Buffer.alloc(1473, 1);
      for (const payload of [big, 'd1', 'd2', 'd3', 'd4', 'd5', 'd6']) await new Promise((resolve) => sender.send(payload, port, '127.0.0.1', resolve));
      await waitFor(() => udp.counts(1)?.arrived === 7, 5_000, 'all 7 datagrams at the socket');
      expect(udp.counts(1)).toEqual({ queued: UDP_QUEUE_LENGTH, arrived: 7 });
      const read: string[] = [];
      for (;;) {
        const r = await new Promise<number>((resolve) => udp.receive(1, 0, resolve));
        if (r < 0) {
          expect(r).toBe(-ERRNO.EAGAIN);
          break;
        }
        expect([...data.subarray(0, 4)]).toEqual([127, 0, 0, 1]);
        expect((data[4]! << 8) | data[5]!).toBe(sender.address().port);
        read.push(Buffer.from(data.subarray(UDP_HEADER_BYTES, r)).toString());
      }
      expect(read).toEqual(['d1', 'd2', 'd3', 'd4']);
    } finally {
      udp.closeAll();
    }
  });
});

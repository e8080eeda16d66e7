/**
 * The main-thread half of a lab board's UDP sockets (socket.SOCK_DGRAM; the worker half is
 * micropython-board-worker-udp.mjs, the Python half lab-python/socket.py): real `dgram`
 * sockets on the host's loopback, which is the lab board's WLAN (network.WLAN's ifconfig
 * says 127.0.0.1, netmask 255.0.0.0, so its directed broadcast address is 127.255.255.255).
 *
 * Modelled on the esp8266 port's modlwip (MicroPython 1.27, lwIP 1.4 from esp-open-lwip):
 * - a datagram that arrives while the board is not reading waits in a queue of 4 (modlwip's
 *   LWIP_INCOMING_PACKET_QUEUE_LEN); when the queue is full the newcomer is dropped, as
 *   modlwip drops it ("no room in the inn");
 * - a datagram larger than one WLAN frame (1472 bytes of payload) never arrives: the
 *   ESP8266's lwIP is built without IP reassembly, so its fragments are dropped;
 * - recvfrom(n) takes one datagram; what does not fit in n bytes is lost with it;
 * - sendto() needs a dotted IPv4 address (no name lookup), else ValueError; a socket that
 *   was not bound is bound to an ephemeral port by its first send.
 *
 * Shortcuts, written down as the lab rules ask:
 * - Sending to a broadcast address (127.255.255.255, or 255.255.255.255, which the lab
 *   keeps on its loopback instead of the host's real network) needs SO_BROADCAST, else
 *   OSError(EINVAL) — what lwIP answers (ERR_VAL) when built with IP_SOF_BROADCAST, as the
 *   lwIP of the rp2 and other ports is. The ESP8266's build has no such filter and sends
 *   anyway: the lab is stricter, so a client that works here works on both.
 * - The board has one address, 127.0.0.1 (shared by all lab boards): bind() takes that
 *   address or the wildcard ('' or 0.0.0.0), anything else is EINVAL; a second bind() too.
 *   The board's UDP sockets receive unicast datagrams only (a broadcast to
 *   127.255.255.255 does not reach them, it reaches a real board's wildcard-bound socket).
 * - Datagrams go only to the host's loopback (127.0.0.0/8): any other destination is
 *   EHOSTUNREACH, so that a test never sends anything onto a real network.
 * - No limit on how many UDP sockets a board opens (the ESP8266's lwIP has 4 UDP PCBs,
 *   some used by the SDK itself); no connect()/send() on a UDP socket (EOPNOTSUPP).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { ERRNO, NOT_AN_ADDRESS, POLLIN, UDP_HEADER_BYTES, WAIT_FOREVER } from './micropython-board-protocol.mjs';

/** The lab board's own address on its WLAN (network.WLAN(STA_IF).ifconfig()[0]). */
export const LAB_BOARD_ADDRESS = '127.0.0.1';
/** The directed broadcast address of the lab WLAN (127.0.0.0/8). */
export const LAB_BROADCAST_ADDRESS = '127.255.255.255';
/** Datagrams a socket keeps while the board does not read (modlwip's queue). */
export const UDP_QUEUE_LENGTH = 4;
/** The largest payload that arrives in one 1500-byte frame (1500 - 20 IP - 8 UDP). */
export const UDP_MAX_PAYLOAD = 1472;

interface Datagram {
  data: Buffer;
  address: string;
  port: number;
}

interface LabUdpSocket {
  socket: dgram.Socket;
  queue: Datagram[];
  /** Datagrams that reached the socket, kept or dropped. */
  arrived: number;
  /** Resolves once bound (0) or with the negative errno of a failed bind. */
  bound: Promise<number>;
  broadcast: boolean;
  /** The board is blocked in a receive on this socket. */
  waiter?: { timer: NodeJS.Timeout | undefined; answer: (result: number) => void };
}

const NODE_ERRNO: Record<string, number> = {
  EADDRINUSE: ERRNO.EADDRINUSE,
  EACCES: ERRNO.EINVAL,
  EHOSTUNREACH: ERRNO.EHOSTUNREACH,
  ENETUNREACH: ERRNO.EHOSTUNREACH,
};

function errnoOf(error: NodeJS.ErrnoException): number {
  return NODE_ERRNO[error.code ?? ''] ?? ERRNO.EINVAL;
}

function isBroadcast(address: string): boolean {
  return address === LAB_BROADCAST_ADDRESS || address === '255.255.255.255';
}

export class BoardUdp {
  private readonly sockets = new Map<number, LabUdpSocket>();

  /** @param data the shared reply buffer (micropython-board-protocol.mjs) */
  constructor(private readonly data: Uint8Array) {}

  /** bind((host, port)): 0 or a negative errno. */
  bind(sid: number, host: string, port: number, answer: (result: number) => void): void {
    if (this.sockets.has(sid)) return answer(-ERRNO.EINVAL);
    if (host !== '' && host !== '0.0.0.0' && host !== LAB_BOARD_ADDRESS) return answer(-ERRNO.EINVAL);
    if (!Number.isInteger(port) || port < 0 || port > 65535) return answer(-ERRNO.EINVAL);
    void this.open(sid, port).bound.then(answer);
  }

  /** sendto(data, (host, port)): the byte count, NOT_AN_ADDRESS or a negative errno. */
  send(sid: number, host: string, port: number, data: Uint8Array, broadcast: boolean, answer: (result: number) => void): void {
    if (!net.isIPv4(host) || !Number.isInteger(port) || port < 0 || port > 65535) return answer(NOT_AN_ADDRESS);
    if (isBroadcast(host) && !broadcast) return answer(-ERRNO.EINVAL);
    if (!host.startsWith('127.') && host !== '255.255.255.255') return answer(-ERRNO.EHOSTUNREACH);
    const s = this.sockets.get(sid) ?? this.open(sid, 0);
    void s.bound.then((bound) => {
      if (bound < 0) return answer(bound);
      if (broadcast !== s.broadcast) {
        s.socket.setBroadcast(broadcast);
        s.broadcast = broadcast;
      }
      const to = host === '255.255.255.255' ? LAB_BROADCAST_ADDRESS : host;
      s.socket.send(data, port, to, (error) => answer(error ? -errnoOf(error) : data.length));
    });
  }

  /**
   * recvfrom(): the next datagram into the shared buffer (UDP_HEADER_BYTES of sender, then
   * the payload), with its total length as the result; -EAGAIN / -ETIMEDOUT when none came.
   * A socket that was never bound receives nothing, as an unbound lwIP PCB.
   */
  receive(sid: number, timeoutMs: number, answer: (result: number) => void): void {
    const s = this.sockets.get(sid);
    if (s?.queue.length) return answer(this.take(s));
    if (timeoutMs === 0) return answer(-ERRNO.EAGAIN);
    // An unbound socket waits out its timeout too (or forever: until Ctrl-C or a reset).
    const timer =
      timeoutMs === WAIT_FOREVER
        ? undefined
        : setTimeout(() => {
            if (s) s.waiter = undefined;
            answer(-ERRNO.ETIMEDOUT);
          }, timeoutMs);
    if (s) s.waiter = { timer, answer };
  }

  poll(sid: number): number {
    return this.sockets.get(sid)?.queue.length ? POLLIN : 0;
  }

  /** What a socket has seen (tests, diagnostics): datagrams waiting, and all that arrived. */
  counts(sid: number): { queued: number; arrived: number } | undefined {
    const s = this.sockets.get(sid);
    return s && { queued: s.queue.length, arrived: s.arrived };
  }

  close(sid: number): void {
    const s = this.sockets.get(sid);
    if (!s) return;
    this.sockets.delete(sid);
    if (s.waiter?.timer) clearTimeout(s.waiter.timer);
    s.socket.close();
  }

  /** Ctrl-C: blocked receives stop waiting (the caller answers the call with EINTR). */
  interrupt(): void {
    for (const s of this.sockets.values()) {
      if (s.waiter?.timer) clearTimeout(s.waiter.timer);
      s.waiter = undefined;
    }
  }

  /** The board reset or lost power: every socket goes. */
  closeAll(): void {
    for (const sid of [...this.sockets.keys()]) this.close(sid);
  }

  private open(sid: number, port: number): LabUdpSocket {
    const socket = dgram.createSocket('udp4');
    const s: LabUdpSocket = { socket, queue: [], arrived: 0, broadcast: false, bound: Promise.resolve(0) };
    s.bound = new Promise<number>((resolve) => {
      socket.once('error', (error: NodeJS.ErrnoException) => {
        // Not bound (the port is taken): the board may try another port.
        if (this.sockets.get(sid) === s) this.sockets.delete(sid);
        socket.close();
        resolve(-errnoOf(error));
      });
      socket.bind(port, LAB_BOARD_ADDRESS, () => {
        // Later errors (a send's go to its callback) must not become uncaught ones.
        socket.removeAllListeners('error');
        socket.on('error', () => undefined);
        resolve(0);
      });
    });
    socket.on('message', (data, from) => {
      s.arrived++;
      if (data.length > UDP_MAX_PAYLOAD || s.queue.length >= UDP_QUEUE_LENGTH) return;
      s.queue.push({ data, address: from.address, port: from.port });
      this.settle(s);
    });
    this.sockets.set(sid, s);
    return s;
  }

  /** Answers a waiting receive with the datagram that just came in. */
  private settle(s: LabUdpSocket): void {
    const waiter = s.waiter;
    if (!waiter || !s.queue.length) return;
    const result = this.take(s);
    if (waiter.timer) clearTimeout(waiter.timer);
    s.waiter = undefined;
    waiter.answer(result);
  }

  private take(s: LabUdpSocket): number {
    const datagram = s.queue.shift() as Datagram;
    const n = Math.min(datagram.data.length, this.data.length - UDP_HEADER_BYTES);
    const ip = datagram.address.split('.').map(Number);
    this.data.set(ip, 0);
    this.data[4] = datagram.port >> 8;
    this.data[5] = datagram.port & 0xff;
    this.data.set(datagram.data.subarray(0, n), UDP_HEADER_BYTES);
    return UDP_HEADER_BYTES + n;
  }
}

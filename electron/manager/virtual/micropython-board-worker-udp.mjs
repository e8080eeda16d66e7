// @ts-check
// The worker half of a lab board's UDP sockets (socket.SOCK_DGRAM): the functions of
// `_cm_lab_host` that lab-python/socket.py calls for them. Part of the board lab's worker;
// the real `dgram` sockets and the lab's UDP rules are on the main thread
// (micropython-board-udp.ts), reached through the synchronous bridge like TCP's.
//
// As for TCP, data crosses as the address of a Python buffer and a length, never as a
// Python object (a JS proxy would pin it in the GC heap).
import {
  ERRNO,
  NOT_AN_ADDRESS,
  OP_UDP_BIND,
  OP_UDP_SEND,
  OP_UDP_RECV,
  OP_UDP_POLL,
  OP_UDP_CLOSE,
  POLLIN,
  POLLOUT,
  UDP_HEADER_BYTES,
} from './micropython-board-protocol.mjs';
import { heapU8 } from './micropython-board-worker-memory.mjs';

/** lwIP's SOF_BROADCAST: socket.SO_BROADCAST of modlwip (levels are ignored there, and here). */
const SO_BROADCAST = 0x20;

/**
 * @param {{
 *   call: (request: Record<string, unknown>) => number,
 *   post: (notice: Record<string, unknown>) => void,
 *   data: Uint8Array,
 * }} bridge call: a blocking bridge call; post: a notice (no answer); data: the shared reply buffer
 */
export function createUdp({ call, post, data }) {
  /** Open sockets: their SO_BROADCAST. @type {Map<number, { broadcast: boolean }>} */
  const open = new Map();
  let nextSid = 1;
  /** The sender of the last datagram received, as "a.b.c.d port". */
  let from = '';

  return {
    udp_open() {
      const sid = nextSid++;
      open.set(sid, { broadcast: false });
      return sid;
    },
    /** setsockopt(): SO_BROADCAST is kept (SO_REUSEADDR and others are accepted and ignored). */
    udp_opt(/** @type {number} */ sid, /** @type {number} */ opt, /** @type {number} */ value) {
      const s = open.get(sid);
      if (s && opt === SO_BROADCAST) s.broadcast = value !== 0;
    },
    udp_bind(/** @type {number} */ sid, /** @type {string} */ host, /** @type {number} */ port) {
      if (!open.has(sid)) return -ERRNO.EBADF;
      return call({ op: OP_UDP_BIND, sid, host: String(host), port });
    },
    /** Returns the byte count sent, NOT_AN_ADDRESS or a negative errno. */
    udp_sendto(/** @type {number} */ sid, /** @type {number} */ addr, /** @type {number} */ n, /** @type {string} */ host, /** @type {number} */ port) {
      const s = open.get(sid);
      if (!s) return -ERRNO.EBADF;
      if (typeof host !== 'string' || typeof port !== 'number') return NOT_AN_ADDRESS;
      return call({ op: OP_UDP_SEND, sid, host, port, data: heapU8().slice(addr, addr + n), broadcast: s.broadcast });
    },
    /**
     * Copies up to `n` bytes of the next datagram to `addr` (the rest of it is lost); the
     * sender is then udp_from(). Returns the count or a negative errno.
     */
    udp_recv(/** @type {number} */ sid, /** @type {number} */ addr, /** @type {number} */ n, /** @type {number} */ timeoutMs) {
      if (!open.has(sid)) return -ERRNO.EBADF;
      const r = call({ op: OP_UDP_RECV, sid, timeoutMs });
      if (r < 0) return r;
      const k = Math.min(n, r - UDP_HEADER_BYTES);
      heapU8().set(data.subarray(UDP_HEADER_BYTES, UDP_HEADER_BYTES + k), addr);
      from = `${data[0]}.${data[1]}.${data[2]}.${data[3]} ${((data[4] ?? 0) << 8) | (data[5] ?? 0)}`;
      return k;
    },
    udp_from() {
      return from;
    },
    udp_poll(/** @type {number} */ sid, /** @type {number} */ events) {
      if (!open.has(sid)) return 0;
      const ready = (events & POLLIN ? call({ op: OP_UDP_POLL, sid }) & POLLIN : 0) | POLLOUT;
      return ready & events;
    },
    udp_close(/** @type {number} */ sid) {
      if (open.delete(sid)) post({ op: OP_UDP_CLOSE, sid });
    },
  };
}

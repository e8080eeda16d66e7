// @ts-check
// Constants shared by the MicroPython board lab's main-thread side (micropython-board.ts,
// micropython-board-network.ts) and its worker (micropython-board-worker*.mjs).
//
// Plain JavaScript (with a .d.mts beside it) because the worker cannot load TypeScript
// and the two sides must agree on the same numbers: one source instead of two copies.
//
// The synchronous bridge: the worker runs Python synchronously, so when Python needs the
// network it posts a `call` message and blocks in Atomics.wait on CTL_STATE until the main
// thread (which owns the real sockets) has written the result into the shared buffer.
//
// Shared buffer layout (one per board):
//   Int32 [0 .. CTL_INTS)            control words, indices below
//   Int32 [SOCK_ERR_INDEX .. +SOCK_SLOTS)  pending socket error per socket slot (errno, 0: none)
//   bytes [DATA_OFFSET .. +DATA_BYTES)     payload of the current reply

/** Control word: STATE_* of the current call. */
export const CTL_STATE = 0;
/** Control word: the call's result (byte count, or a negative errno). */
export const CTL_RESULT = 1;
/** Control word: 1 while the worker is inside a firmware step (the watchdog looks at it). */
export const CTL_IN_STEP = 2;
/** Control word: bumped by the worker on every sign of life (step start, bridge return). */
export const CTL_FEED = 3;
/** Control word the worker parks on forever after machine.reset() (nobody notifies it). */
export const CTL_PARK = 4;
/**
 * Control word: 1 when Ctrl-C was pressed (MicroPythonBoard.interrupt()). The worker takes
 * it while Python runs: in a blocking network call (which then raises KeyboardInterrupt)
 * or in time.sleep() (which then schedules a KeyboardInterrupt and ends the sleep).
 */
export const CTL_INTERRUPT = 5;
export const CTL_INTS = 16;

export const STATE_IDLE = 0;
export const STATE_PENDING = 1;
export const STATE_DONE = 2;

export const SOCK_SLOTS = 256;
export const SOCK_ERR_INDEX = CTL_INTS;
export const DATA_OFFSET = (CTL_INTS + SOCK_SLOTS) * 4;
/** Largest reply payload; also the most one recv() can return (a short read is legal TCP). */
export const DATA_BYTES = 64 * 1024;
export const SHARED_BYTES = DATA_OFFSET + DATA_BYTES;

/**
 * The views both sides use on a board's shared buffer (layout above).
 * @param {SharedArrayBuffer} shared
 */
export function sharedViews(shared) {
  return {
    ctl: new Int32Array(shared, 0, CTL_INTS),
    sockErr: new Int32Array(shared, SOCK_ERR_INDEX * 4, SOCK_SLOTS),
    data: new Uint8Array(shared, DATA_OFFSET, DATA_BYTES),
  };
}

/** Timeout value meaning "block until something happens" (socket timeout None). */
export const WAIT_FOREVER = -1;

/** Synchronous bridge operations (worker -> main thread, answered through the buffer). */
export const OP_CONNECT = 'connect';
export const OP_RECV = 'recv';
export const OP_POLL = 'poll';
export const OP_DNS = 'dns';
/** Fire-and-forget operations (no answer; errors surface on the socket's next call). */
export const OP_SEND = 'send';
export const OP_CLOSE = 'close';
/** UDP (socket.SOCK_DGRAM, micropython-board-udp.ts): bind, send and receive are answered, close is a notice. */
export const OP_UDP_BIND = 'udp-bind';
export const OP_UDP_SEND = 'udp-send';
export const OP_UDP_RECV = 'udp-recv';
export const OP_UDP_POLL = 'udp-poll';
export const OP_UDP_CLOSE = 'udp-close';
/**
 * A received datagram in the shared buffer: the sender's IPv4 address (4 bytes) and port
 * (2 bytes, big-endian) come first, then the payload; the call's result counts all of them.
 */
export const UDP_HEADER_BYTES = 6;
/** Answer to a UDP send to something that is not a dotted IPv4 address (modlwip raises ValueError). */
export const NOT_AN_ADDRESS = -1;

/** MicroPython's errno values (py/mperrno.h), which the ESP8266 port raises as OSError(n). */
export const ERRNO = Object.freeze({
  /** Not an ESP8266 errno here: the lab's "interrupted by Ctrl-C" answer to a blocking call. */
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  EINVAL: 22,
  EOPNOTSUPP: 95,
  ECONNABORTED: 103,
  ECONNRESET: 104,
  ENOTCONN: 107,
  EADDRINUSE: 112,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
  EINPROGRESS: 115,
});

/** Poll flags of MicroPython's stream ioctl (select.POLLIN etc.). */
export const POLLIN = 0x0001;
export const POLLOUT = 0x0004;
export const POLLERR = 0x0008;
export const POLLHUP = 0x0010;

/** machine.reset_cause() values of the ESP8266 port. */
export const RESET_CAUSE = Object.freeze({
  PWRON_RESET: 0,
  WDT_RESET: 1,
  SOFT_RESET: 4,
  DEEPSLEEP_RESET: 5,
  HARD_RESET: 6,
});

/**
 * The main-thread half of a lab board's sockets (the worker half is
 * micropython-board-worker-host.mjs): owns the real `net.Socket`s, buffers what arrives
 * while the board is not reading (it is TCP: nothing may be lost), and answers the
 * worker's blocking calls through the shared buffer (micropython-board-protocol.mjs).
 *
 * At most one call is outstanding per board, since the worker waits for each answer.
 * UDP sockets are BoardUdp's (micropython-board-udp.ts).
 */
import net from 'node:net';
import dns from 'node:dns';
import {
  CTL_STATE,
  CTL_RESULT,
  STATE_DONE,
  SOCK_SLOTS,
  DATA_BYTES,
  ERRNO,
  POLLIN,
  WAIT_FOREVER,
  OP_CONNECT,
  OP_RECV,
  OP_POLL,
  OP_DNS,
  OP_SEND,
  OP_CLOSE,
  OP_UDP_BIND,
  OP_UDP_SEND,
  OP_UDP_RECV,
  OP_UDP_POLL,
  OP_UDP_CLOSE,
  sharedViews,
} from './micropython-board-protocol.mjs';
import { BoardUdp } from './micropython-board-udp.js';

export type BridgeCall =
  | { op: typeof OP_CONNECT; sid: number; host: string; port: number; timeoutMs: number }
  | { op: typeof OP_RECV; sid: number; timeoutMs: number }
  | { op: typeof OP_POLL; sid: number }
  | { op: typeof OP_DNS; host: string }
  | { op: typeof OP_UDP_BIND; sid: number; host: string; port: number }
  | { op: typeof OP_UDP_SEND; sid: number; host: string; port: number; data: Uint8Array; broadcast: boolean }
  | { op: typeof OP_UDP_RECV; sid: number; timeoutMs: number }
  | { op: typeof OP_UDP_POLL; sid: number };

export type BridgeNotice =
  { op: typeof OP_SEND; sid: number; data: Uint8Array } | { op: typeof OP_CLOSE; sid: number } | { op: typeof OP_UDP_CLOSE; sid: number };

interface LabSocket {
  socket: net.Socket;
  chunks: Buffer[];
  buffered: number;
  connected: boolean;
  ended: boolean;
  error: number;
  paused: boolean;
  connectTimer?: NodeJS.Timeout;
  /** The board is blocked in a receive on this socket. */
  waiter?: { timer: NodeJS.Timeout | undefined; answer: (result: number) => void };
}

/** Above this much unread data, stop reading from the peer (TCP flow control does the rest). */
const HIGH_WATER = 256 * 1024;

const NODE_ERRNO: Record<string, number> = {
  ECONNREFUSED: ERRNO.ECONNREFUSED,
  ECONNRESET: ERRNO.ECONNRESET,
  EPIPE: ERRNO.ECONNRESET,
  ETIMEDOUT: ERRNO.ETIMEDOUT,
  EHOSTUNREACH: ERRNO.EHOSTUNREACH,
  ENETUNREACH: ERRNO.EHOSTUNREACH,
  ECONNABORTED: ERRNO.ECONNABORTED,
  // Writing after the peer closed: a board would get a reset back from the peer.
  ERR_STREAM_WRITE_AFTER_END: ERRNO.ECONNRESET,
  ERR_STREAM_DESTROYED: ERRNO.ECONNRESET,
};

export class BoardNetwork {
  private readonly ctl: Int32Array;
  private readonly sockErr: Int32Array;
  private readonly data: Uint8Array;
  private readonly sockets = new Map<number, LabSocket>();
  private readonly udp: BoardUdp;
  /** Bumped on every answer, so a late timer or event cannot answer a newer call. */
  private callSeq = 0;
  private answered = true;
  private closed = false;
  /** Answers the outstanding call (set while one is). */
  private answerCurrent: ((result: number) => void) | undefined;

  constructor(shared: SharedArrayBuffer) {
    ({ ctl: this.ctl, sockErr: this.sockErr, data: this.data } = sharedViews(shared));
    this.udp = new BoardUdp(this.data);
  }

  /** True while the board waits for an answer (blocked in the network, not hung). */
  get waiting(): boolean {
    return !this.answered;
  }

  call(request: BridgeCall): void {
    if (this.closed) return;
    this.answered = false;
    const seq = ++this.callSeq;
    const answer = (result: number): void => {
      if (seq !== this.callSeq || this.answered) return;
      this.answered = true;
      Atomics.store(this.ctl, CTL_RESULT, result);
      Atomics.store(this.ctl, CTL_STATE, STATE_DONE);
      Atomics.notify(this.ctl, CTL_STATE);
    };
    this.answerCurrent = answer;
    switch (request.op) {
      case OP_CONNECT:
        return this.connect(request, answer);
      case OP_RECV:
        return this.receive(request.sid, request.timeoutMs, answer);
      case OP_POLL:
        return answer(this.poll(request.sid));
      case OP_DNS:
        return this.lookup(request.host, answer);
      case OP_UDP_BIND:
        return this.udp.bind(request.sid, request.host, request.port, answer);
      case OP_UDP_SEND:
        return this.udp.send(request.sid, request.host, request.port, request.data, request.broadcast, answer);
      case OP_UDP_RECV:
        return this.udp.receive(request.sid, request.timeoutMs, answer);
      case OP_UDP_POLL:
        return answer(this.udp.poll(request.sid));
      default:
        return answer(-ERRNO.EINVAL);
    }
  }

  notice(notice: BridgeNotice): void {
    if (notice.op === OP_UDP_CLOSE) return this.udp.close(notice.sid);
    const s = this.sockets.get(notice.sid);
    if (!s) return;
    if (notice.op === OP_SEND) {
      if (!s.error && !s.socket.destroyed) s.socket.write(notice.data);
    } else {
      this.sockets.delete(notice.sid);
      clearTimeout(s.connectTimer);
      // A graceful close (FIN) once queued data is out; destroy in any case after that.
      s.socket.end(() => s.socket.destroy());
      setTimeout(() => s.socket.destroy(), 1000).unref();
    }
  }

  /**
   * Ctrl-C: a blocking call (connect, receive, lookup) returns at once with EINTR, which the
   * board's socket shim raises as KeyboardInterrupt, as a board's blocking socket calls do.
   * An interrupted connect leaves its socket unusable; received data stays queued.
   */
  interrupt(): void {
    if (this.answered) return;
    for (const s of this.sockets.values()) {
      if (!s.waiter) continue;
      if (s.waiter.timer) clearTimeout(s.waiter.timer);
      s.waiter = undefined;
    }
    this.udp.interrupt();
    this.answerCurrent?.(-ERRNO.EINTR);
  }

  /** Drops every connection (the board lost power or was reset) and any pending call. */
  close(): void {
    this.closed = true;
    this.callSeq++;
    for (const s of this.sockets.values()) {
      if (s.waiter?.timer) clearTimeout(s.waiter.timer);
      clearTimeout(s.connectTimer);
      s.socket.destroy();
    }
    this.sockets.clear();
    this.udp.closeAll();
  }

  private connect(request: Extract<BridgeCall, { op: 'connect' }>, answer: (result: number) => void): void {
    this.sockets.get(request.sid)?.socket.destroy();
    const socket = net.connect({ host: request.host, port: request.port });
    socket.setNoDelay(true); // the board's small writes are its protocol's latency
    const s: LabSocket = { socket, chunks: [], buffered: 0, connected: false, ended: false, error: 0, paused: false };
    this.sockets.set(request.sid, s);
    const slot = request.sid % SOCK_SLOTS;
    if (request.timeoutMs > 0) {
      s.connectTimer = setTimeout(() => {
        s.error = ERRNO.ETIMEDOUT;
        socket.destroy();
        answer(-ERRNO.ETIMEDOUT);
      }, request.timeoutMs);
    }
    socket.once('connect', () => {
      clearTimeout(s.connectTimer);
      s.connected = true;
      answer(0);
    });
    socket.on('data', (chunk: Buffer) => {
      s.chunks.push(chunk);
      s.buffered += chunk.length;
      if (s.buffered > HIGH_WATER && !s.paused) {
        s.paused = true;
        socket.pause();
      }
      this.settle(s);
    });
    socket.on('end', () => {
      s.ended = true;
      this.settle(s);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(s.connectTimer);
      const errno = NODE_ERRNO[error.code ?? ''] ?? ERRNO.ECONNABORTED;
      s.error ||= errno;
      Atomics.store(this.sockErr, slot, s.error);
      if (!s.connected) answer(-s.error);
      this.settle(s);
    });
    socket.on('close', () => {
      s.ended = true;
      this.settle(s);
    });
    // Non-blocking connect: EINPROGRESS now, the connection completes in the background.
    if (request.timeoutMs === 0) answer(-ERRNO.EINPROGRESS);
  }

  private receive(sid: number, timeoutMs: number, answer: (result: number) => void): void {
    const s = this.sockets.get(sid);
    if (!s) return answer(-ERRNO.ENOTCONN);
    const result = this.available(s);
    if (result !== undefined) return answer(result);
    if (timeoutMs === 0) return answer(-ERRNO.EAGAIN);
    const timer = timeoutMs === WAIT_FOREVER ? undefined : setTimeout(() => this.settle(s, -ERRNO.ETIMEDOUT), timeoutMs);
    s.waiter = { timer, answer };
  }

  /**
   * What a receive gets now: a byte count (the bytes are in the shared buffer), 0 at the
   * end of the stream, a negative errno, or undefined (nothing yet: wait).
   */
  private available(s: LabSocket): number | undefined {
    if (s.buffered > 0) return this.take(s);
    if (s.error) return -s.error;
    if (s.ended) return 0;
    return undefined;
  }

  /** Answers a waiting receive if it can be answered now (or with `forced`). */
  private settle(s: LabSocket, forced?: number): void {
    const waiter = s.waiter;
    if (!waiter) return;
    const result = forced ?? this.available(s);
    if (result === undefined) return;
    if (waiter.timer) clearTimeout(waiter.timer);
    s.waiter = undefined;
    waiter.answer(result);
  }

  /** Moves up to DATA_BYTES buffered bytes into the shared buffer. */
  private take(s: LabSocket): number {
    let n = 0;
    while (n < DATA_BYTES && s.chunks.length > 0) {
      const chunk = s.chunks[0] as Buffer;
      const k = Math.min(chunk.length, DATA_BYTES - n);
      this.data.set(chunk.subarray(0, k), n);
      n += k;
      if (k === chunk.length) s.chunks.shift();
      else s.chunks[0] = chunk.subarray(k);
    }
    s.buffered -= n;
    if (s.paused && s.buffered < HIGH_WATER / 2) {
      s.paused = false;
      s.socket.resume();
    }
    return n;
  }

  /** POLLIN when a read would not block (data, end or error); the worker knows the rest. */
  private poll(sid: number): number {
    const s = this.sockets.get(sid);
    return s && (s.buffered > 0 || s.ended || s.error) ? POLLIN : 0;
  }

  private lookup(host: string, answer: (result: number) => void): void {
    dns.lookup(host, { family: 4 }, (error, address) => {
      if (error || !address) return answer(-1);
      const bytes = Buffer.from(address, 'latin1');
      this.data.set(bytes, 0);
      answer(bytes.length);
    });
  }
}

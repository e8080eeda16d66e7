/**
 * One RESP2 connection over one TCP socket, with exact request/reply bookkeeping.
 *
 * Virtual boards use this instead of ioredis because they must behave like the
 * MicroPython client on a real board: ioredis silently resends commands after a
 * reconnect, which breaks at-most-once execution. Here nothing is ever resent and there
 * is no reconnection: when the socket goes, every unanswered request is rejected with a
 * RespConnectionClosedError that says whether it may have reached the server, and the
 * caller decides what to do. Kept small (one socket, one parser, one queue, no timers)
 * because tests run thousands of these in one process. Never prints.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { RespError, RespParser, RespProtocolError, encodeCommand, encodeCommands, type RespArg, type RespParserOptions, type RespValue } from './resp-codec.js';

export interface RespConnectOptions {
  host: string;
  port: number;
  /** Give up connecting after this long (default 10 s). */
  connectTimeoutMs?: number;
  /** Disable Nagle so small request/reply exchanges are not delayed (default true). */
  noDelay?: boolean;
  /** Limits for the reply parser. */
  parser?: RespParserOptions;
}

/** TCP connect failed or timed out. */
export class RespConnectError extends Error {
  override readonly name = 'RespConnectError';
  constructor(
    readonly host: string,
    readonly port: number,
    readonly timedOut: boolean,
    options?: { cause?: unknown },
  ) {
    super(timedOut ? `connect to ${host}:${port} timed out` : `connect to ${host}:${port} failed`, options);
  }
}

/** The connection closed (or was already closed) before this request was answered. */
export class RespConnectionClosedError extends Error {
  override readonly name = 'RespConnectionClosedError';
  constructor(
    /** Requests on this connection still waiting for a reply when it closed. */
    readonly unanswered: number,
    /**
     * Whether this request's bytes were handed to the socket. `false` means it certainly
     * never reached the server; `true` means it may or may not have been executed.
     */
    readonly requestWritten: boolean,
    /** For a pipeline: the replies that did arrive, in order, before the close. */
    readonly received: RespValue[],
    options?: { cause?: unknown },
  ) {
    super(`redis connection closed with ${unanswered} request(s) unanswered`, options);
  }
}

/** The server sent a reply nobody asked for; request/reply pairing is lost. */
export class RespUnexpectedReplyError extends Error {
  override readonly name = 'RespUnexpectedReplyError';
  constructor(readonly reply: RespValue) {
    super('redis sent a reply with no request waiting for it');
  }
}

/** One queued request: a call (one reply) or a pipeline / raw write (n replies). */
interface Pending {
  expected: number;
  /** null for `call`: resolve with the single reply, reject on an error reply. */
  results: RespValue[] | null;
  written: boolean;
  resolve: (value: any) => void;
  reject: (error: Error) => void;
}

type State = 'open' | 'closing' | 'closed';

export interface RespConnection {
  /** Emitted once, after every pending request was rejected; `cause` says why, if known. */
  on(event: 'close', listener: (cause: Error | undefined) => void): this;
  once(event: 'close', listener: (cause: Error | undefined) => void): this;
}

export class RespConnection extends EventEmitter {
  private readonly parser: RespParser;
  /** FIFO of requests awaiting replies; `head` avoids O(n) Array#shift. */
  private queue: Pending[] = [];
  private head = 0;
  private unansweredCount = 0;
  /** Bytes held back while the socket asks us to wait for 'drain' (kept in order). */
  private outbox: Buffer[] = [];
  private outboxPending: Pending[] = [];
  private state: State = 'open';
  /** The socket holds this tick's writes until process.nextTick (see send). */
  private corked = false;
  private cause: Error | undefined;

  /** Connect; resolves once TCP is established (no command is sent). */
  static connect(options: RespConnectOptions): Promise<RespConnection> {
    const { host, port, connectTimeoutMs = 10_000, noDelay = true } = options;
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port });
      socket.setNoDelay(noDelay);
      const finish = (error: RespConnectError | null): void => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        socket.removeListener('connect', onConnect);
        if (error) {
          socket.destroy();
          reject(error);
        } else resolve(new RespConnection(socket, options.parser));
      };
      const onError = (err: Error): void => finish(new RespConnectError(host, port, false, { cause: err }));
      const onConnect = (): void => finish(null);
      const timer = setTimeout(() => finish(new RespConnectError(host, port, true)), connectTimeoutMs);
      socket.once('error', onError);
      socket.once('connect', onConnect);
    });
  }

  private constructor(
    private readonly socket: net.Socket,
    parserOptions?: RespParserOptions,
  ) {
    super();
    this.parser = new RespParser(parserOptions);
    socket.on('data', this.onData);
    socket.on('drain', this.onDrain);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  /** Requests sent (or queued to send) that have no reply yet. */
  get pendingReplies(): number {
    return this.unansweredCount;
  }

  /** False once close()/destroy() was called or the socket went away. */
  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** Send one command; resolves with its reply, rejects with RespError for an error reply. */
  call(...args: RespArg[]): Promise<RespValue> {
    let bytes: Buffer;
    try {
      bytes = encodeCommand(args);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => this.send(bytes, { expected: 1, results: null, written: false, resolve, reject }));
  }

  /**
   * Send several commands in one write; resolves with all replies in order. Error
   * replies are returned as RespError values, so one failing command does not hide the
   * others' results.
   */
  pipeline(commands: ReadonlyArray<readonly RespArg[]>): Promise<RespValue[]> {
    if (commands.length === 0) return Promise.resolve([]);
    let bytes: Buffer;
    try {
      bytes = encodeCommands(commands);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => this.send(bytes, { expected: commands.length, results: [], written: false, resolve, reject }));
  }

  /**
   * Write bytes as they are (tests that send garbage or hand-made frames). The caller
   * says how many replies those bytes produce so the FIFO stays paired; they are
   * returned like a pipeline's. With 0 the promise resolves once the bytes are queued.
   */
  writeRaw(bytes: Buffer, expectedReplies = 0): Promise<RespValue[]> {
    return new Promise((resolve, reject) => {
      const pending: Pending = { expected: expectedReplies, results: [], written: false, resolve, reject };
      this.send(bytes, pending);
      if (expectedReplies === 0 && this.state === 'open') resolve([]);
    });
  }

  /**
   * Graceful end: already accepted requests are still written, then FIN is sent. Replies
   * the server sends before closing are delivered; the rest reject. Resolves on 'close'.
   */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.once('close', () => resolve()));
    if (this.state === 'open') {
      this.state = 'closing';
      // Bypass backpressure: Node buffers these and flushes them before the FIN.
      this.flushOutbox();
      this.socket.end();
    }
    return closed;
  }

  /** Drop the socket now; pending requests reject (on the 'close' event, asynchronously). */
  destroy(cause?: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closing';
    this.cause ??= cause;
    this.socket.destroy();
  }

  private send(bytes: Buffer, pending: Pending): void {
    if (this.state !== 'open') {
      pending.reject(new RespConnectionClosedError(this.unansweredCount, false, [], { cause: this.cause }));
      return;
    }
    if (pending.expected > 0) {
      this.queue.push(pending);
      this.unansweredCount += pending.expected;
    }
    // Once anything waits in the outbox, later bytes must wait behind it to keep order.
    if (this.outbox.length > 0 || this.socket.writableNeedDrain) {
      this.outbox.push(bytes);
      this.outboxPending.push(pending);
      return;
    }
    pending.written = true;
    // Requests made in one tick leave in one write: a board's output, result and next wait
    // are one syscall and one wake-up of Redis, not three (a broadcast is 10,000 of them).
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(bytes);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  /** Write everything held back as one buffer (fewer syscalls than one write each). */
  private flushOutbox(): void {
    if (this.outbox.length === 0) return;
    const bytes = this.outbox.length === 1 ? (this.outbox[0] as Buffer) : Buffer.concat(this.outbox);
    for (const pending of this.outboxPending) pending.written = true;
    this.outbox = [];
    this.outboxPending = [];
    this.socket.write(bytes);
  }

  private readonly onDrain = (): void => {
    if (this.state === 'open') this.flushOutbox();
  };

  private readonly onData = (chunk: Buffer): void => {
    let replies: RespValue[];
    let failure: Error | undefined;
    try {
      replies = this.parser.push(chunk);
    } catch (err) {
      // Replies completed before the garbage still belong to their requests.
      replies = err instanceof RespProtocolError ? err.replies : [];
      failure = err instanceof Error ? err : new Error(String(err));
    }
    for (const reply of replies) {
      if (!this.deliver(reply)) {
        failure = new RespUnexpectedReplyError(reply);
        break;
      }
    }
    if (failure) this.destroy(failure);
  };

  /** Hand one reply to the oldest waiting request; false if nobody was waiting. */
  private deliver(reply: RespValue): boolean {
    const pending = this.queue[this.head];
    if (!pending) return false;
    this.unansweredCount--;
    if (pending.results === null) {
      this.dequeue();
      if (reply instanceof RespError) pending.reject(reply);
      else pending.resolve(reply);
      return true;
    }
    pending.results.push(reply);
    if (pending.results.length === pending.expected) {
      this.dequeue();
      pending.resolve(pending.results);
    }
    return true;
  }

  private dequeue(): void {
    this.queue[this.head++] = undefined as unknown as Pending;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      // Compact now and then so a connection that never fully drains does not grow forever.
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private readonly onError = (err: Error): void => {
    // 'close' always follows; remember the first reason for it.
    this.cause ??= err;
  };

  private readonly onClose = (): void => {
    this.state = 'closed';
    const unanswered = this.unansweredCount;
    const queue = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    this.unansweredCount = 0;
    this.outbox = [];
    this.outboxPending = [];
    for (const pending of queue) {
      pending.reject(new RespConnectionClosedError(unanswered, pending.written, pending.results ?? [], { cause: this.cause }));
    }
    this.emit('close', this.cause);
  };
}

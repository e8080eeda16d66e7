/**
 * A serial port over TCP (RFC 2217, Telnet COM-PORT-OPTION): `rfc2217://host:port`, as
 * served by ser2net, esptool's esp_rfc2217_server, pyserial's rfc2217_server or the lab's
 * Rfc2217Link. It carries data, the baud rate and the DTR/RTS lines, so reset sequences
 * reach a board on another computer (a Raspberry Pi next to the boards) or in another
 * process. `Rfc2217Port` has the shape of serialport's SerialPort that the rest of
 * manager/usb uses (`NodeSerialPort`); `openNodeSerialPort` returns one for such a URL.
 *
 * Wire format (RFC 854/855/856/2217): data with 255 (IAC) doubled; `IAC WILL|WONT|DO|DONT
 * <option>`; `IAC SB 44 <command> <value> IAC SE`, 255 in the value doubled too. The server
 * acknowledges every command with command + 100 and the value it applied.
 *
 * Behaviour, as serialport's SerialPort:
 * - open: connects, negotiates (WILL 44, WILL/DO BINARY, WILL/DO SGA), then sets the baud
 *   rate, data size, parity, stop size, flow control and asserts DTR and RTS (what an OS
 *   does when it opens a tty, and what pyserial's RFC 2217 client sends), and resolves once
 *   the server acknowledged all of it;
 * - set(): flags not given take serialport's defaults (dtr and rts asserted, brk off); only
 *   lines that change are sent, one command each (RFC 2217 cannot change two lines at
 *   once, so the far side passes through an intermediate state), then BREAK. Order: DTR
 *   before RTS — esptool's ClassicReset order, which esptool uses on rfc2217:// ports —
 *   except when both lines drop: then RTS before DTR. On the auto-reset circuit of ESP
 *   boards (and on boards wired DTR→IO0, RTS→EN) RTS asserted alone holds EN low, so
 *   (on,on) → (off,off) via (off,on) would pulse a reset; via (on,off) only IO0 moves,
 *   which the chip ignores while EN stays high. The callback runs once the server
 *   acknowledged every command. Bytes written before a set() reach the server before it
 *   (one TCP stream);
 * - drain(): everything written was handed to the operating system's socket (a network
 *   port cannot know when the far UART has sent it, unlike tcdrain);
 * - get(): CTS/DSR/DCD from the server's NOTIFY-MODEMSTATE, false until it sends one;
 * - the connection closing without close() is the device going away: 'close' is emitted
 *   with an Rfc2217DisconnectedError (`disconnected: true`, as serialport on unplug).
 * Not implemented: FLOWCONTROL-SUSPEND/RESUME from the server (ignored), the Telnet NVT
 * line rules for a server that refuses BINARY (data is passed as is), 'error' events (every
 * failure goes to a callback or to 'close').
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { WebSerialOpenOptions } from './web-serial-port.js';
import {
  baudBytes,
  COM_PORT,
  CONTROL,
  encodeComPort,
  escapeIac,
  MODEM,
  PARITY,
  readBaud,
  TELNET,
  TELNET_OPTION,
  TelnetDecoder,
  TelnetNegotiation,
} from './rfc2217-codec.js';

export class Rfc2217Error extends Error {
  override name = 'Rfc2217Error';
}
/** The server closed the connection: the device went away (serialport's DisconnectedError). */
export class Rfc2217DisconnectedError extends Rfc2217Error {
  override name = 'Rfc2217DisconnectedError';
  readonly disconnected = true;
}

export interface Rfc2217Address {
  host: string;
  port: number;
}

export function isRfc2217Url(path: string): boolean {
  return /^rfc2217:\/\//i.test(path);
}

/** `rfc2217://host:port` (IPv6 as `[::1]`); query and path are ignored. */
export function parseRfc2217Url(url: string): Rfc2217Address {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Rfc2217Error(`not an RFC 2217 address: ${url} (expected rfc2217://host:port)`);
  }
  const port = Number(parsed.port);
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  if (parsed.protocol !== 'rfc2217:' || !host || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Rfc2217Error(`not an RFC 2217 address: ${url} (expected rfc2217://host:port)`);
  }
  return { host, port };
}

/** `host:port` as people write it (IPv6 in brackets). */
export function formatRfc2217Address({ host, port }: Rfc2217Address): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export interface Rfc2217OpenOptions extends WebSerialOpenOptions {
  /** How long connecting and negotiating may take (default 5 s). */
  timeoutMs?: number;
  /** How long the server may take to acknowledge set()/update() (default 10 s). */
  ackTimeoutMs?: number;
}

type Callback = (error?: Error | null) => void;
interface PendingAck {
  command: number;
  resolve: (value: Buffer) => void;
  reject: (error: Error) => void;
  timer?: NodeJS.Timeout;
}

const COMMAND_NAMES = ['SIGNATURE', 'SET-BAUDRATE', 'SET-DATASIZE', 'SET-PARITY', 'SET-STOPSIZE', 'SET-CONTROL'];
/** What arrives while nobody listens for 'data' is kept up to this much (a tty buffer's worth). */
const HELD_LIMIT = 64 * 1024;

export class Rfc2217Port extends EventEmitter {
  readonly path: string;
  readonly address: Rfc2217Address;
  private readonly options: Rfc2217OpenOptions;
  private readonly socket: net.Socket;
  private readonly decoder = new TelnetDecoder();
  private readonly negotiation: TelnetNegotiation;
  private state: 'opening' | 'open' | 'closing' | 'closed' = 'opening';
  private readonly acks: PendingAck[] = [];
  private lines = { dtr: true, rts: true, brk: false };
  private modem = { cts: false, dsr: false, dcd: false };
  private baud: number;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private flushScheduled = false;
  private writesInFlight = 0;
  private drainWaiters: Callback[] = [];
  private closeCallbacks: Callback[] = [];
  private socketError: Error | undefined;
  private closeTimer: NodeJS.Timeout | undefined;

  /** Connects to the server at `path` (rfc2217://host:port) and configures the port. */
  static open(path: string, options: Rfc2217OpenOptions): Promise<Rfc2217Port> {
    return new Rfc2217Port(path, parseRfc2217Url(path), options).connect();
  }

  private constructor(path: string, address: Rfc2217Address, options: Rfc2217OpenOptions) {
    super();
    this.path = path;
    this.address = address;
    this.options = options;
    this.baud = options.baudRate;
    this.socket = new net.Socket();
    this.negotiation = new TelnetNegotiation(
      { local: [TELNET_OPTION.BINARY, TELNET_OPTION.SGA, TELNET_OPTION.COM_PORT], remote: [TELNET_OPTION.BINARY, TELNET_OPTION.SGA] },
      (bytes) => this.socket.write(bytes),
    );
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** The baud rate the server last acknowledged. */
  get baudRate(): number {
    return this.baud;
  }

  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    super.on(event, listener);
    if (event === 'data' && this.held.length > 0) this.scheduleFlush();
    return this;
  }

  override addListener(event: string | symbol, listener: (...args: any[]) => void): this {
    return this.on(event, listener);
  }

  write(data: Buffer, callback?: Callback): boolean {
    if (this.state !== 'open') {
      this.notOpen(callback);
      return false;
    }
    this.writesInFlight++;
    return this.socket.write(escapeIac(data), (error) => {
      this.writesInFlight--;
      callback?.(error ? this.lostError(error) : null);
      if (this.writesInFlight === 0) this.settleDrain(null);
    });
  }

  drain(callback?: Callback): void {
    if (this.state !== 'open') return this.notOpen(callback);
    if (this.writesInFlight === 0) process.nextTick(() => callback?.(null));
    else this.drainWaiters.push(callback ?? (() => undefined));
  }

  set(options: { dtr?: boolean; rts?: boolean; brk?: boolean }, callback?: Callback): void {
    if (this.state !== 'open') return this.notOpen(callback);
    const next = { dtr: options.dtr ?? true, rts: options.rts ?? true, brk: options.brk ?? false };
    const dtr = next.dtr !== this.lines.dtr ? [next.dtr ? CONTROL.DTR_ON : CONTROL.DTR_OFF] : [];
    const rts = next.rts !== this.lines.rts ? [next.rts ? CONTROL.RTS_ON : CONTROL.RTS_OFF] : [];
    // DTR first; RTS first when both drop, so EN is never pulsed low on the way to idle (see above).
    const bothDrop = dtr.length > 0 && rts.length > 0 && !next.dtr && !next.rts;
    const values: number[] = bothDrop ? [...rts, ...dtr] : [...dtr, ...rts];
    if (next.brk !== this.lines.brk) values.push(next.brk ? CONTROL.BREAK_ON : CONTROL.BREAK_OFF);
    this.lines = next;
    Promise.all(values.map((value) => this.command(COM_PORT.SET_CONTROL, value, this.options.ackTimeoutMs ?? 10_000))).then(
      () => callback?.(null),
      (error: Error) => callback?.(error),
    );
  }

  get(callback: (error: Error | null, status?: { cts: boolean; dsr: boolean; dcd: boolean }) => void): void {
    const status = { ...this.modem };
    process.nextTick(() => (this.state === 'open' ? callback(null, status) : callback(new Rfc2217Error('Port is not open'))));
  }

  update(options: { baudRate: number }, callback?: Callback): void {
    const { baudRate } = options;
    if (this.state !== 'open' || !Number.isInteger(baudRate) || baudRate <= 0 || baudRate > 0xffffffff) {
      const error = new Rfc2217Error(this.state !== 'open' ? 'Port is not open' : `invalid baud rate ${baudRate}`);
      process.nextTick(() => callback?.(error));
      return;
    }
    this.command(COM_PORT.SET_BAUDRATE, baudBytes(baudRate), this.options.ackTimeoutMs ?? 10_000).then(
      (value) => {
        const applied = readBaud(value);
        if (applied && applied !== baudRate) {
          this.baud = applied;
          callback?.(new Rfc2217Error(`the RFC 2217 server at ${this.where} set ${applied} baud instead of ${baudRate}`));
          return;
        }
        this.baud = baudRate;
        callback?.(null);
      },
      (error: Error) => callback?.(error),
    );
  }

  close(callback?: Callback): void {
    if (this.state !== 'open') return this.notOpen(callback);
    this.state = 'closing';
    if (callback) this.closeCallbacks.push(callback);
    // FIN after what was written; a server that never closes its side is cut off.
    this.socket.end();
    this.closeTimer = setTimeout(() => this.socket.destroy(), 2_000);
  }

  /** serialport's answer to a call on a port that is not open (on the next tick, as it does). */
  private notOpen(callback?: Callback): void {
    process.nextTick(() => callback?.(new Rfc2217Error('Port is not open')));
  }

  private get where(): string {
    return formatRfc2217Address(this.address);
  }

  private connect(): Promise<Rfc2217Port> {
    const { host, port } = this.address;
    return new Promise((resolve, reject) => {
      let connected = false;
      const fail = (error: Error) => {
        if (this.state !== 'opening') return;
        this.state = 'closed';
        clearTimeout(timer);
        this.rejectAcks(error);
        this.socket.destroy();
        reject(error);
      };
      const timer = setTimeout(() => fail(new Rfc2217Error(`no RFC 2217 server answers at ${this.where}`)), this.options.timeoutMs ?? 5_000);
      this.socket.on('error', (error) => (this.socketError = error));
      this.socket.on('close', () => {
        if (this.state === 'opening') {
          const detail = this.socketError ? ` (${(this.socketError as NodeJS.ErrnoException).code ?? this.socketError.message})` : '';
          fail(
            connected
              ? new Rfc2217Error(`the RFC 2217 server at ${this.where} closed the connection (is another program using the port?)`)
              : new Rfc2217Error(`no RFC 2217 server answers at ${this.where}${detail}`),
          );
        } else if (this.state !== 'closed') this.onClosed();
      });
      this.socket.on('data', (chunk: Buffer) => this.onSocketData(chunk, () => configure()));
      this.socket.connect({ host, port }, () => {
        connected = true;
        this.socket.setNoDelay(true);
        this.negotiation.request(TELNET.WILL, TELNET_OPTION.COM_PORT);
        this.negotiation.request(TELNET.WILL, TELNET_OPTION.BINARY);
        this.negotiation.request(TELNET.DO, TELNET_OPTION.BINARY);
        this.negotiation.request(TELNET.WILL, TELNET_OPTION.SGA);
        this.negotiation.request(TELNET.DO, TELNET_OPTION.SGA);
      });
      let configuring = false;
      const configure = () => {
        if (configuring || this.state !== 'opening') return;
        if (!this.negotiation.local.has(TELNET_OPTION.COM_PORT)) {
          fail(new Rfc2217Error(`${this.where} is a Telnet server without RFC 2217 serial port control`));
          return;
        }
        configuring = true;
        const o = this.options;
        const noTimeout = 0;
        Promise.all([
          this.command(COM_PORT.SET_BAUDRATE, baudBytes(o.baudRate), noTimeout),
          this.command(COM_PORT.SET_DATASIZE, o.dataBits ?? 8, noTimeout),
          this.command(COM_PORT.SET_PARITY, PARITY[o.parity ?? 'none'], noTimeout),
          this.command(COM_PORT.SET_STOPSIZE, o.stopBits ?? 1, noTimeout),
          this.command(COM_PORT.SET_CONTROL, o.flowControl === 'hardware' ? CONTROL.HARDWARE_FLOW : CONTROL.NO_FLOW, noTimeout),
          this.command(COM_PORT.SET_CONTROL, CONTROL.DTR_ON, noTimeout),
          this.command(COM_PORT.SET_CONTROL, CONTROL.RTS_ON, noTimeout),
        ]).then(() => {
          if (this.state !== 'opening') return;
          clearTimeout(timer);
          this.state = 'open';
          resolve(this);
        }, fail);
      };
    });
  }

  /** `onNegotiated`: called after a DO/DONT for COM-PORT-OPTION while opening. */
  private onSocketData(chunk: Buffer, onNegotiated: () => void): void {
    for (const event of this.decoder.push(chunk)) {
      if (event.kind === 'data') this.deliver(event.data);
      else if (event.kind === 'negotiate') {
        this.negotiation.handle(event.verb, event.option);
        if (event.option === TELNET_OPTION.COM_PORT && (event.verb === TELNET.DO || event.verb === TELNET.DONT)) onNegotiated();
      } else if (event.option === TELNET_OPTION.COM_PORT && event.payload.length > 0) {
        this.onComPort(event.payload[0]!, event.payload.subarray(1));
      }
    }
  }

  private onComPort(code: number, value: Buffer): void {
    if (code === COM_PORT.SERVER_OFFSET + COM_PORT.NOTIFY_MODEMSTATE && value.length >= 1) {
      const bits = value[0]!;
      this.modem = { cts: (bits & MODEM.CTS) !== 0, dsr: (bits & MODEM.DSR) !== 0, dcd: (bits & MODEM.DCD) !== 0 };
      return;
    }
    if (code < COM_PORT.SERVER_OFFSET) return;
    const index = this.acks.findIndex((ack) => ack.command === code - COM_PORT.SERVER_OFFSET);
    if (index === -1) return; // unsolicited (NOTIFY-LINESTATE, …)
    const [ack] = this.acks.splice(index, 1);
    clearTimeout(ack!.timer);
    ack!.resolve(value);
  }

  /** Sends a COM-PORT command; resolves with the value the server acknowledged. */
  private command(command: number, value: Uint8Array | number, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const ack: PendingAck = { command, resolve, reject };
      if (timeoutMs > 0) {
        ack.timer = setTimeout(() => {
          const index = this.acks.indexOf(ack);
          if (index !== -1) this.acks.splice(index, 1);
          reject(new Rfc2217Error(`the RFC 2217 server at ${this.where} did not acknowledge ${COMMAND_NAMES[command] ?? command} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.acks.push(ack);
      this.socket.write(encodeComPort(command, value));
    });
  }

  private rejectAcks(error: Error): void {
    for (const ack of this.acks.splice(0)) {
      clearTimeout(ack.timer);
      ack.reject(error);
    }
  }

  private deliver(data: Buffer): void {
    if (this.held.length === 0 && this.listenerCount('data') > 0) {
      this.emit('data', data);
      return;
    }
    // Nobody listens yet (or older bytes wait): keep them in order, like a tty buffer.
    this.held.push(data);
    this.heldBytes += data.length;
    while (this.heldBytes > HELD_LIMIT && this.held.length > 1) this.heldBytes -= this.held.shift()!.length;
    if (this.listenerCount('data') > 0) this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      while (this.held.length > 0 && this.listenerCount('data') > 0) {
        const data = this.held.shift()!;
        this.heldBytes -= data.length;
        this.emit('data', data);
      }
    });
  }

  private lostError(cause?: Error): Rfc2217DisconnectedError {
    return new Rfc2217DisconnectedError(`the RFC 2217 server at ${this.where} closed the connection${cause ? ` (${cause.message})` : ''}`, { cause });
  }

  private settleDrain(error: Error | null): void {
    for (const waiter of this.drainWaiters.splice(0)) waiter(error);
  }

  private onClosed(): void {
    const closing = this.state === 'closing';
    this.state = 'closed';
    clearTimeout(this.closeTimer);
    const error = closing ? new Rfc2217Error('the port was closed') : this.lostError(this.socketError);
    this.rejectAcks(error);
    this.settleDrain(error);
    if (closing) {
      this.emit('close', null);
      for (const callback of this.closeCallbacks.splice(0)) callback(null);
    } else {
      this.emit('close', error);
    }
  }
}

/**
 * A simulated serial adapter WITH modem lines, served as RFC 2217 (Telnet COM-PORT-OPTION)
 * on a loopback TCP port: the host opens `rfc2217://127.0.0.1:<port>` (our Rfc2217Port,
 * esptool's `--port rfc2217://…`, pyserial), the simulator uses it as any SerialLink, and
 * DTR/RTS changes reach the simulator as 'lines' events — which a pty cannot carry. A
 * second process (the `mbm` CLI flashing a board `npm run lab:esp8266` simulates) can
 * reach it too.
 *
 * Like a USB adapter, it serves one host at a time: a second connection while one is open
 * is closed at once (a device opened twice). Bytes are paced at `lineRate` both ways
 * (PacedLine, as PtyLink); SET-BAUDRATE is recorded as `hostBaud` and acknowledged but
 * does not change `lineRate` — the chip side decides its rate with setBaud().
 *
 * Modem lines (true = asserted, as serialport's set() takes them):
 * - no host: both de-asserted (nobody holds the port open);
 * - a host connects: both asserted at once. An OS asserts DTR and RTS when it opens a tty
 *   (Linux raises them in tty_port_open when the baud rate is not 0; serialport opens with
 *   HUPCL and never lowers them; pyserial and our Rfc2217Port then send DTR ON and RTS ON),
 *   and pyserial's rfc2217_server sets both when a client connects;
 * - the host disconnects: both de-asserted. Closing a tty with HUPCL (serialport's default,
 *   and Linux's) drops DTR and RTS; ser2net closes the device, and pyserial's and esptool's
 *   RFC 2217 servers set dtr = rts = False after a client leaves.
 * close() is the adapter unplugged: the host's connection is cut and only 'close' is emitted.
 * 'lines' is emitted (with the full new state) only when a line changes, synchronously
 * when the command is parsed: before any byte that follows it in the stream is delivered.
 * Bytes sent before it that are still "on the wire" (paced, not yet delivered) are
 * delivered after it unless the device discards them (a chip held in reset loses them).
 *
 * Shortcuts: data size, parity, stop size and flow control are acknowledged and ignored;
 * BREAK is remembered only; no NOTIFY-LINESTATE/MODEMSTATE is sent (CTS/DSR/DCD read as
 * false); FLOWCONTROL-SUSPEND/RESUME are acknowledged and ignored; output the simulator
 * sends while no host is connected takes its line time and is lost.
 */
import net from 'node:net';
import {
  baudBytes,
  COM_PORT,
  CONTROL,
  encodeComPort,
  escapeIac,
  readBaud,
  TELNET_OPTION,
  TelnetDecoder,
  TelnetNegotiation,
} from '../../electron/manager/usb/rfc2217-codec.js';
import { PacedLink } from './paced-line.js';
import type { SerialLink } from './pty-link.js';

export interface Rfc2217LinkOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** TCP port (default 0: any free port). */
  port?: number;
  /** Line rate in baud (default 115200); 0 disables pacing. */
  baud?: number;
}

export interface ModemLines {
  dtr: boolean;
  rts: boolean;
}

const SIGNATURE = 'Cloudmanager lab RFC 2217 link';

interface Host {
  socket: net.Socket;
  decoder: TelnetDecoder;
  negotiation: TelnetNegotiation;
}

export class Rfc2217Link extends PacedLink implements SerialLink {
  readonly path: string;
  private readonly server: net.Server;
  private host: Host | null = null;
  private lines: ModemLines = { dtr: false, rts: false };
  private breakOn = false;
  private flowControl: number = CONTROL.NO_FLOW;
  private requestedBaud: number | undefined;
  private readonly settings = new Map<number, number>();
  private opened = 0;

  private constructor(server: net.Server, pathName: string, baud: number) {
    super(baud);
    this.server = server;
    this.path = pathName;
    server.on('connection', (socket) => this.accept(socket));
  }

  static async open(options: Rfc2217LinkOptions = {}): Promise<Rfc2217Link> {
    const host = options.host ?? '127.0.0.1';
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const { port } = server.address() as net.AddressInfo;
    return new Rfc2217Link(server, `rfc2217://${host.includes(':') ? `[${host}]` : host}:${port}`, options.baud ?? 115_200);
  }

  /** The rate the host last asked for with SET-BAUDRATE (undefined until it asks). */
  get hostBaud(): number | undefined {
    return this.requestedBaud;
  }

  /** The modem lines as the host drives them now. */
  get lineState(): ModemLines {
    return { ...this.lines };
  }

  get breakState(): boolean {
    return this.breakOn;
  }

  /** How many times a host has opened the port (connections accepted). */
  get opens(): number {
    return this.opened;
  }

  /** A host has the port open. */
  get connected(): boolean {
    return this.host !== null;
  }

  protected sendToHost(chunk: Buffer): void {
    this.host?.socket.write(escapeIac(chunk));
  }

  /** The adapter is unplugged: the host's connection is cut, the port stops listening. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.rx.stop();
    this.tx.stop();
    const host = this.host;
    this.host = null;
    host?.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.emit('close');
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => undefined); // a reset connection ends in 'close' below
    if (this.host || this.closed) {
      socket.destroy(); // in use: a device opened twice
      return;
    }
    socket.setNoDelay(true);
    const host: Host = {
      socket,
      decoder: new TelnetDecoder(),
      negotiation: new TelnetNegotiation(
        { local: [TELNET_OPTION.BINARY, TELNET_OPTION.SGA], remote: [TELNET_OPTION.BINARY, TELNET_OPTION.SGA, TELNET_OPTION.COM_PORT] },
        (bytes) => socket.write(bytes),
      ),
    };
    this.host = host;
    this.opened++;
    this.setLines({ dtr: true, rts: true }); // the host's OS opened the port
    socket.on('data', (chunk: Buffer) => {
      if (this.host === host) this.onHostBytes(host, chunk);
    });
    socket.on('close', () => {
      if (this.host !== host) return;
      this.host = null;
      this.breakOn = false;
      if (!this.closed) this.setLines({ dtr: false, rts: false }); // HUPCL
    });
  }

  private onHostBytes(host: Host, chunk: Buffer): void {
    for (const event of host.decoder.push(chunk)) {
      if (this.host !== host || this.closed) return;
      if (event.kind === 'data') this.rx.push(event.data);
      else if (event.kind === 'negotiate') host.negotiation.handle(event.verb, event.option);
      else if (event.option === TELNET_OPTION.COM_PORT && event.payload.length > 0) {
        this.onComPort(host, event.payload[0]!, event.payload.subarray(1));
      }
    }
  }

  /** Applies one COM-PORT command and acknowledges it with command + 100 and the value applied. */
  private onComPort(host: Host, command: number, value: Buffer): void {
    const ack = (applied: Uint8Array | number) => host.socket.write(encodeComPort(command + COM_PORT.SERVER_OFFSET, applied));
    switch (command) {
      case COM_PORT.SIGNATURE:
        if (value.length === 0) ack(Buffer.from(SIGNATURE, 'latin1'));
        return;
      case COM_PORT.SET_BAUDRATE: {
        const baud = readBaud(value);
        if (baud) this.requestedBaud = baud;
        ack(baudBytes(this.requestedBaud ?? this.baud));
        return;
      }
      case COM_PORT.SET_DATASIZE:
      case COM_PORT.SET_PARITY:
      case COM_PORT.SET_STOPSIZE: {
        const requested = value[0] ?? 0;
        if (requested !== 0) this.settings.set(command, requested);
        ack(this.settings.get(command) ?? (command === COM_PORT.SET_DATASIZE ? 8 : 1));
        return;
      }
      case COM_PORT.SET_CONTROL:
        ack(this.control(value[0] ?? CONTROL.REQUEST_FLOW));
        return;
      case COM_PORT.PURGE_DATA: {
        const which = value[0] ?? 0;
        if (which === 1 || which === 3) this.rx.discard(); // received from the host, not yet delivered
        if (which === 2 || which === 3) this.tx.discard(); // for the host, not yet sent
        ack(which);
        return;
      }
      default:
        ack(value); // masks, flow control suspend/resume: accepted, nothing to do
    }
  }

  /** One SET-CONTROL value; returns the value to acknowledge. */
  private control(value: number): number {
    switch (value) {
      case CONTROL.DTR_ON:
      case CONTROL.DTR_OFF:
        this.setLines({ dtr: value === CONTROL.DTR_ON, rts: this.lines.rts });
        return value;
      case CONTROL.RTS_ON:
      case CONTROL.RTS_OFF:
        this.setLines({ dtr: this.lines.dtr, rts: value === CONTROL.RTS_ON });
        return value;
      case CONTROL.REQUEST_DTR:
        return this.lines.dtr ? CONTROL.DTR_ON : CONTROL.DTR_OFF;
      case CONTROL.REQUEST_RTS:
        return this.lines.rts ? CONTROL.RTS_ON : CONTROL.RTS_OFF;
      case CONTROL.BREAK_ON:
      case CONTROL.BREAK_OFF:
        this.breakOn = value === CONTROL.BREAK_ON;
        return value;
      case CONTROL.REQUEST_BREAK:
        return this.breakOn ? CONTROL.BREAK_ON : CONTROL.BREAK_OFF;
      case CONTROL.REQUEST_FLOW:
        return this.flowControl;
      case CONTROL.NO_FLOW:
      case CONTROL.XON_XOFF:
      case CONTROL.HARDWARE_FLOW:
        this.flowControl = value;
        return value;
      default:
        return value; // inbound flow control (13-19): accepted, not modelled
    }
  }

  private setLines(next: ModemLines): void {
    if (next.dtr === this.lines.dtr && next.rts === this.lines.rts) return;
    this.lines = next;
    this.emit('lines', { ...next });
  }
}

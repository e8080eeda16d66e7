/**
 * A `serialport` port in the shape of a Web Serial `SerialPort`, for browser-first flashers
 * running in Node (esptool-js's Transport, esp-web-flasher's ESPLoader). They use:
 * `open({ baudRate, … })`, `close()`, `readable` / `writable` (web streams), `setSignals()`,
 * `getInfo()`, and — esptool-js only, when present — `setBaudRate()` to change the rate in
 * place instead of closing and reopening.
 *
 * Web Serial semantics kept here:
 * - `readable` / `writable` are null while closed; a cancelled readable or a closed
 *   writable is replaced by a fresh stream on the next access, and every `open()` starts
 *   with new streams (esp-web-flasher reopens the port to change the rate);
 * - losing the device errors both streams with a DOMException "NetworkError" and
 *   `readable` then stays null until the port is closed and opened again. Unlike Web
 *   Serial, `writable` does not turn null: every access returns a fresh stream that is
 *   already errored, so a flasher's next write fails at once with "The device has been
 *   lost." (esptool-js skips writes when `writable` is null and then waits out its read
 *   timeout) and a writer it never released cannot keep the port "locked" forever;
 * - `setSignals()` merges with the current state and sends ONE `set({ dtr, rts, brk })`, so
 *   a reset sequence never passes through intermediate line states.
 * A port that refuses DTR/RTS (a pty, some adapters without modem lines) is a port without
 * reset lines, not a failure: `setSignals()` resolves, `hasResetLines` becomes false and
 * 'reset-lines' is emitted, so the flasher can ask the user to press BOOT/RESET instead.
 */
import { EventEmitter } from 'node:events';
import { ReadableStream, WritableStream, type ReadableStreamDefaultController, type WritableStreamDefaultController } from 'node:stream/web';
import { SerialPort } from 'serialport';
import { silentLogger, type Logger } from '../log.js';
import { isRfc2217Url, Rfc2217Port } from './rfc2217-port.js';
import { readEndOfFileAsUnplugged } from './serial-hangup.js';

export interface WebSerialOpenOptions {
  baudRate: number;
  dataBits?: 7 | 8;
  stopBits?: 1 | 2;
  parity?: 'none' | 'even' | 'odd';
  bufferSize?: number;
  flowControl?: 'none' | 'hardware';
}

export interface WebSerialSignals {
  dataTerminalReady?: boolean;
  requestToSend?: boolean;
  break?: boolean;
}

export interface WebSerialInputSignals {
  dataCarrierDetect: boolean;
  clearToSend: boolean;
  ringIndicator: boolean;
  dataSetReady: boolean;
}

export interface WebSerialPortInfo {
  usbVendorId?: number;
  usbProductId?: number;
}

type Callback = (error?: Error | null) => void;

/** The part of serialport's SerialPort this adapter uses (tests may hand in their own). */
export interface NodeSerialPort {
  readonly isOpen: boolean;
  on(event: 'data' | 'close' | 'error', listener: (...args: any[]) => void): unknown;
  off(event: 'data' | 'close' | 'error', listener: (...args: any[]) => void): unknown;
  removeAllListeners(): unknown;
  write(data: Buffer, callback?: Callback): boolean;
  drain(callback?: Callback): void;
  close(callback?: Callback): void;
  set(options: { dtr?: boolean; rts?: boolean; brk?: boolean }, callback?: Callback): void;
  get(callback: (error: Error | null, status?: { cts: boolean; dsr: boolean; dcd: boolean }) => void): void;
  update(options: { baudRate: number }, callback?: Callback): void;
}

export type OpenNodeSerialPort = (path: string, options: WebSerialOpenOptions) => Promise<NodeSerialPort>;

export interface WebSerialPortOptions {
  path: string;
  /** USB ids reported by getInfo() (esptool-js picks its reset strategy from them). */
  vendorId?: number;
  productId?: number;
  logger?: Logger;
  /** Opens the underlying port (default: serialport's SerialPort). */
  openPort?: OpenNodeSerialPort;
}

export interface WebSerialPortEvents {
  /** Known from the first probe or setSignals(): can the host drive DTR/RTS? */
  'reset-lines': [available: boolean];
  /** The device went away while open (unplugged, or the pty closed). */
  disconnect: [];
}

/**
 * Opens a serialport SerialPort (8N1 unless told otherwise), or for `rfc2217://host:port` a
 * serial port over the network (Rfc2217Port); the one place ports are opened.
 */
export const openNodeSerialPort: OpenNodeSerialPort = (path, options) => {
  if (isRfc2217Url(path)) return Rfc2217Port.open(path, options);
  return new Promise((resolve, reject) => {
    const port = new SerialPort({
      path,
      baudRate: options.baudRate,
      dataBits: options.dataBits ?? 8,
      stopBits: options.stopBits ?? 1,
      parity: options.parity ?? 'none',
      rtscts: options.flowControl === 'hardware',
      autoOpen: false,
    });
    port.open((error) => {
      if (error) return reject(error);
      // Before anyone reads: a hung-up tty must end in 'close', not a spinning read.
      readEndOfFileAsUnplugged(port);
      resolve(port);
    });
  });
};

/** Closes a port opened by openNodeSerialPort; never rejects (a port already gone is closed). */
export function closeNodeSerialPort(port: NodeSerialPort): Promise<void> {
  return new Promise((resolve) => {
    if (!port.isOpen) resolve();
    else port.close(() => resolve());
  });
}

function callbackToPromise(run: (done: Callback) => void): Promise<void> {
  return new Promise((resolve, reject) => run((error) => (error ? reject(error) : resolve())));
}

const lost = () => new DOMException('The device has been lost.', 'NetworkError');
/** What arrives while no readable stream exists is kept up to this much (a tty buffer's worth). */
const PENDING_LIMIT = 64 * 1024;

export class WebSerialPort extends EventEmitter<WebSerialPortEvents> {
  readonly path: string;
  private readonly info: WebSerialPortInfo;
  private readonly log: Logger;
  private readonly openPort: OpenNodeSerialPort;
  private port: NodeSerialPort | null = null;
  private opening = false;
  private deviceLost = false;
  private readStream: ReadableStream<Uint8Array> | null = null;
  private readController: ReadableStreamDefaultController<Uint8Array> | null = null;
  private writeStream: WritableStream<Uint8Array> | null = null;
  private writeController: WritableStreamDefaultController | null = null;
  /** Bytes that arrived while no readable stream existed (the OS buffer, in Web Serial). */
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private signals = { dtr: true, rts: true, brk: false };
  private resetLines: boolean | undefined;
  private rate: number | undefined;

  constructor(options: WebSerialPortOptions) {
    super();
    this.path = options.path;
    this.info = { usbVendorId: options.vendorId, usbProductId: options.productId };
    this.log = options.logger ?? silentLogger;
    this.openPort = options.openPort ?? openNodeSerialPort;
  }

  get isOpen(): boolean {
    return this.port !== null;
  }

  /** The rate the port is open at (undefined while closed). */
  get baudRate(): number | undefined {
    return this.port ? this.rate : undefined;
  }

  /** The device went away while the port was open (close() it, then open again). */
  get lost(): boolean {
    return this.port !== null && this.deviceLost;
  }

  /** false: DTR/RTS cannot be driven (press BOOT/RESET by hand); undefined: not known yet. */
  get hasResetLines(): boolean | undefined {
    return this.resetLines;
  }

  get readable(): ReadableStream<Uint8Array> | null {
    if (!this.port || this.deviceLost) return this.readStream;
    if (!this.readStream) this.readStream = this.createReadable();
    return this.readStream;
  }

  get writable(): WritableStream<Uint8Array> | null {
    if (!this.port) return null;
    if (this.deviceLost) return new WritableStream<Uint8Array>({ start: (controller) => controller.error(lost()) });
    if (!this.writeStream) this.writeStream = this.createWritable();
    return this.writeStream;
  }

  getInfo(): WebSerialPortInfo {
    return { ...this.info };
  }

  async open(options: WebSerialOpenOptions): Promise<void> {
    if (this.port || this.opening) throw new DOMException('The port is already open.', 'InvalidStateError');
    if (!Number.isFinite(options.baudRate) || options.baudRate <= 0) throw new TypeError(`invalid baud rate ${options.baudRate}`);
    this.opening = true;
    try {
      const port = await this.openPort(this.path, options);
      this.port = port;
      this.rate = options.baudRate;
      this.deviceLost = false;
      this.pending = [];
      this.pendingBytes = 0;
      this.signals = { dtr: true, rts: true, brk: false }; // what the OS asserts on open
      port.on('data', (chunk: Buffer) => this.onData(port, chunk));
      port.on('close', (error?: Error | null) => {
        if (port === this.port && !this.deviceLost) this.onLost(error ?? undefined);
      });
      port.on('error', (error: Error) => this.log('warn', `serial port ${this.path}: ${error.message}`));
      this.log('debug', `opened ${this.path} at ${options.baudRate} baud`);
      if (this.resetLines === undefined) await this.probeResetLines(port);
    } catch (error) {
      this.log('warn', `could not open ${this.path}: ${error instanceof Error ? error.message : String(error)}`);
      throw error instanceof DOMException
        ? error
        : new DOMException(`Failed to open serial port: ${error instanceof Error ? error.message : String(error)}`, 'NetworkError');
    } finally {
      this.opening = false;
    }
  }

  async close(): Promise<void> {
    const port = this.port;
    if (!port) throw new DOMException('The port is already closed.', 'InvalidStateError');
    this.port = null;
    // Pending reads finish with done; a writer still holding the stream gets an error.
    try {
      this.readController?.close();
    } catch {
      // already closed or errored
    }
    try {
      this.writeController?.error(new DOMException('The port is closed.', 'InvalidStateError'));
    } catch {
      // already errored
    }
    this.readStream = null;
    this.readController = null;
    this.writeStream = null;
    this.writeController = null;
    this.pending = [];
    this.pendingBytes = 0;
    if (port.isOpen) {
      await callbackToPromise((done) => port.close(done)).catch((error: Error) => this.log('warn', `closing ${this.path}: ${error.message}`));
    }
    port.removeAllListeners();
    this.log('debug', `closed ${this.path}`);
  }

  /** Changes the line rate without closing the port (used by esptool-js when present). */
  async setBaudRate(baudRate: number): Promise<void> {
    const port = this.requirePort();
    await callbackToPromise((done) => port.update({ baudRate }, done));
    this.rate = baudRate;
    this.log('debug', `${this.path} now at ${baudRate} baud`);
  }

  async setSignals(signals: WebSerialSignals = {}): Promise<void> {
    const port = this.requirePort();
    const next = {
      dtr: signals.dataTerminalReady ?? this.signals.dtr,
      rts: signals.requestToSend ?? this.signals.rts,
      brk: signals.break ?? this.signals.brk,
    };
    if (this.resetLines === false) {
      this.signals = next; // nothing to drive; remember what was asked
      return;
    }
    try {
      await callbackToPromise((done) => port.set(next, done));
      this.signals = next;
      if (this.resetLines !== true) this.setResetLines(true);
    } catch (error) {
      if (!port.isOpen || this.deviceLost) throw lost();
      this.signals = next;
      this.log(
        'info',
        `${this.path} has no reset lines (DTR/RTS refused: ${error instanceof Error ? error.message : String(error)}); the board must be put into download mode by hand`,
      );
      this.setResetLines(false);
    }
  }

  async getSignals(): Promise<WebSerialInputSignals> {
    const port = this.requirePort();
    const status = await new Promise<{ cts: boolean; dsr: boolean; dcd: boolean } | undefined>((resolve) =>
      port.get((error, bits) => resolve(error ? undefined : bits)),
    );
    return { dataCarrierDetect: status?.dcd ?? false, clearToSend: status?.cts ?? false, ringIndicator: false, dataSetReady: status?.dsr ?? false };
  }

  /**
   * Reading the modem status (TIOCMGET) has no side effect on the board; a port that cannot
   * even report its lines (a pty) cannot drive them either.
   */
  private async probeResetLines(port: NodeSerialPort): Promise<void> {
    const readable = await new Promise<boolean>((resolve) => port.get((error) => resolve(!error)));
    if (!readable && port === this.port) {
      this.log('info', `${this.path} reports no modem lines: treating it as a port without reset lines`);
      this.setResetLines(false);
    }
  }

  private setResetLines(available: boolean): void {
    this.resetLines = available;
    this.emit('reset-lines', available);
  }

  private requirePort(): NodeSerialPort {
    if (!this.port) throw new DOMException('The port is closed.', 'InvalidStateError');
    if (this.deviceLost) throw lost();
    return this.port;
  }

  private onData(port: NodeSerialPort, chunk: Buffer): void {
    if (port !== this.port) return;
    const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength).slice();
    if (this.readController) {
      this.readController.enqueue(bytes);
      return;
    }
    // Nobody reads: keep what an OS tty buffer would, drop the oldest beyond that.
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    while (this.pendingBytes > PENDING_LIMIT && this.pending.length > 1) this.pendingBytes -= this.pending.shift()!.length;
  }

  private onLost(error?: Error): void {
    this.deviceLost = true;
    this.log('warn', `${this.path} disconnected${error ? `: ${error.message}` : ''}`);
    try {
      this.readController?.error(lost());
    } catch {
      // already closed
    }
    try {
      this.writeController?.error(lost());
    } catch {
      // already errored
    }
    this.readController = null;
    this.writeController = null;
    this.readStream = null;
    this.writeStream = null;
    this.emit('disconnect');
  }

  private createReadable(): ReadableStream<Uint8Array> {
    const stream: ReadableStream<Uint8Array> = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.readController = controller;
        for (const chunk of this.pending.splice(0)) controller.enqueue(chunk);
        this.pendingBytes = 0;
      },
      cancel: () => {
        // Web Serial drops what was buffered; the next access gets a new stream.
        if (this.readStream === stream) {
          this.readStream = null;
          this.readController = null;
        }
      },
    });
    return stream;
  }

  private createWritable(): WritableStream<Uint8Array> {
    const forget = () => {
      if (this.writeStream === stream) {
        this.writeStream = null;
        this.writeController = null;
      }
    };
    const stream: WritableStream<Uint8Array> = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.writeController = controller;
      },
      write: async (chunk) => {
        const port = this.port;
        if (!port || this.deviceLost) throw lost();
        await callbackToPromise((done) => port.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), done));
        await callbackToPromise((done) => port.drain(done));
      },
      close: forget,
      abort: forget,
    });
    return stream;
  }
}

/**
 * A terminal session on a board's serial port (its MicroPython REPL, or whatever the board
 * prints): bytes from the board are emitted as they arrive ('data', no line buffering), and
 * bytes typed or pasted by the user are queued and written in order, one slice at a time,
 * each slice handed to the OS before the next (a large paste is never dropped on the host,
 * nor piled up in the port's stream buffer).
 *
 * The session ends once, with a reason a person can read: when close() is called, or when
 * the device goes away (the board is unplugged: the port reports a read or write error and
 * serialport closes it). From that moment write() is a no-op and bytes still queued are
 * dropped; 'closed' is emitted (always asynchronously) once the port itself is closed, so a
 * listener may hand the port to someone else at once. close() resolves after 'closed'.
 *
 * What arrives is not buffered toward a slow consumer: whoever listens to 'data' (the
 * WebSocket bridge) bounds its own queue.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../log.js';
import { closeNodeSerialPort, openNodeSerialPort, type NodeSerialPort, type OpenNodeSerialPort } from './web-serial-port.js';

export interface SerialConsoleEvents {
  /** Bytes from the board, as they arrived. */
  data: [bytes: Buffer];
  /** The session ended (emitted once); `reason` is meant for the user. */
  closed: [reason: string];
}

export interface SerialConsoleOptions {
  /** Line rate (default 115200, MicroPython's REPL on the ESP8266). */
  baudRate?: number;
  log: Logger;
  /** Opens the port (default: openNodeSerialPort); tests may hand in their own. */
  openPort?: OpenNodeSerialPort;
}

/** Bytes handed to the port per write: small enough that close() never waits long. */
const WRITE_SLICE = 4096;

export class SerialConsole extends EventEmitter<SerialConsoleEvents> {
  private readonly queue: Buffer[] = [];
  private writing = false;
  private reason: string | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    private readonly port: NodeSerialPort,
    private readonly log: Logger,
  ) {
    super();
    port.on('data', this.onData);
    port.on('close', this.onPortClose);
    // serialport reports read/write failures here too; the 'close' that follows ends the session.
    port.on('error', this.onPortError);
  }

  /** Opens `path` at `baudRate` (default 115200, 8N1); rejects when the port cannot be opened. */
  static async open(path: string, options: SerialConsoleOptions): Promise<SerialConsole> {
    const baudRate = options.baudRate ?? 115_200;
    const port = await (options.openPort ?? openNodeSerialPort)(path, { baudRate });
    options.log('info', `serial console opened on ${path} at ${baudRate} baud`);
    const session = new SerialConsole(path, port, options.log);
    // The device may already have gone between the open and now.
    if (!port.isOpen) void session.finish(`${path} went away: was the board unplugged?`);
    return session;
  }

  /** True once the session has ended (see closeReason). */
  get isClosed(): boolean {
    return this.reason !== undefined;
  }

  /** Why the session ended (undefined while it is open). */
  get closeReason(): string | undefined {
    return this.reason;
  }

  /** Bytes queued and not yet handed to the port. */
  get pendingBytes(): number {
    return this.queue.reduce((sum, chunk) => sum + chunk.length, 0);
  }

  /** Queues bytes for the board; ignored once the session has ended. Never throws. */
  write(bytes: Buffer): void {
    if (this.reason !== undefined || bytes.length === 0) return;
    this.queue.push(Buffer.from(bytes)); // a copy: the caller may reuse its buffer
    this.pump();
  }

  /** Ends the session and closes the port; resolves once the port is closed. Idempotent. */
  close(): Promise<void> {
    return this.finish('the console was closed');
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.reason === undefined) this.emit('data', chunk);
  };

  private readonly onPortClose = (error?: Error | null): void => {
    if (this.reason !== undefined) return; // our own close()
    if (error?.message) this.log('warn', `serial console on ${this.path}: ${error.message}`);
    void this.finish(`${this.path} went away: was the board unplugged?`);
  };

  private readonly onPortError = (error: Error): void => {
    this.log('warn', `serial console on ${this.path}: ${error.message}`);
  };

  /** Hands the queue to the port one slice at a time, each once the previous one was written. */
  private pump(): void {
    if (this.writing || this.reason !== undefined || this.queue.length === 0) return;
    const head = this.queue[0]!;
    const slice = head.length <= WRITE_SLICE ? head : head.subarray(0, WRITE_SLICE);
    if (slice === head) this.queue.shift();
    else this.queue[0] = head.subarray(WRITE_SLICE);
    this.writing = true;
    try {
      this.port.write(slice, (error) => {
        this.writing = false;
        if (error) {
          // serialport closes a port whose write failed; 'close' ends the session with the reason.
          if (this.reason === undefined) this.log('warn', `serial console on ${this.path}: write failed: ${error.message}`);
          return;
        }
        this.pump();
      });
    } catch (error) {
      this.writing = false;
      void this.finish(`${this.path} could not be written to: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Ends the session once: stops writing, closes the port, then tells the listeners. */
  private finish(reason: string): Promise<void> {
    if (!this.closing) {
      this.reason = reason;
      this.queue.length = 0;
      this.closing = this.release(reason);
    }
    return this.closing;
  }

  private async release(reason: string): Promise<void> {
    await closeNodeSerialPort(this.port);
    this.port.off('data', this.onData);
    this.port.off('close', this.onPortClose);
    // The 'error' listener stays: a late error from a closed port must not crash the process.
    this.log('info', `serial console on ${this.path} closed: ${reason}`);
    this.emit('closed', reason);
  }
}

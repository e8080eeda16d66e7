/**
 * The wire format of RFC 2217 (Telnet COM-PORT-OPTION, RFC 854/855/856/2217): data with
 * 255 (IAC) doubled; `IAC WILL|WONT|DO|DONT <option>`; `IAC SB 44 <command> <value> IAC SE`,
 * 255 in the value doubled too. Pure encoders and a streaming decoder, shared by the
 * product's client (rfc2217-port.ts) and the lab's server (test/lab/rfc2217-link.ts).
 */
export const TELNET = { IAC: 255, DONT: 254, DO: 253, WONT: 252, WILL: 251, SB: 250, SE: 240 } as const;
export const TELNET_OPTION = { BINARY: 0, SGA: 3, COM_PORT: 44 } as const;
/** COM-PORT-OPTION commands, client → server; the server answers with command + 100. */
export const COM_PORT = {
  SIGNATURE: 0,
  SET_BAUDRATE: 1,
  SET_DATASIZE: 2,
  SET_PARITY: 3,
  SET_STOPSIZE: 4,
  SET_CONTROL: 5,
  NOTIFY_LINESTATE: 6,
  NOTIFY_MODEMSTATE: 7,
  FLOWCONTROL_SUSPEND: 8,
  FLOWCONTROL_RESUME: 9,
  SET_LINESTATE_MASK: 10,
  SET_MODEMSTATE_MASK: 11,
  PURGE_DATA: 12,
  SERVER_OFFSET: 100,
} as const;
/** SET-CONTROL values (0, 4, 7, 10 ask for the current state). */
export const CONTROL = {
  REQUEST_FLOW: 0,
  NO_FLOW: 1,
  XON_XOFF: 2,
  HARDWARE_FLOW: 3,
  REQUEST_BREAK: 4,
  BREAK_ON: 5,
  BREAK_OFF: 6,
  REQUEST_DTR: 7,
  DTR_ON: 8,
  DTR_OFF: 9,
  REQUEST_RTS: 10,
  RTS_ON: 11,
  RTS_OFF: 12,
} as const;
export const PARITY = { none: 1, odd: 2, even: 3, mark: 4, space: 5 } as const;
/** NOTIFY-MODEMSTATE bits. */
export const MODEM = { DCD: 0x80, RI: 0x40, DSR: 0x20, CTS: 0x10 } as const;

export type TelnetVerb = typeof TELNET.WILL | typeof TELNET.WONT | typeof TELNET.DO | typeof TELNET.DONT;
export type TelnetEvent =
  { kind: 'data'; data: Buffer } | { kind: 'negotiate'; verb: TelnetVerb; option: number } | { kind: 'subnegotiation'; option: number; payload: Buffer };

/** Doubles every 255 (IAC) byte, for data and subnegotiation values alike. */
export function escapeIac(bytes: Uint8Array): Buffer {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let count = 0;
  for (let i = buffer.indexOf(TELNET.IAC); i !== -1; i = buffer.indexOf(TELNET.IAC, i + 1)) count++;
  if (count === 0) return buffer;
  const out = Buffer.allocUnsafe(buffer.length + count);
  let o = 0;
  for (const byte of buffer) {
    out[o++] = byte;
    if (byte === TELNET.IAC) out[o++] = TELNET.IAC;
  }
  return out;
}

export function encodeNegotiation(verb: TelnetVerb, option: number): Buffer {
  return Buffer.from([TELNET.IAC, verb, option]);
}

export function encodeSubnegotiation(option: number, payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([TELNET.IAC, TELNET.SB, option]), escapeIac(payload), Buffer.from([TELNET.IAC, TELNET.SE])]);
}

/** `IAC SB 44 <command> <value> IAC SE`; a number value is one byte. */
export function encodeComPort(command: number, value: Uint8Array | number): Buffer {
  const bytes = typeof value === 'number' ? Buffer.from([value]) : Buffer.from(value);
  return encodeSubnegotiation(TELNET_OPTION.COM_PORT, Buffer.concat([Buffer.from([command]), bytes]));
}

/** SET-BAUDRATE's value: 4 bytes, big-endian (0 asks for the current rate). */
export function baudBytes(baud: number): Buffer {
  const value = Buffer.alloc(4);
  value.writeUInt32BE(baud);
  return value;
}

export function readBaud(value: Uint8Array): number | undefined {
  return value.length === 4 ? Buffer.from(value).readUInt32BE(0) : undefined;
}

/** A subnegotiation longer than this is dropped (COM-PORT payloads are a few bytes). */
const MAX_SUBNEGOTIATION = 1024;
const S_DATA = 0,
  S_IAC = 1,
  S_VERB = 2,
  S_SB_OPTION = 3,
  S_SB = 4,
  S_SB_IAC = 5;

/** Splits a Telnet byte stream into data, negotiations and subnegotiations; any split works. */
export class TelnetDecoder {
  private state = S_DATA;
  private verb: TelnetVerb = TELNET.WILL;
  private option = 0;
  private payload: number[] = [];
  private overflow = false;

  push(chunk: Uint8Array): TelnetEvent[] {
    const events: TelnetEvent[] = [];
    const data = Buffer.allocUnsafe(chunk.length);
    let size = 0;
    const flushData = () => {
      if (size > 0) events.push({ kind: 'data', data: Buffer.from(data.subarray(0, size)) });
      size = 0;
    };
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i]!;
      switch (this.state) {
        case S_DATA: {
          const next = chunk.indexOf(TELNET.IAC, i);
          const end = next === -1 ? chunk.length : next;
          data.set(chunk.subarray(i, end), size);
          size += end - i;
          i = end;
          if (next !== -1) this.state = S_IAC;
          break;
        }
        case S_IAC:
          if (byte === TELNET.IAC) {
            data[size++] = TELNET.IAC;
            this.state = S_DATA;
          } else if (byte >= TELNET.WILL && byte <= TELNET.DONT) {
            this.verb = byte as TelnetVerb;
            this.state = S_VERB;
          } else if (byte === TELNET.SB) {
            this.state = S_SB_OPTION;
          } else {
            this.state = S_DATA; // NOP, GA, a stray SE, …: nothing on a serial link
          }
          break;
        case S_VERB:
          flushData();
          events.push({ kind: 'negotiate', verb: this.verb, option: byte });
          this.state = S_DATA;
          break;
        case S_SB_OPTION:
          this.option = byte;
          this.payload = [];
          this.overflow = false;
          this.state = S_SB;
          break;
        case S_SB:
          if (byte === TELNET.IAC) this.state = S_SB_IAC;
          else this.addPayload(byte);
          break;
        case S_SB_IAC:
          if (byte === TELNET.IAC) {
            this.addPayload(TELNET.IAC);
            this.state = S_SB;
            break;
          }
          flushData();
          if (!this.overflow) events.push({ kind: 'subnegotiation', option: this.option, payload: Buffer.from(this.payload) });
          this.payload = [];
          // IAC SE ends it; IAC <anything else> ends it too and is read as a command.
          this.state = S_DATA;
          if (byte !== TELNET.SE) {
            this.state = S_IAC;
            i--;
          }
          break;
      }
    }
    flushData();
    return events;
  }

  private addPayload(byte: number): void {
    if (this.payload.length < MAX_SUBNEGOTIATION) this.payload.push(byte);
    else this.overflow = true;
  }
}

/**
 * Telnet option negotiation for a side that never changes its mind (RFC 1143 without the
 * queue): answers requests for options it supports, refuses others, and never answers an
 * acknowledgement, so the two sides cannot loop.
 */
export class TelnetNegotiation {
  /** Options enabled on this side (we WILL) and on the other side (they WILL). */
  readonly local = new Set<number>();
  readonly remote = new Set<number>();
  private readonly asked = new Set<string>();

  constructor(
    private readonly supported: { local: readonly number[]; remote: readonly number[] },
    private readonly send: (bytes: Buffer) => void,
  ) {}

  request(verb: typeof TELNET.WILL | typeof TELNET.DO, option: number): void {
    this.asked.add(`${verb}:${option}`);
    this.send(encodeNegotiation(verb, option));
  }

  handle(verb: TelnetVerb, option: number): void {
    const { WILL, WONT, DO, DONT } = TELNET;
    const [mine, ours, ask, yes, no] =
      verb === DO || verb === DONT
        ? ([this.local, this.supported.local, WILL, WILL, WONT] as const)
        : ([this.remote, this.supported.remote, DO, DO, DONT] as const);
    const key = `${ask}:${option}`;
    if (verb === DO || verb === WILL) {
      if (mine.has(option)) return;
      if (this.asked.delete(key)) mine.add(option);
      else if (ours.includes(option)) {
        mine.add(option);
        this.send(encodeNegotiation(yes, option));
      } else this.send(encodeNegotiation(no, option));
    } else {
      this.asked.delete(key);
      if (mine.delete(option)) this.send(encodeNegotiation(no, option));
    }
  }
}

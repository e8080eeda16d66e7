/**
 * The RFC 2217 / Telnet codec: IAC doubling in data and in subnegotiation values, streams
 * split at every byte boundary, COM-PORT commands, option negotiation and the URL form.
 */
import { describe, expect, it } from 'vitest';
import {
  baudBytes,
  COM_PORT,
  CONTROL,
  encodeComPort,
  encodeNegotiation,
  encodeSubnegotiation,
  escapeIac,
  readBaud,
  TELNET,
  TELNET_OPTION,
  TelnetDecoder,
  TelnetNegotiation,
  type TelnetEvent,
} from '../../electron/manager/usb/rfc2217-codec.js';
import { formatRfc2217Address, parseRfc2217Url, Rfc2217Error } from '../../electron/manager/usb/rfc2217-port.js';

const { IAC, SB, SE, WILL, WONT, DO, DONT } = TELNET;

/** Decodes `stream` fed in the given pieces; adjacent data events are merged. */
function decode(pieces: Uint8Array[]): TelnetEvent[] {
  const decoder = new TelnetDecoder();
  const events: TelnetEvent[] = [];
  for (const piece of pieces) {
    for (const event of decoder.push(piece)) {
      const last = events.at(-1);
      if (event.kind === 'data' && last?.kind === 'data') last.data = Buffer.concat([last.data, event.data]);
      else events.push(event);
    }
  }
  return events;
}

describe('Telnet escaping', () => {
  it('doubles 255 in data and leaves other bytes alone', () => {
    expect([...escapeIac(Buffer.from([1, 255, 2, 255, 255]))]).toEqual([1, 255, 255, 2, 255, 255, 255, 255]);
    const plain = Buffer.from('no escapes here');
    expect(escapeIac(plain).equals(plain)).toBe(true);
  });

  it('doubles 255 inside a subnegotiation value, not in its frame', () => {
    // SET-BAUDRATE 0x00FFFFFF: three 255 bytes in the value.
    expect([...encodeComPort(COM_PORT.SET_BAUDRATE, baudBytes(0x00ffffff))]).toEqual([IAC, SB, 44, 1, 0, 255, 255, 255, 255, 255, 255, IAC, SE]);
    expect([...encodeComPort(COM_PORT.SET_CONTROL, CONTROL.DTR_ON)]).toEqual([IAC, SB, 44, 5, 8, IAC, SE]);
    expect([...encodeNegotiation(WILL, TELNET_OPTION.COM_PORT)]).toEqual([IAC, WILL, 44]);
  });

  it('SET-BAUDRATE carries the rate as 4 bytes big-endian', () => {
    expect([...baudBytes(115_200)]).toEqual([0x00, 0x01, 0xc2, 0x00]);
    expect(readBaud(baudBytes(460_800))).toBe(460_800);
    expect(readBaud(Buffer.from([1, 2]))).toBeUndefined();
  });
});

describe('TelnetDecoder', () => {
  // Data with IAC IAC, a negotiation, a COM-PORT command whose value holds 255, more data.
  const value = Buffer.from([0x00, 0xff, 0x01, 0xff]);
  const stream = Buffer.concat([
    escapeIac(Buffer.from([0x41, 0xff, 0x42])),
    encodeNegotiation(DO, TELNET_OPTION.COM_PORT),
    encodeSubnegotiation(TELNET_OPTION.COM_PORT, Buffer.concat([Buffer.from([COM_PORT.SET_BAUDRATE + 100]), value])),
    escapeIac(Buffer.from([0xff, 0xff, 0x43])),
    encodeComPort(COM_PORT.SET_CONTROL, CONTROL.RTS_OFF),
  ]);
  const expected: TelnetEvent[] = [
    { kind: 'data', data: Buffer.from([0x41, 0xff, 0x42]) },
    { kind: 'negotiate', verb: DO, option: 44 },
    { kind: 'subnegotiation', option: 44, payload: Buffer.concat([Buffer.from([101]), value]) },
    { kind: 'data', data: Buffer.from([0xff, 0xff, 0x43]) },
    { kind: 'subnegotiation', option: 44, payload: Buffer.from([COM_PORT.SET_CONTROL, CONTROL.RTS_OFF]) },
  ];

  it('decodes a whole stream', () => {
    expect(decode([stream])).toEqual(expected);
  });

  it('decodes the same stream split at every byte boundary, and one byte at a time', () => {
    for (let cut = 1; cut < stream.length; cut++) {
      expect(decode([stream.subarray(0, cut), stream.subarray(cut)]), `split at ${cut}`).toEqual(expected);
    }
    expect(decode([...stream].map((byte) => Buffer.from([byte])))).toEqual(expected);
  });

  it('parses SET-CONTROL and SET-BAUDRATE commands as a server receives them', () => {
    const events = decode([Buffer.concat([encodeComPort(COM_PORT.SET_CONTROL, CONTROL.DTR_OFF), encodeComPort(COM_PORT.SET_BAUDRATE, baudBytes(74_880))])]);
    expect(events).toEqual([
      { kind: 'subnegotiation', option: 44, payload: Buffer.from([5, 9]) },
      { kind: 'subnegotiation', option: 44, payload: Buffer.concat([Buffer.from([1]), baudBytes(74_880)]) },
    ]);
    const [, baud] = events;
    expect(baud?.kind === 'subnegotiation' && readBaud(baud.payload.subarray(1))).toBe(74_880);
  });

  it('skips Telnet commands with no meaning on a serial line and keeps the data around them', () => {
    expect(decode([Buffer.from([0x61, IAC, 241, 0x62, IAC, 249, 0x63])])).toEqual([{ kind: 'data', data: Buffer.from('abc') }]);
  });

  it('drops an endless subnegotiation instead of growing without bound', () => {
    const huge = Buffer.concat([Buffer.from([IAC, SB, 44, 1]), Buffer.alloc(5000, 7), Buffer.from([IAC, SE, 0x7a])]);
    expect(decode([huge])).toEqual([{ kind: 'data', data: Buffer.from('z') }]);
  });
});

describe('TelnetNegotiation', () => {
  it('agrees to supported options, refuses the rest, and does not answer acknowledgements', () => {
    const sent: number[][] = [];
    const side = new TelnetNegotiation({ local: [0, 3], remote: [0, 3, 44] }, (bytes) => sent.push([...bytes]));
    side.handle(WILL, 44);
    side.handle(DO, 0);
    side.handle(DO, 1); // ECHO: not offered
    side.handle(WILL, 44); // already agreed: no answer (no loop)
    expect(sent).toEqual([
      [IAC, DO, 44],
      [IAC, WILL, 0],
      [IAC, WONT, 1],
    ]);
    expect([...side.remote]).toEqual([44]);
    expect([...side.local]).toEqual([0]);
    sent.length = 0;
    side.request(WILL, 3);
    side.handle(DO, 3); // the answer to our request
    side.handle(DONT, 0);
    expect(sent).toEqual([
      [IAC, WILL, 3],
      [IAC, WONT, 0],
    ]);
    expect([...side.local]).toEqual([3]);
  });
});

describe('rfc2217:// addresses', () => {
  it('parses host and port, IPv6 included, and rejects what is not one', () => {
    expect(parseRfc2217Url('rfc2217://127.0.0.1:4000')).toEqual({ host: '127.0.0.1', port: 4000 });
    expect(parseRfc2217Url('rfc2217://raspberrypi.local:2217?logging=debug')).toEqual({ host: 'raspberrypi.local', port: 2217 });
    expect(parseRfc2217Url('rfc2217://[::1]:4000')).toEqual({ host: '::1', port: 4000 });
    expect(formatRfc2217Address({ host: '::1', port: 4000 })).toBe('[::1]:4000');
    for (const bad of ['rfc2217://host', 'rfc2217://:4000', 'rfc2217://host:99999', 'socket://host:4000', 'rfc2217://']) {
      expect(() => parseRfc2217Url(bad), bad).toThrow(Rfc2217Error);
    }
  });
});

import { describe, expect, it } from 'vitest';
import { parseUplinkEntry, UplinkMessageError } from '../../electron/manager/fleet/uplink-messages.js';

const entry = (...items: Array<string | Buffer>) => items.map((item) => (Buffer.isBuffer(item) ? item : Buffer.from(item)));

describe('uplink entry validation', () => {
  it('parses a hello with board facts', () => {
    expect(
      parseUplinkEntry(entry('k', 'hello', 'v', '1', 'boot', 'ab12', 'p', 'esp8266', 'mv', '1.27.0', 'cv', '1.0', 'mf', '30000', 'ip', '10.0.0.5', 'hb', '5')),
    ).toEqual({
      k: 'hello',
      v: 1,
      boot: 'ab12',
      p: 'esp8266',
      mv: '1.27.0',
      cv: '1.0',
      mf: 30000,
      ip: '10.0.0.5',
      hb: 5,
      nm: undefined,
    });
  });

  it('keeps output bytes binary', () => {
    const data = Buffer.from([0, 255, 13, 10]);
    const message = parseUplinkEntry(entry('k', 'out', 'i', 'c1', 'n', '0', 's', '1', 'd', data));
    expect(message).toMatchObject({ k: 'out', i: 'c1', n: 0, s: 1 });
    expect((message as { d: Buffer }).d.equals(data)).toBe(true);
  });

  it('parses results with JSON and error codes', () => {
    expect(parseUplinkEntry(entry('k', 'res', 'i', 'c1', 'ok', '0', 'n', '2', 'ec', 'ENOENT', 'e', 'no such file', 'r', '{"a":1}'))).toEqual({
      k: 'res',
      i: 'c1',
      ok: false,
      n: 2,
      ec: 'ENOENT',
      e: 'no such file',
      r: { a: 1 },
      tr: false,
    });
  });

  it.each([
    ['an odd field list', entry('k', 'hb', 'mf')],
    ['a missing kind', entry('mf', '1')],
    ['an unknown kind', entry('k', 'pwn')],
    ['a wrong type', entry('k', 'hello', 'v', 'one', 'boot', 'a', 'p', 'x', 'mv', 'x', 'cv', 'x', 'hb', '5')],
    ['a heartbeat period out of range', entry('k', 'hello', 'v', '1', 'boot', 'a', 'p', 'x', 'mv', 'x', 'cv', 'x', 'hb', '0')],
    ['a bad command id', entry('k', 'start', 'i', 'x y', 'e', '1-0')],
    ['a bad stream id', entry('k', 'start', 'i', 'c1', 'e', 'nope')],
    ['a bad flag', entry('k', 'res', 'i', 'c1', 'ok', 'maybe', 'n', '0')],
    ['bad JSON', entry('k', 'res', 'i', 'c1', 'ok', '1', 'n', '0', 'r', '{')],
    ['a duplicated field', entry('k', 'hb', 'mf', '1', 'mf', '2')],
    ['oversized data', entry('k', 'out', 'i', 'c1', 'n', '0', 's', '1', 'd', Buffer.alloc(17 * 1024))],
    ['an oversized entry', entry('k', 'out', 'i', 'c1', 'n', '0', 's', '1', 'd', Buffer.alloc(16 * 1024), 'x', Buffer.alloc(16 * 1024), 'y', 'z')],
    ['random bytes', [Buffer.from([1, 2, 3]), Buffer.from([255, 0])]],
  ])('refuses %s', (_what, fields) => {
    expect(() => parseUplinkEntry(fields)).toThrow(UplinkMessageError);
  });
});

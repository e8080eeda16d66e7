/**
 * Text a board sends is data, never terminal control: the fields of its hello are checked
 * for their form when they arrive, and whatever the CLI prints has its control characters
 * made visible.
 */
import { describe, expect, it } from 'vitest';
import { parseUplinkEntry, UplinkMessageError } from '../../electron/manager/fleet/uplink-messages.js';
import { escapeControlCharacters, hasControlCharacters } from '../../electron/manager/printable-text.js';
import { table } from '../../electron/cli/format.js';

const CLEAR_SCREEN = '\x1b[2J\x1b[H';
const RED = '\x1b[31m';
const BELL = '\x07';
const C1_CSI = '\u009b2J';

function hello(overrides: Record<string, string>): Buffer[] {
  const fields = { k: 'hello', v: '1', boot: 'ab12', p: 'esp8266', mv: '1.27.0', cv: '1.0', mf: '30000', ip: '10.0.0.5', hb: '5', nm: 'kitchen', ...overrides };
  return Object.entries(fields).flatMap(([name, value]) => [Buffer.from(name), Buffer.from(value)]);
}

function refusal(flat: Buffer[]): string {
  try {
    parseUplinkEntry(flat);
  } catch (error) {
    if (error instanceof UplinkMessageError) return error.message;
    throw error;
  }
  return 'accepted';
}

describe("a board's hello", () => {
  it.each([
    ['p', `esp8266${CLEAR_SCREEN}`],
    ['mv', `1.27.0${RED}`],
    ['ip', `10.0.0.5${BELL}`],
    ['ip', `${CLEAR_SCREEN}10.0.0.5`],
    ['ip', 'not an address'],
    ['cv', `1.0${RED}x`],
    ['cv', `1.0${C1_CSI}`],
    ['nm', `kitchen${CLEAR_SCREEN}`],
  ])('is refused, naming the field, when %s is %j', (field, value) => {
    expect(refusal(hello({ [field]: value }))).toMatch(new RegExp(`^hello: field "${field}" `));
  });

  it.each(['10.0.0.5', '0.0.0.0', '', '::1', 'fe80::1%wlan0', '2001:db8::42'])('takes the address %j', (ip) => {
    expect(parseUplinkEntry(hello({ ip }))).toMatchObject({ k: 'hello', ip });
  });

  it("takes the clients' own versions and names", () => {
    expect(parseUplinkEntry(hello({ cv: '1.0.0-ts', nm: 'kitchen-1', mv: '1.27.0-preview.1' }))).toMatchObject({ cv: '1.0.0-ts', nm: 'kitchen-1' });
  });

  it('refuses a bye whose reason carries control characters', () => {
    expect(refusal([Buffer.from('k'), Buffer.from('bye'), Buffer.from('why'), Buffer.from(`reboot${BELL}`)])).toMatch(/field "why" holds control characters/);
  });
});

describe('control characters in what the CLI prints', () => {
  it('are written as visible \\u escapes: C0, DEL, C1 and bidirectional overrides', () => {
    expect(escapeControlCharacters(`a${CLEAR_SCREEN}b${BELL}c\x7fd${C1_CSI}e\u202ef`)).toBe('a\\u001b[2J\\u001b[Hb\\u0007c\\u007fd\\u009b2Je\\u202ef');
    expect(hasControlCharacters('plain text, ünïcode ✓')).toBe(false);
  });

  it('keep line breaks and tabs of multi-line text, but not a lone carriage return', () => {
    expect(escapeControlCharacters('one\ttwo\r\nthree\nfour\rover', { keepLines: true })).toBe('one\ttwo\r\nthree\nfour\\u000dover');
    expect(escapeControlCharacters('one\ntwo')).toBe('one\\u000atwo');
  });

  it('leave JSON valid and meaning the same', () => {
    const value = { ip: `1${RED}`, cv: `\x7f${C1_CSI}\u202e`, list: [BELL] };
    const printed = escapeControlCharacters(JSON.stringify(value, null, 2), { keepLines: true });
    expect(hasControlCharacters(printed.replace(/\n/g, ''))).toBe(false);
    expect(JSON.parse(printed)).toEqual(value);
  });

  it('never reach the terminal from a table cell, and a cell stays one line', () => {
    const printed = table(['NAME', 'IP'], [[`kitchen`, `10.0.0.5${CLEAR_SCREEN}\nFORGED ROW`]]);
    expect(printed).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
    expect(printed.trimEnd().split('\n')).toHaveLength(2);
    expect(printed).toContain('10.0.0.5\\u001b[2J\\u001b[H\\u000aFORGED ROW');
  });
});

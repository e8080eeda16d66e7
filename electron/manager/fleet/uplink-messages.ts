/**
 * Validation of what boards write to their uplink (firmware/PROTOCOL.md §6). A board is
 * outside our trust boundary: every entry is checked here, and anything malformed,
 * oversized or unknown is refused with a message that says which field is wrong.
 */
import { isIP } from 'node:net';
import { COMMAND_ID_PATTERN } from '../redis/keys.js';
import { hasControlCharacters } from '../printable-text.js';
import { MAX_HEARTBEAT_S, MIN_HEARTBEAT_S } from './board-registry.js';

export const UPLINK_LIMITS = {
  entryBytes: 32 * 1024,
  dataBytes: 16 * 1024,
  resultBytes: 16 * 1024,
  errorBytes: 1024,
  textBytes: 128,
  outputPerCommand: 256 * 1024,
} as const;

export type UplinkMessage =
  | { k: 'hello'; v: number; boot: string; p: string; mv: string; cv: string; mf?: number; ip?: string; hb: number; nm?: string; c?: string }
  | { k: 'hb'; mf?: number; busy?: string }
  | { k: 'start'; i: string; e: string }
  | { k: 'out'; i: string; n: number; s: 1 | 2; d: Buffer }
  | { k: 'dat'; i: string; n: number; o: number; d: Buffer }
  | { k: 'res'; i: string; ok: boolean; n: number; e?: string; ec?: string; r?: unknown; tr: boolean }
  | { k: 'bye'; why?: string }
  /** The marker the manager writes when it creates the stream at enrollment. */
  | { k: 'init' };

export class UplinkMessageError extends Error {
  override name = 'UplinkMessageError';
}

const BINARY_FIELDS = new Set(['d']);
const STREAM_ID = /^\d{1,20}-\d{1,20}$/;
const ERROR_CODE = /^E[A-Z]{2,15}$/;
/** `sys.platform` style: esp8266, esp32, rp2, virtual, linux … (§6). */
const PLATFORM = /^[a-z0-9_-]{1,32}$/;
/** The MicroPython version the board runs (or emulates): X.Y.Z, optionally with a suffix. */
const VERSION = /^\d{1,4}\.\d{1,4}\.\d{1,4}([-+.][0-9A-Za-z.+-]*)?$/;
/** The longest IPv6 text with a zone (`fe80::…%interface`) fits. */
const IP_ADDRESS_BYTES = 64;

/** Field reader that turns a bad value into an UplinkMessageError naming the field. */
class Fields {
  constructor(
    readonly kind: string,
    private readonly map: Map<string, Buffer>,
  ) {}

  private fail(field: string, rule: string): never {
    throw new UplinkMessageError(`${this.kind}: field "${field}" ${rule}`);
  }

  has(field: string): boolean {
    return this.map.has(field);
  }

  text(field: string, maxBytes: number = UPLINK_LIMITS.textBytes, pattern?: RegExp): string {
    const raw = this.map.get(field);
    if (raw === undefined) this.fail(field, 'is missing');
    if (raw.length > maxBytes) this.fail(field, `is longer than ${maxBytes} bytes`);
    const text = raw.toString('utf8');
    if (pattern && !pattern.test(text)) this.fail(field, `does not match ${pattern}`);
    return text;
  }

  optionalText(field: string, maxBytes?: number, pattern?: RegExp): string | undefined {
    return this.has(field) ? this.text(field, maxBytes, pattern) : undefined;
  }

  /**
   * A one-line text the manager stores and shows (a version, a name, a reason): a control
   * character in it (an escape sequence, a bell, a line break) is refused, never kept.
   */
  label(field: string, maxBytes: number): string {
    const text = this.text(field, maxBytes);
    if (hasControlCharacters(text)) this.fail(field, 'holds control characters');
    return text;
  }

  optionalLabel(field: string, maxBytes: number): string | undefined {
    return this.has(field) ? this.label(field, maxBytes) : undefined;
  }

  /** The board's address: IPv4 dotted or IPv6 text (§6), or empty when it has none. */
  optionalAddress(field: string): string | undefined {
    if (!this.has(field)) return undefined;
    const text = this.text(field, IP_ADDRESS_BYTES);
    if (text !== '' && isIP(text) === 0) this.fail(field, 'is not an IPv4 or IPv6 address');
    return text;
  }

  int(field: string, min: number, max: number): number {
    const text = this.text(field, 20);
    if (!/^-?\d+$/.test(text)) this.fail(field, 'is not an integer');
    const value = Number(text);
    if (value < min || value > max) this.fail(field, `is outside ${min}..${max}`);
    return value;
  }

  optionalInt(field: string, min: number, max: number): number | undefined {
    return this.has(field) ? this.int(field, min, max) : undefined;
  }

  flag(field: string): boolean {
    const text = this.text(field, 1);
    if (text !== '0' && text !== '1') this.fail(field, 'must be 0 or 1');
    return text === '1';
  }

  bytes(field: string, maxBytes: number): Buffer {
    const raw = this.map.get(field);
    if (raw === undefined) this.fail(field, 'is missing');
    if (raw.length > maxBytes) this.fail(field, `is larger than ${maxBytes} bytes`);
    return raw;
  }

  json(field: string, maxBytes: number): unknown {
    const text = this.text(field, maxBytes);
    try {
      return JSON.parse(text);
    } catch {
      this.fail(field, 'is not valid JSON');
    }
  }
}

/** Parses one uplink entry (its flat field/value list) into a typed message, or throws. */
export function parseUplinkEntry(flat: Buffer[]): UplinkMessage {
  if (flat.length % 2 !== 0) throw new UplinkMessageError('entry has an odd number of field/value items');
  let total = 0;
  const map = new Map<string, Buffer>();
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!;
    const value = flat[i + 1]!;
    total += name.length + value.length;
    if (name.length > 8) throw new UplinkMessageError(`unknown field name of ${name.length} bytes`);
    const key = name.toString('latin1');
    if (map.has(key)) throw new UplinkMessageError(`field "${key}" appears twice`);
    if (!BINARY_FIELDS.has(key) && value.length > UPLINK_LIMITS.resultBytes) {
      throw new UplinkMessageError(`field "${key}" is larger than ${UPLINK_LIMITS.resultBytes} bytes`);
    }
    map.set(key, value);
  }
  if (total > UPLINK_LIMITS.entryBytes) throw new UplinkMessageError(`entry is larger than ${UPLINK_LIMITS.entryBytes} bytes`);
  const kindRaw = map.get('k');
  if (!kindRaw) throw new UplinkMessageError('field "k" (kind) is missing');
  const kind = kindRaw.toString('latin1');
  const f = new Fields(kind, map);
  const cid = () => f.text('i', 40, COMMAND_ID_PATTERN);
  switch (kind) {
    case 'hello':
      return {
        k: 'hello',
        v: f.int('v', 1, 1000),
        boot: f.text('boot', 32, /^[A-Za-z0-9_-]{1,32}$/),
        p: f.text('p', 32, PLATFORM),
        mv: f.text('mv', 64, VERSION),
        cv: f.label('cv', 32),
        mf: f.optionalInt('mf', 0, 2 ** 40),
        ip: f.optionalAddress('ip'),
        hb: f.int('hb', MIN_HEARTBEAT_S, MAX_HEARTBEAT_S),
        nm: f.optionalLabel('nm', 64),
        c: f.optionalText('c', 41, STREAM_ID),
      };
    case 'hb':
      return { k: 'hb', mf: f.optionalInt('mf', 0, 2 ** 40), busy: f.optionalText('busy', 40, COMMAND_ID_PATTERN) };
    case 'start':
      return { k: 'start', i: cid(), e: f.text('e', 41, STREAM_ID) };
    case 'out': {
      const stream = f.int('s', 1, 2);
      return { k: 'out', i: cid(), n: f.int('n', 0, 1_000_000), s: stream === 1 ? 1 : 2, d: f.bytes('d', UPLINK_LIMITS.dataBytes) };
    }
    case 'dat':
      return { k: 'dat', i: cid(), n: f.int('n', 0, 1_000_000), o: f.int('o', 0, 2 ** 40), d: f.bytes('d', UPLINK_LIMITS.dataBytes) };
    case 'res':
      return {
        k: 'res',
        i: cid(),
        ok: f.flag('ok'),
        n: f.int('n', 0, 1_000_000),
        e: f.optionalText('e', UPLINK_LIMITS.errorBytes),
        ec: f.optionalText('ec', 16, ERROR_CODE),
        r: f.has('r') ? f.json('r', UPLINK_LIMITS.resultBytes) : undefined,
        tr: f.has('tr') ? f.flag('tr') : false,
      };
    case 'bye':
      return { k: 'bye', why: f.optionalLabel('why', 32) };
    case 'init':
      return { k: 'init' };
    default:
      throw new UplinkMessageError(`unknown kind ${JSON.stringify(kind.slice(0, 16))}`);
  }
}

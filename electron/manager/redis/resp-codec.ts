/**
 * RESP2 encoder and incremental parser. Pure: no sockets, no timers, no printing.
 *
 * Used by RespConnection (virtual boards, tests) which must behave like the tiny
 * MicroPython client on a real board: one request, one reply, in order, nothing resent.
 */

/** One argument of a command. Numbers are sent as their decimal text. */
export type RespArg = string | Buffer | number;

/**
 * A decoded reply:
 * - `string`    simple string (`+OK`)
 * - `number`    integer (`:1`); exact only within ±2^53, which is all our protocol uses
 * - `Buffer`    bulk string (`$3 abc`), binary-safe
 * - `null`      null bulk (`$-1`) or null array (`*-1`)
 * - `RespError` error reply (`-ERR …`)
 * - array       multi-bulk (`*n`), possibly nested
 */
export type RespValue = string | number | Buffer | null | RespError | RespValue[];

/** An error reply from the server (`-WRONGTYPE Operation against …`). */
export class RespError extends Error {
  override readonly name = 'RespError';
  /** First word of the reply: `ERR`, `WRONGTYPE`, `NOPERM`, `WRONGPASS`, `NOSCRIPT`, … */
  readonly code: string;

  constructor(message: string) {
    super(message);
    const space = message.indexOf(' ');
    this.code = space === -1 ? message : message.slice(0, space);
  }
}

/** The byte stream is not valid RESP2, or it exceeds a configured limit. */
export class RespProtocolError extends Error {
  override readonly name = 'RespProtocolError';
  /**
   * Replies that were complete in the same `push()` before the bad byte. They are real
   * answers to real requests, so a connection still hands them to their callers.
   */
  replies: RespValue[] = [];
}

export interface RespParserOptions {
  /** Largest bulk string accepted (default 16 MiB). */
  maxBulkBytes?: number;
  /** Largest array length accepted (default 1,000,000). */
  maxArrayLength?: number;
  /** Deepest array nesting accepted (default 8). */
  maxDepth?: number;
  /** Longest header / simple string / error line, without CRLF (default 1 MiB). */
  maxLineBytes?: number;
}

const CR = 13;
const LF = 10;
const EMPTY = Buffer.alloc(0);

function protocolError(message: string): RespProtocolError {
  return new RespProtocolError(`RESP protocol error: ${message}`);
}

/** Strict RESP integer: optional '-', then digits; nothing else (no '+', no spaces). */
function parseInteger(line: Buffer, start: number): number {
  const end = line.length;
  let i = start;
  let negative = false;
  if (i < end && line[i] === 0x2d) {
    negative = true;
    i++;
  }
  if (i === end) throw protocolError('empty integer');
  if (end - i > 20) throw protocolError('integer too long');
  let value = 0;
  for (; i < end; i++) {
    const digit = (line[i] as number) - 0x30;
    if (digit < 0 || digit > 9) throw protocolError(`bad integer ${JSON.stringify(line.toString('latin1'))}`);
    value = value * 10 + digit;
  }
  return negative ? -value : value;
}

interface Frame {
  items: RespValue[];
  remaining: number;
}

/**
 * Incremental RESP2 parser: feed socket chunks, get complete replies back.
 *
 * It is a resumable state machine rather than "concat and retry": a chunk is scanned
 * once, and a large bulk is collected as a list of chunk views joined once at the end,
 * so a 1 MB reply arriving in 1 KB pieces costs O(size), not O(size²).
 * After a RespProtocolError the parser stays failed (the stream cannot be resynchronised).
 */
export class RespParser {
  private readonly maxBulkBytes: number;
  private readonly maxArrayLength: number;
  private readonly maxDepth: number;
  private readonly maxLineBytes: number;

  /** Open arrays, innermost last. */
  private readonly stack: Frame[] = [];
  /** Start of a header line whose LF has not arrived yet. */
  private lineParts: Buffer[] = [];
  private lineLength = 0;
  /** -1: not inside a bulk; otherwise body bytes still to come. */
  private bulkRemaining = -1;
  private bulkParts: Buffer[] = [];
  private bulkLength = 0;
  /** Bytes of the bulk's CRLF terminator still to check (2, 1 or 0). */
  private bulkCrlfLeft = 0;
  private failure: RespProtocolError | null = null;

  constructor(options: RespParserOptions = {}) {
    this.maxBulkBytes = options.maxBulkBytes ?? 16 * 1024 * 1024;
    this.maxArrayLength = options.maxArrayLength ?? 1_000_000;
    this.maxDepth = options.maxDepth ?? 8;
    this.maxLineBytes = options.maxLineBytes ?? 1024 * 1024;
  }

  /** True while a reply has started but is not complete. */
  get hasPartialReply(): boolean {
    return this.stack.length > 0 || this.lineLength > 0 || this.bulkRemaining >= 0;
  }

  /** Feed bytes; returns every reply completed by them (possibly none). */
  push(chunk: Buffer): RespValue[] {
    if (this.failure) throw this.failure;
    const out: RespValue[] = [];
    try {
      let pos = 0;
      while (pos < chunk.length) {
        if (this.bulkRemaining >= 0) {
          pos = this.readBulk(chunk, pos, out);
          continue;
        }
        const lf = chunk.indexOf(LF, pos);
        if (lf === -1) {
          this.stashLine(chunk.subarray(pos));
          break;
        }
        let line = chunk.subarray(pos, lf);
        if (this.lineLength > 0) {
          this.lineParts.push(line);
          line = Buffer.concat(this.lineParts, this.lineLength + line.length);
          this.lineParts = [];
          this.lineLength = 0;
        }
        pos = lf + 1;
        // Redis never puts a bare LF in a line, so an LF not preceded by CR means garbage.
        if (line.length < 2 || line[line.length - 1] !== CR) {
          throw protocolError('line not terminated by CRLF or empty');
        }
        if (line.length - 2 > this.maxLineBytes) throw protocolError('line longer than maxLineBytes');
        this.handleLine(line.subarray(0, line.length - 1), out);
      }
    } catch (err) {
      if (err instanceof RespProtocolError) {
        err.replies = out;
        this.failure = err;
        this.reset();
      }
      throw err;
    }
    return out;
  }

  private reset(): void {
    this.stack.length = 0;
    this.lineParts = [];
    this.bulkParts = [];
  }

  private stashLine(part: Buffer): void {
    this.lineParts.push(part);
    this.lineLength += part.length;
    // +1 for the CR that may legitimately end the stash.
    if (this.lineLength > this.maxLineBytes + 2) throw protocolError('line longer than maxLineBytes');
  }

  private handleLine(line: Buffer, out: RespValue[]): void {
    const type = line[0];
    switch (type) {
      case 0x2b: // '+'
        this.emit(line.toString('utf8', 1), out);
        return;
      case 0x2d: // '-'
        this.emit(new RespError(line.toString('utf8', 1)), out);
        return;
      case 0x3a: // ':'
        this.emit(parseInteger(line, 1), out);
        return;
      case 0x24: {
        // '$'
        const length = parseInteger(line, 1);
        if (length === -1) return this.emit(null, out);
        if (length < -1) throw protocolError(`negative bulk length ${length}`);
        if (length > this.maxBulkBytes) throw protocolError(`bulk of ${length} bytes exceeds maxBulkBytes`);
        this.bulkRemaining = length;
        this.bulkLength = length;
        this.bulkCrlfLeft = 2;
        return;
      }
      case 0x2a: {
        // '*'
        const length = parseInteger(line, 1);
        if (length === -1) return this.emit(null, out);
        if (length < -1) throw protocolError(`negative array length ${length}`);
        if (length > this.maxArrayLength) throw protocolError(`array of ${length} exceeds maxArrayLength`);
        if (length === 0) return this.emit([], out);
        if (this.stack.length >= this.maxDepth) throw protocolError('arrays nested deeper than maxDepth');
        // Items are pushed as they arrive: a hostile "*1000000" costs nothing up front.
        this.stack.push({ items: [], remaining: length });
        return;
      }
      default:
        throw protocolError(`unexpected type byte 0x${(type ?? 0).toString(16).padStart(2, '0')}`);
    }
  }

  private readBulk(chunk: Buffer, start: number, out: RespValue[]): number {
    let pos = start;
    if (this.bulkRemaining > 0) {
      const take = Math.min(this.bulkRemaining, chunk.length - pos);
      this.bulkParts.push(chunk.subarray(pos, pos + take));
      this.bulkRemaining -= take;
      pos += take;
      if (this.bulkRemaining > 0) return pos;
    }
    while (this.bulkCrlfLeft > 0 && pos < chunk.length) {
      if (chunk[pos] !== (this.bulkCrlfLeft === 2 ? CR : LF)) {
        throw protocolError('bulk string not followed by CRLF');
      }
      this.bulkCrlfLeft--;
      pos++;
    }
    if (this.bulkCrlfLeft > 0) return pos;
    // Always copy: a view would pin the whole (up to 64 KB) socket chunk for as long as
    // the caller keeps a small value.
    const parts = this.bulkParts;
    const value = parts.length === 0 ? EMPTY : parts.length === 1 ? Buffer.from(parts[0] as Buffer) : Buffer.concat(parts, this.bulkLength);
    this.bulkParts = [];
    this.bulkRemaining = -1;
    this.emit(value, out);
    return pos;
  }

  /** Attach a finished value to the innermost open array, closing arrays that fill up. */
  private emit(value: RespValue, out: RespValue[]): void {
    let v = value;
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (!top) {
        out.push(v);
        return;
      }
      top.items.push(v);
      if (--top.remaining > 0) return;
      this.stack.pop();
      v = top.items;
    }
  }
}

/** Decimal text for a numeric argument; rejects values Redis could not mean. */
function numberArg(n: number): string {
  if (!Number.isFinite(n)) throw new RangeError(`cannot send ${n} to Redis`);
  // String(1e21) is "1e+21", which Redis would not read as an integer.
  if (Number.isInteger(n) && Math.abs(n) >= 1e21) return BigInt(n).toString();
  return String(n); // -0 → "0"; fractions in shortest round-trip form (Redis reads exponents)
}

function decimalLength(n: number): number {
  let digits = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    digits++;
  }
  return digits;
}

/**
 * Encode one command as a RESP2 array of bulk strings, in a single buffer.
 * An empty command is refused: Redis silently ignores `*0\r\n` without replying, which
 * would shift every later reply onto the wrong request.
 */
export function encodeCommand(args: readonly RespArg[]): Buffer {
  const count = args.length;
  if (count === 0) throw new RangeError('a Redis command needs at least one argument');
  const parts: Array<string | Uint8Array> = new Array(count);
  const lengths: number[] = new Array(count);
  let total = 1 + decimalLength(count) + 2;
  for (let i = 0; i < count; i++) {
    const arg = args[i];
    let part: string | Uint8Array;
    if (typeof arg === 'string') part = arg;
    else if (arg instanceof Uint8Array) part = arg;
    else if (typeof arg === 'number') part = numberArg(arg);
    else throw new TypeError(`argument ${i} must be a string, Buffer or number, got ${typeof arg}`);
    const length = typeof part === 'string' ? Buffer.byteLength(part, 'utf8') : part.length;
    parts[i] = part;
    lengths[i] = length;
    total += 1 + decimalLength(length) + 2 + length + 2;
  }
  const out = Buffer.allocUnsafe(total);
  let offset = out.write(`*${count}\r\n`, 0, 'latin1');
  for (let i = 0; i < count; i++) {
    const part = parts[i] as string | Uint8Array;
    offset += out.write(`$${lengths[i] as number}\r\n`, offset, 'latin1');
    if (typeof part === 'string') offset += out.write(part, offset, 'utf8');
    else {
      out.set(part, offset);
      offset += part.length;
    }
    out[offset++] = CR;
    out[offset++] = LF;
  }
  return out;
}

/** Encode several commands into one buffer (one socket write for a pipeline). */
export function encodeCommands(commands: ReadonlyArray<readonly RespArg[]>): Buffer {
  const encoded = commands.map((command) => encodeCommand(command));
  return encoded.length === 1 ? (encoded[0] as Buffer) : Buffer.concat(encoded);
}

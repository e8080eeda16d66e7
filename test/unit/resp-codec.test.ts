import { describe, expect, it, vi } from 'vitest';
import { RespError, RespParser, RespProtocolError, encodeCommand, encodeCommands, type RespValue } from '../../electron/manager/redis/resp-codec.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function parseAll(bytes: Buffer, parser = new RespParser()): RespValue[] {
  return parser.push(bytes);
}

function expectProtocolError(bytes: string | Buffer, parser = new RespParser()): RespProtocolError {
  try {
    parser.push(typeof bytes === 'string' ? b(bytes) : bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(RespProtocolError);
    return err as RespProtocolError;
  }
  throw new Error('expected a RespProtocolError');
}

describe('encodeCommand', () => {
  it('encodes an array of bulk strings', () => {
    expect(encodeCommand(['SET', 'k', 'v']).toString('latin1')).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n');
  });

  it('sends numbers as decimal text', () => {
    expect(encodeCommand(['INCRBY', 'n', 42, -7, 1.5, -0]).toString('latin1')).toBe(
      '*6\r\n$6\r\nINCRBY\r\n$1\r\nn\r\n$2\r\n42\r\n$2\r\n-7\r\n$3\r\n1.5\r\n$1\r\n0\r\n',
    );
    expect(encodeCommand(['X', 1e21]).toString('latin1')).toContain('1000000000000000000000');
  });

  it('is binary safe and counts UTF-8 bytes, not characters', () => {
    const bin = Buffer.from([0, 13, 10, 255, 36, 42]);
    const encoded = encodeCommand(['SET', 'é', bin]);
    expect(encoded.toString('latin1')).toBe('*3\r\n$3\r\nSET\r\n$2\r\n\xc3\xa9\r\n$6\r\n\x00\r\n\xff$*\r\n');
    expect(new RespParser().push(encoded)).toEqual([[b('SET'), Buffer.from('é'), bin]]);
  });

  it('encodes empty arguments', () => {
    expect(encodeCommand(['SET', 'k', '']).toString('latin1')).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n');
  });

  it('refuses commands Redis would silently ignore or misread', () => {
    // Redis does not answer "*0\r\n": sending it would pair later replies with wrong requests.
    expect(() => encodeCommand([])).toThrow(RangeError);
    expect(() => encodeCommand(['SET', 'k', Number.NaN])).toThrow(RangeError);
    expect(() => encodeCommand(['SET', 'k', Infinity])).toThrow(RangeError);
    expect(() => encodeCommand(['SET', 'k', {} as unknown as string])).toThrow(TypeError);
  });

  it('encodes a pipeline as one buffer', () => {
    expect(encodeCommands([['PING'], ['GET', 'a']]).toString('latin1')).toBe('*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n');
  });
});

describe('RespParser: each type', () => {
  it('simple string, integer, error', () => {
    const [ok, n, neg, err] = parseAll(b('+OK\r\n:1000\r\n:-42\r\n-WRONGTYPE Operation against a key\r\n'));
    expect(ok).toBe('OK');
    expect(n).toBe(1000);
    expect(neg).toBe(-42);
    expect(err).toBeInstanceOf(RespError);
    expect((err as RespError).code).toBe('WRONGTYPE');
    expect((err as RespError).message).toBe('WRONGTYPE Operation against a key');
  });

  it('error codes are the first word', () => {
    const replies = parseAll(b('-NOPERM no\r\n-WRONGPASS invalid\r\n-NOSCRIPT x\r\n-ERR\r\n'));
    expect(replies.map((r) => (r as RespError).code)).toEqual(['NOPERM', 'WRONGPASS', 'NOSCRIPT', 'ERR']);
  });

  it('bulk, empty bulk, null bulk, null array, empty array, empty simple string', () => {
    expect(parseAll(b('$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n+\r\n'))).toEqual([b('hello'), Buffer.alloc(0), null, null, [], '']);
  });

  it('bulk strings are Buffers that hold \\r\\n and other binary bytes', () => {
    const payload = Buffer.from([13, 10, 0, 36, 49, 13, 10, 255]);
    const wire = Buffer.concat([b(`$${payload.length}\r\n`), payload, b('\r\n')]);
    const [value] = parseAll(wire);
    expect(Buffer.isBuffer(value)).toBe(true);
    expect(value).toEqual(payload);
  });

  it('nested arrays with every element type (XRANGE shape)', () => {
    const wire = '*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*3\r\n:1\r\n$-1\r\n*1\r\n-ERR x\r\n';
    const [value] = parseAll(b(wire));
    expect(value).toEqual([
      [b('1-0'), [b('f'), b('v')]],
      [1, null, [new RespError('ERR x')]],
    ]);
  });

  it('copies bulk data so later changes to the input chunk do not leak in', () => {
    const chunk = b('$3\r\nabc\r\n');
    const [value] = parseAll(chunk);
    chunk.fill(0);
    expect(value).toEqual(b('abc'));
  });
});

describe('RespParser: incremental input', () => {
  const wire = Buffer.concat([
    b('+OK\r\n:-123\r\n-ERR bad thing\r\n$-1\r\n*-1\r\n$0\r\n\r\n'),
    b('$6\r\n\r\n\0\r\n\xff\r\n'), // bulk made of CR LF NUL CR LF 0xff
    b('*3\r\n*2\r\n$1\r\na\r\n:7\r\n*0\r\n$2\r\n\r\n\r\n'),
    b('*2\r\n$-1\r\n*1\r\n+nested\r\n'),
  ]);
  const expected: RespValue[] = [
    'OK',
    -123,
    new RespError('ERR bad thing'),
    null,
    null,
    Buffer.alloc(0),
    b('\r\n\0\r\n\xff'),
    [[b('a'), 7], [], b('\r\n')],
    [null, ['nested']],
  ];

  it('parses the whole sequence in one chunk', () => {
    expect(parseAll(wire)).toEqual(expected);
  });

  it('gives the same replies when split at every byte offset', () => {
    for (let cut = 0; cut <= wire.length; cut++) {
      const parser = new RespParser();
      const got = [...parser.push(wire.subarray(0, cut)), ...parser.push(wire.subarray(cut))];
      expect(got, `split at ${cut}`).toEqual(expected);
      expect(parser.hasPartialReply).toBe(false);
    }
  });

  it('gives the same replies when split at every pair of offsets', () => {
    for (let i = 0; i <= wire.length; i += 3) {
      for (let j = i; j <= wire.length; j++) {
        const parser = new RespParser();
        const got = [...parser.push(wire.subarray(0, i)), ...parser.push(wire.subarray(i, j)), ...parser.push(wire.subarray(j))];
        expect(got, `split at ${i}/${j}`).toEqual(expected);
      }
    }
  });

  it('gives the same replies fed one byte at a time', () => {
    const parser = new RespParser();
    const got: RespValue[] = [];
    for (let i = 0; i < wire.length; i++) got.push(...parser.push(wire.subarray(i, i + 1)));
    expect(got).toEqual(expected);
  });

  it('keeps a partial reply until it completes', () => {
    const parser = new RespParser();
    expect(parser.push(b('*2\r\n$3\r\nfo'))).toEqual([]);
    expect(parser.hasPartialReply).toBe(true);
    expect(parser.push(b('o\r\n:1\r\n+next'))).toEqual([[b('foo'), 1]]);
    expect(parser.push(b('\r\n'))).toEqual(['next']);
  });

  it('parses a 1 MB bulk arriving in 1 KB chunks, copying it once (no re-concatenation per chunk)', () => {
    const size = 1024 * 1024;
    const payload = Buffer.alloc(size);
    for (let i = 0; i < size; i++) payload[i] = (i * 31 + 7) & 0xff; // includes many \r and \n
    const wire1 = Buffer.concat([b(`$${size}\r\n`), payload, b('\r\n+after\r\n')]);
    const parser = new RespParser();
    const got: RespValue[] = [];
    // Bytes copied, not milliseconds (a busy machine makes any time limit fail): "concat
    // and retry" copies the buffered bulk again for every chunk, ~512 MiB here.
    const concat = vi.spyOn(Buffer, 'concat');
    try {
      for (let i = 0; i < wire1.length; i += 1024) got.push(...parser.push(wire1.subarray(i, i + 1024)));
      const copied = concat.mock.results.reduce((sum, result) => sum + (result.value as Buffer).length, 0);
      expect(copied).toBeLessThanOrEqual(size + 64);
    } finally {
      concat.mockRestore();
    }
    expect(got).toHaveLength(2);
    expect((got[0] as Buffer).equals(payload)).toBe(true);
    expect(got[1]).toBe('after');
  });
});

describe('RespParser: malformed input and limits', () => {
  it.each([
    ['unknown type byte', '?what\r\n'],
    ['RESP3 type', '%1\r\n'],
    ['bare LF line ending', '+OK\n'],
    ['empty line', '\r\n'],
    ['non-numeric integer', ':12a\r\n'],
    ['integer with plus sign', ':+1\r\n'],
    ['empty integer', ':\r\n'],
    ['bulk length not a number', '$x\r\n'],
    ['bulk length below -1', '$-2\r\n'],
    ['array length below -1', '*-5\r\n'],
    ['bulk longer than declared', '$3\r\nabcd\r\n'],
    ['bulk without CRLF', '$3\r\nabcXY'],
  ])('%s → RespProtocolError', (_name, wire) => {
    expectProtocolError(wire);
  });

  it('bulk length over maxBulkBytes is refused before any data arrives', () => {
    expectProtocolError(`$${16 * 1024 * 1024 + 1}\r\n`);
    expectProtocolError('$11\r\n', new RespParser({ maxBulkBytes: 10 }));
    expect(new RespParser({ maxBulkBytes: 10 }).push(b('$10\r\n0123456789\r\n'))).toEqual([b('0123456789')]);
  });

  it('array length over maxArrayLength is refused', () => {
    expectProtocolError('*1000001\r\n');
    expectProtocolError('*4\r\n', new RespParser({ maxArrayLength: 3 }));
  });

  it('nesting deeper than maxDepth is refused', () => {
    const ok = '*1\r\n'.repeat(8) + ':1\r\n';
    expect(new RespParser().push(b(ok))).toEqual([[[[[[[[[1]]]]]]]]]);
    expectProtocolError('*1\r\n'.repeat(9) + ':1\r\n');
  });

  it('an endless line is refused once it passes maxLineBytes', () => {
    const parser = new RespParser({ maxLineBytes: 100 });
    parser.push(b('+' + 'a'.repeat(50)));
    expectProtocolError('a'.repeat(60), parser);
  });

  it('replies completed before the garbage are kept on the error; the parser stays failed', () => {
    const parser = new RespParser();
    const err = expectProtocolError('+OK\r\n:5\r\n!garbage\r\n', parser);
    expect(err.replies).toEqual(['OK', 5]);
    expect(() => parser.push(b('+OK\r\n'))).toThrow(RespProtocolError);
  });
});

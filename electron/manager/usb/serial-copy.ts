/**
 * Fast file copy to (and from) a MicroPython board over its serial REPL, built on
 * RawRepl's exec (raw-paste mode with flow control when the board has it).
 *
 * putFile(): one exec sets up a tiny writer on the board, then one exec per chunk sends
 * `_sc_w(b'<base64>')` (9 bytes of code around the data), `_sc_w(b'<base64>',1)` when
 * the chunk is smaller deflated: raw DEFLATE with a 2 KB window (wbits 11), inflated on
 * the board by `deflate.DeflateIO(stream, deflate.RAW, 11)` (MicroPython 1.21+) or
 * `zlib.decompress(data, -11)` (older ports); boards with neither get plain base64.
 * Chunks hold at most 3 KB of file data uncompressed (4 KB of base64) or 4 KB compressed,
 * so a chunk's code, its decoded data and the inflater's window stay within a few KB of a
 * 36 KB board's heap. Each exec asks for the next raw-paste session as soon as its code
 * is sent (RawRepl's pipelineNext), so the line stays busy but for the board's time to run
 * a chunk. The data goes to `<dest>.part`; a last exec hashes that file on the board
 * (hashlib.sha256, 512-byte reads), compares with the host's digest and renames it over
 * `<dest>`. On any failure the `.part` file is removed (if the board can still be
 * reached) and `<dest>` is untouched.
 *
 * Values reach the board's Python only through pythonLiteral() (ASCII-only, escaped).
 */
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import type { RawRepl } from './raw-repl.js';
import { ManagerError, type ErrorKind } from '../errors.js';

/** Largest chunk of file data sent as plain base64 (4 KB of base64 on the line). */
export const PLAIN_CHUNK_BYTES = 3 * 1024;
/** Largest chunk of file data sent deflated (the board inflates it into one buffer this large). */
export const DEFLATE_CHUNK_BYTES = 4 * 1024;
/** Window of the raw DEFLATE streams (2 KB): the board allocates this much to inflate. */
export const DEFLATE_WBITS = 11;

export interface CopyProgress {
  phase: 'prepare' | 'send' | 'verify' | 'done';
  /** File bytes sent so far. */
  bytes: number;
  total: number;
}

export interface PutFileOptions {
  onProgress?: (progress: CopyProgress) => void;
  /** 'auto' (default): deflate chunks that get smaller; 'never': plain base64 only. */
  compress?: 'auto' | 'never';
  /** Longest wait for the board in any one exec (default 10 s). */
  timeoutMs?: number;
  /** File bytes per plain chunk (default PLAIN_CHUNK_BYTES); more for boards with more RAM. */
  plainChunkBytes?: number;
  /** File bytes per deflated chunk (default DEFLATE_CHUNK_BYTES). */
  deflateChunkBytes?: number;
}

export interface PutFileResult {
  bytes: number;
  chunks: number;
  /** Chunks sent deflated. */
  deflated: number;
  /** Bytes of code sent for the data (base64 and the call around it). */
  codeBytes: number;
  /** Whether the board could inflate (deflate or zlib module). */
  boardInflates: boolean;
  sha256: string;
  ms: number;
}

/** A copy failed. `leftover`: a temporary file that could not be removed (the board was unreachable). */
export class SerialCopyError extends ManagerError {
  override readonly name: string = 'SerialCopyError';
  readonly kind: ErrorKind = 'device';
  constructor(
    message: string,
    readonly leftover?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The file on the board did not hash to what was sent (it was removed). */
export class SerialCopyChecksumError extends SerialCopyError {
  override readonly name = 'SerialCopyChecksumError';
}

/**
 * A Python literal for `value` that is plain ASCII and safe to place anywhere in code:
 * str → '...' and bytes → b'...', with every character outside [A-Za-z0-9 +/=._,:@#%()-]
 * escaped (\\xNN, \\uNNNN, \\UNNNNNNNN); numbers, booleans and null → their Python spelling.
 */
export function pythonLiteral(value: string | Uint8Array | number | boolean | null): string {
  if (value === null) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`${value} has no Python literal here`);
    return Number.isInteger(value) ? String(value) : value.toExponential();
  }
  const safe = (code: number): boolean => code < 0x80 && /[A-Za-z0-9 +/=._,:@#%()-]/.test(String.fromCharCode(code));
  if (typeof value === 'string') {
    let out = "'";
    for (const ch of value) {
      const code = ch.codePointAt(0)!;
      if (safe(code)) out += ch;
      else if (code < 0x100) out += `\\x${code.toString(16).padStart(2, '0')}`;
      else if (code < 0x10000) out += `\\u${code.toString(16).padStart(4, '0')}`;
      else out += `\\U${code.toString(16).padStart(8, '0')}`;
    }
    return `${out}'`;
  }
  let out = "b'";
  for (const byte of value) out += safe(byte) ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  return `${out}'`;
}

/** Names the copy code defines in the board's __main__ (removed when done). */
const NAMES = ['_sc_a', '_sc_h', '_sc_o', '_sc_z', '_sc_i', '_sc_d', '_sc_p', '_sc_f', '_sc_w', '_sc_s', '_sc_b', '_sc_n', '_sc_k'];
const FORGET = `for _sc_k in ${pythonLiteral(NAMES.join(' '))}.split():\n    globals().pop(_sc_k, None)\n`;

function setupCode(part: string): string {
  return [
    'import binascii as _sc_a, hashlib as _sc_h, os as _sc_o',
    '_sc_d = None',
    'try:',
    '    import deflate as _sc_z, io as _sc_i',
    '    def _sc_d(d):',
    `        return _sc_z.DeflateIO(_sc_i.BytesIO(d), _sc_z.RAW, ${DEFLATE_WBITS}).read()`,
    'except ImportError:',
    '    try:',
    '        import zlib as _sc_z',
    '        def _sc_d(d):',
    `            return _sc_z.decompress(d, ${-DEFLATE_WBITS})`,
    '    except ImportError:',
    '        pass',
    `_sc_p = ${pythonLiteral(part)}`,
    "_sc_f = open(_sc_p, 'wb')",
    'def _sc_w(d, z=0):',
    '    d = _sc_a.a2b_base64(d)',
    '    _sc_f.write(_sc_d(d) if z else d)',
    'print(0 if _sc_d is None else 1)',
    '',
  ].join('\n');
}

function verifyCode(digest: Buffer, dest: string): string {
  return [
    '_sc_f.close()',
    '_sc_s = _sc_h.sha256()',
    '_sc_b = bytearray(512)',
    "with open(_sc_p, 'rb') as _sc_f:",
    '    while True:',
    '        _sc_n = _sc_f.readinto(_sc_b)',
    '        if not _sc_n:',
    '            break',
    '        _sc_s.update(_sc_b if _sc_n == 512 else _sc_b[:_sc_n])',
    `if _sc_s.digest() == _sc_a.a2b_base64(${pythonLiteral(Buffer.from(digest.toString('base64')))}):`,
    `    _sc_o.rename(_sc_p, ${pythonLiteral(dest)})`,
    "    print('1')",
    'else:',
    '    _sc_o.remove(_sc_p)',
    "    print('0')",
    FORGET,
  ].join('\n');
}

function cleanupCode(part: string): string {
  return [
    'try:',
    '    _sc_f.close()',
    'except Exception:',
    '    pass',
    'import os',
    'try:',
    `    os.remove(${pythonLiteral(part)})`,
    'except OSError:',
    '    pass',
    FORGET,
  ].join('\n');
}

/** One chunk's code: plain or deflated base64, whichever is shorter. */
function chunkCode(data: Buffer, inflate: boolean): { code: string; deflated: boolean } {
  let payload = data;
  let deflated = false;
  if (inflate) {
    const packed = zlib.deflateRawSync(data, { windowBits: DEFLATE_WBITS, level: 9, memLevel: 9 });
    if (packed.length < data.length) {
      payload = packed;
      deflated = true;
    }
  }
  const literal = pythonLiteral(Buffer.from(payload.toString('base64'), 'latin1'));
  return { code: deflated ? `_sc_w(${literal},1)` : `_sc_w(${literal})`, deflated };
}

/**
 * Splits `data` into the chunks putFile sends: deflatable stretches in DEFLATE_CHUNK_BYTES
 * pieces, the rest in PLAIN_CHUNK_BYTES pieces.
 */
function* chunksOf(data: Buffer, inflate: boolean, plainBytes: number, deflateBytes: number): Generator<{ code: string; deflated: boolean; bytes: number }> {
  for (let offset = 0; offset < data.length;) {
    if (inflate) {
      const big = data.subarray(offset, offset + deflateBytes);
      const packed = chunkCode(big, true);
      if (packed.deflated) {
        yield { ...packed, bytes: big.length };
        offset += big.length;
        continue;
      }
    }
    const plain = data.subarray(offset, offset + plainBytes);
    yield { ...chunkCode(plain, false), bytes: plain.length };
    offset += plain.length;
  }
}

/**
 * Copies `localData` to `destPath` on the board (see the file comment). `repl` must be in
 * the raw REPL (enter()). Rejects with SerialCopyChecksumError if the board's copy does
 * not hash right, SerialCopyError otherwise (the RawRepl error as its cause).
 */
export async function putFile(repl: RawRepl, localData: Buffer, destPath: string, options: PutFileOptions = {}): Promise<PutFileResult> {
  const started = Date.now();
  const part = `${destPath}.part`;
  const total = localData.length;
  const digest = createHash('sha256').update(localData).digest();
  const exec = { timeoutMs: options.timeoutMs ?? 10_000 };
  const progress = (phase: CopyProgress['phase'], bytes: number): void => options.onProgress?.({ phase, bytes, total });
  let chunks = 0;
  let deflated = 0;
  let codeBytes = 0;
  let boardInflates: boolean;
  try {
    progress('prepare', 0);
    boardInflates = (await repl.execChecked(setupCode(part), { ...exec, pipelineNext: true })).trim() === '1';
    let sent = 0;
    const plainBytes = options.plainChunkBytes ?? PLAIN_CHUNK_BYTES;
    const deflateBytes = options.deflateChunkBytes ?? DEFLATE_CHUNK_BYTES;
    if (!(plainBytes >= 1 && deflateBytes >= 1)) throw new RangeError('chunk sizes must be at least 1 byte');
    for (const chunk of chunksOf(localData, boardInflates && options.compress !== 'never', plainBytes, deflateBytes)) {
      await repl.execChecked(chunk.code, { ...exec, pipelineNext: true });
      chunks++;
      if (chunk.deflated) deflated++;
      codeBytes += chunk.code.length;
      sent += chunk.bytes;
      progress('send', sent);
    }
    progress('verify', sent);
    const verdict = (await repl.execChecked(verifyCode(digest, destPath), exec)).trim();
    if (verdict !== '1') throw new SerialCopyChecksumError(`the copy of ${destPath} on the board does not match (sha256); it was removed`);
  } catch (error) {
    const leftover = await removePart(repl, part, exec.timeoutMs);
    if (error instanceof SerialCopyError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new SerialCopyError(`copying ${destPath} to the board failed: ${reason}`, leftover ? part : undefined, { cause: error });
  }
  progress('done', total);
  return { bytes: total, chunks, deflated, codeBytes, boardInflates, sha256: digest.toString('hex'), ms: Date.now() - started };
}

/**
 * Removes `<part>` after a failed copy. Resolves true if it may still be there (the board
 * could not be reached). Leaves the raw REPL state as it found it.
 */
async function removePart(repl: RawRepl, part: string, timeoutMs: number): Promise<boolean> {
  const wasOut = !repl.inRawRepl;
  try {
    if (wasOut) await repl.enter({ timeoutMs });
    await repl.execChecked(cleanupCode(part), { timeoutMs });
    if (wasOut) await repl.exit({ timeoutMs });
    return false;
  } catch {
    return true;
  }
}

/** Reads `srcPath` from the board (3 KB per exec as base64), verified with sha256. */
export async function getFile(
  repl: RawRepl,
  srcPath: string,
  options: { onProgress?: (progress: CopyProgress) => void; timeoutMs?: number } = {},
): Promise<Buffer> {
  const exec = { timeoutMs: options.timeoutMs ?? 10_000 };
  const size = Number((await repl.execChecked(`import os\nprint(os.stat(${pythonLiteral(srcPath)})[6])`, exec)).trim());
  if (!Number.isInteger(size) || size < 0) throw new SerialCopyError(`the board reported no size for ${srcPath}`);
  const parts: Buffer[] = [];
  let received = 0;
  try {
    await repl.execChecked(
      [
        'import binascii as _sc_a, hashlib as _sc_h, sys',
        '_sc_s = _sc_h.sha256()',
        `_sc_b = bytearray(${PLAIN_CHUNK_BYTES})`,
        `_sc_f = open(${pythonLiteral(srcPath)}, 'rb')`,
        'def _sc_w():',
        '    n = _sc_f.readinto(_sc_b)',
        '    m = memoryview(_sc_b)[:n]',
        '    _sc_s.update(m)',
        '    sys.stdout.write(_sc_a.b2a_base64(m))',
        '',
      ].join('\n'),
      { ...exec, pipelineNext: true },
    );
    while (received < size) {
      const text = await repl.execChecked('_sc_w()', { ...exec, pipelineNext: true });
      const data = Buffer.from(text.replace(/\s+/g, ''), 'base64');
      if (data.length === 0) throw new SerialCopyError(`${srcPath} ended early on the board (${received} of ${size} bytes)`);
      parts.push(data);
      received += data.length;
      options.onProgress?.({ phase: 'send', bytes: received, total: size });
    }
    const boardDigest = (await repl.execChecked(`_sc_f.close()\nprint(_sc_a.hexlify(_sc_s.digest()).decode())\n${FORGET}`, exec)).trim();
    const data = Buffer.concat(parts);
    if (boardDigest !== createHash('sha256').update(data).digest('hex'))
      throw new SerialCopyChecksumError(`${srcPath} read from the board does not match its sha256`);
    options.onProgress?.({ phase: 'done', bytes: data.length, total: size });
    return data;
  } catch (error) {
    if (error instanceof SerialCopyError) throw error;
    throw new SerialCopyError(`reading ${srcPath} from the board failed: ${error instanceof Error ? error.message : String(error)}`, undefined, {
      cause: error,
    });
  }
}

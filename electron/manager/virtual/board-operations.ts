/**
 * What the reference board does for each operation of PROTOCOL.md §7. Each operation gets
 * the command's fields and a context to send `out`/`dat` entries and to read upload blobs,
 * and returns the fields of its `res` entry.
 */
import { createHash } from 'node:crypto';
import type { RespConnection } from '../redis/resp-connection.js';
import type { MicroPythonInterpreter } from './micropython-interpreter.js';
import { BoardFsError, parentPath, pathSegments, type BoardFs, type DirEntry } from './board-fs.js';

/** Output of one command beyond this is dropped and the result says `tr=1`. */
const MAX_OUTPUT_BYTES = 256 * 1024;
/** How often a running exec looks for a Stop request. */
const STOP_POLL_MS = 250;
/** Output is sent when this much is buffered, or after FLUSH_MS. */
const OUTPUT_CHUNK_BYTES = 1024;
const FLUSH_MS = 50;
const SECRET_KEYS = ['wifi_password', 'password', 'dk'];
/** Credentials, and the name, which only `rename` changes (the manager keeps names unique). */
const PROTECTED_KEYS = ['id', 'user', 'password', 'dk', 'name'];
/** Keys the board itself reads, and their ranges (PROTOCOL.md §7.5). */
const INTEGER_KEYS: Record<string, [number, number]> = { hb: [1, 300], port: [1, 65535], dp: [1, 65535] };
/** Paths one `hash` may name (§7.4). */
const MAX_HASH_PATHS = 32;

export interface OperationContext {
  boardId: string;
  contextId: string;
  fs: BoardFs;
  interpreter: MicroPythonInterpreter;
  config: Record<string, unknown>;
  saveConfig(): Promise<void>;
  info(): Record<string, unknown>;
  /** Queues one uplink entry (delivered in order, retried across reconnects). */
  send(fields: Array<string | Buffer>): void;
  /** The live connection, waiting for a reconnect if there is none. */
  connection(): Promise<RespConnection>;
  /** Size of the chunks pulled from upload blobs (a power of two ≥ 1024). */
  chunkBytes: number;
  /** Called with each exec'd command id, for the board's own execution log. */
  onExec(cid: string): void;
  /** Whether the manager asks to stop command `cid` (PROTOCOL.md §4.4). */
  stopRequested(cid: string): Promise<boolean>;
  /** The `n` of this command's last `dat` the manager acknowledged (state `ack`), or -1. */
  acknowledged(cid: string): Promise<number>;
}

export type ResultFields = Array<string | Buffer>;

class OperationError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function field(fields: Map<string, Buffer>, name: string): string {
  const value = fields.get(name);
  if (value === undefined) throw new OperationError('EINVAL', `missing field ${name}`);
  return value.toString('utf8');
}

function ok(sent: number, result?: unknown, truncated = false): ResultFields {
  const res: ResultFields = ['ok', '1', 'n', String(sent)];
  if (result !== undefined) res.push('r', JSON.stringify(result));
  if (truncated) res.push('tr', '1');
  return res;
}

function failure(sent: number, code: string, message: string): ResultFields {
  return ['ok', '0', 'n', String(sent), 'ec', code, 'e', message.slice(0, 1000)];
}

/** The first entries of a listing that fit one `r`: at most 1000, at most 16 KiB of JSON (§7.4). */
function listingWithin(entries: DirEntry[]): DirEntry[] {
  let bytes = 2;
  let count = 0;
  for (const entry of entries.slice(0, 1000)) {
    bytes += Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (bytes > 16 * 1024) break;
    count += 1;
  }
  return entries.slice(0, count);
}

/** Entries of a `get` a board may send past the manager's acknowledgement (§7.3). */
const DATA_WINDOW = 256;
const DATA_STALL_MS = 30_000;

/** Waits until the manager has read far enough to send entry `next`; its acknowledged `n`. */
async function waitForAcknowledgement(context: OperationContext, cid: string, next: number): Promise<number> {
  let acked = -1;
  let progressAt = Date.now();
  for (;;) {
    const now = await context.acknowledged(cid);
    if (now > acked) progressAt = Date.now();
    acked = now;
    if (next - acked <= DATA_WINDOW - DATA_WINDOW / 4) return acked;
    if (Date.now() - progressAt > DATA_STALL_MS)
      throw new OperationError('ETIMEDOUT', `the manager stopped reading the file (no acknowledgement for ${DATA_STALL_MS / 1000} s)`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Runs one command and returns its `res` fields (never throws). */
export async function runOperation(context: OperationContext, cid: string, fields: Map<string, Buffer>): Promise<ResultFields> {
  const sequence = { next: 0 };
  const op = fields.get('o')?.toString('latin1') ?? '';
  try {
    switch (op) {
      case 'exec':
        return await exec(context, cid, fields, sequence);
      case 'put':
        return ok(sequence.next, await put(context, fields));
      case 'get':
        return await get(context, cid, fields, sequence);
      case 'ls': {
        const entries = (await context.fs.list(field(fields, 'p'))).sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
        const listed = listingWithin(entries);
        return ok(0, listed, listed.length < entries.length);
      }
      case 'stat':
        return ok(0, await context.fs.stat(field(fields, 'p')));
      case 'rm':
        await context.fs.remove(field(fields, 'p'), fields.get('r')?.toString() === '1');
        return ok(0, {});
      case 'mkdir':
        await context.fs.mkdir(field(fields, 'p'));
        return ok(0, {});
      case 'mv':
        await context.fs.rename(field(fields, 'p'), field(fields, 'to'));
        return ok(0, {});
      case 'hash':
        return ok(0, await hash(context, fields));
      case 'rename':
        context.config.name = field(fields, 'nm');
        await context.saveConfig();
        return ok(0, { name: context.config.name });
      case 'cfg_get': {
        const shown: Record<string, unknown> = { ...context.config };
        for (const key of SECRET_KEYS) if (key in shown) shown[key] = '********';
        return ok(0, shown);
      }
      case 'cfg_set': {
        const key = field(fields, 'key');
        if (PROTECTED_KEYS.includes(key)) throw new OperationError('EFORBIDDEN', `${key} cannot be set remotely${key === 'name' ? ' (use rename)' : ''}`);
        let value: unknown;
        try {
          value = JSON.parse(field(fields, 'v'));
        } catch {
          throw new OperationError('EINVAL', 'value is not JSON');
        }
        const range = INTEGER_KEYS[key];
        if (range && !(Number.isInteger(value) && (value as number) >= range[0] && (value as number) <= range[1])) {
          throw new OperationError('EINVAL', `${key} must be a whole number from ${range[0]} to ${range[1]}`);
        }
        context.config[key] = value;
        await context.saveConfig();
        return ok(0, {});
      }
      case 'info':
        return ok(0, context.info());
      default:
        return failure(0, 'EUNSUPPORTED', `unknown operation ${JSON.stringify(op)}`);
    }
  } catch (error) {
    if (error instanceof OperationError || error instanceof BoardFsError) return failure(sequence.next, error.code, error.message);
    return failure(sequence.next, 'EFAIL', (error as Error).message ?? String(error));
  }
}

async function exec(context: OperationContext, cid: string, fields: Map<string, Buffer>, sequence: { next: number }): Promise<ResultFields> {
  const code = field(fields, 'c');
  // t=0 means no limit (§7.1): the longest a timer can wait stands in for it.
  const requested = Number(fields.get('t')?.toString() ?? '30000');
  const timeoutMs = Number.isFinite(requested) && requested > 0 ? Math.min(requested, 2 ** 31 - 1) : 2 ** 31 - 1;
  let pending: { stream: 1 | 2; parts: Uint8Array[]; bytes: number } | null = null;
  let sentBytes = 0;
  let truncated = false;
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (!pending) return;
    const data = Buffer.concat(pending.parts);
    context.send(['k', 'out', 'i', cid, 'n', String(sequence.next++), 's', String(pending.stream), 'd', data]);
    pending = null;
  };
  const onOutput = (stream: 'stdout' | 'stderr', data: Uint8Array) => {
    if (sentBytes + data.length > MAX_OUTPUT_BYTES) {
      truncated = true;
      return;
    }
    sentBytes += data.length;
    const streamNumber = stream === 'stdout' ? 1 : 2;
    if (pending && pending.stream !== streamNumber) flush();
    pending ??= { stream: streamNumber, parts: [], bytes: 0 };
    pending.parts.push(data);
    pending.bytes += data.length;
    if (pending.bytes >= OUTPUT_CHUNK_BYTES) flush();
    else timer ??= setTimeout(flush, FLUSH_MS);
  };
  context.onExec(cid);
  // A user's Stop arrives as the state hash's `stop` field (§4.4): looked at while the code
  // runs. Not while it waits for the process's shared interpreter, which a real board, with
  // a CPU of its own, never does: at a broadcast to 10,000 lab boards on the lab cluster the
  // waiting ones polled 160,000 times, and the broadcast took 50–105 s (12–13 s without).
  const stop = new AbortController();
  let polling = false;
  const poll = () => {
    if (polling) return;
    polling = true;
    context
      .stopRequested(cid)
      .then(
        (asked) => asked && stop.abort(),
        () => undefined,
      )
      .finally(() => (polling = false));
  };
  let polls: NodeJS.Timeout | undefined;
  const onStart = () => (polls = setInterval(poll, STOP_POLL_MS));
  let result;
  try {
    result = await context.interpreter.exec(context.contextId, code, { timeoutMs, onOutput, signal: stop.signal, onStart });
  } finally {
    clearInterval(polls);
  }
  flush();
  switch (result.status) {
    case 'ok':
      return ok(sequence.next, undefined, truncated);
    case 'timeout':
      return [...failure(sequence.next, 'ETIMEDOUT', `stopped after ${timeoutMs} ms`), ...(truncated ? ['tr', '1'] : [])];
    case 'stopped':
      return [...failure(sequence.next, 'EINTR', 'stopped on request'), ...(truncated ? ['tr', '1'] : [])];
    case 'error': {
      const error = result.error ?? 'error';
      const code = error.startsWith('MemoryError') ? 'ENOMEM' : 'EFAIL';
      return [...failure(sequence.next, code, error), ...(truncated ? ['tr', '1'] : [])];
    }
    default:
      return failure(sequence.next, 'EFAIL', `the interpreter restarted: ${result.error ?? ''}`.trim());
  }
}

async function put(context: OperationContext, fields: Map<string, Buffer>): Promise<unknown> {
  const destination = field(fields, 'p');
  const size = Number(field(fields, 'z'));
  const expected = field(fields, 'h').toLowerCase();
  const prefix = field(fields, 'k');
  const partSize = Number(field(fields, 'ps'));
  if (!Number.isSafeInteger(size) || size < 0 || !Number.isSafeInteger(partSize) || partSize < 1024 || (partSize & (partSize - 1)) !== 0) {
    throw new OperationError('EINVAL', 'bad size or part size');
  }
  const chunk = Math.min(context.chunkBytes, partSize);
  const content = Buffer.alloc(size);
  for (let offset = 0; offset < size; offset += chunk) {
    const part = Math.floor(offset / partSize);
    const from = offset % partSize;
    const to = Math.min(from + chunk, from + (size - offset)) - 1;
    const data = await readBlobChunk(context, `${prefix}:${part}`, from, to);
    if (data.length !== to - from + 1) throw new OperationError('EINVAL', `upload data missing at byte ${offset} (expired?)`);
    data.copy(content, offset);
  }
  const digest = createHash('sha256').update(content).digest('hex');
  if (digest !== expected) throw new OperationError('EHASH', `sha256 mismatch: expected ${expected}, got ${digest}`);
  // Temp name + rename: the destination is either the old file or the complete new one.
  const temp = `${destination}.part`;
  await context.fs.mkdir(parentPath(destination));
  await context.fs.writeFile(temp, content);
  try {
    await context.fs.rename(temp, destination);
  } catch (error) {
    await context.fs.remove(temp, false).catch(() => undefined);
    throw error;
  }
  return { size, sha256: digest };
}

/** SHA-256 of each file `pl` names, keyed by the path as sent; null for a missing path or a directory (§7.4). */
async function hash(context: OperationContext, fields: Map<string, Buffer>): Promise<Record<string, string | null>> {
  let paths: unknown;
  try {
    paths = JSON.parse(field(fields, 'pl'));
  } catch {
    throw new OperationError('EINVAL', 'pl is not JSON');
  }
  if (!Array.isArray(paths) || paths.length < 1 || paths.length > MAX_HASH_PATHS || !paths.every((path) => typeof path === 'string')) {
    throw new OperationError('EINVAL', `pl must be a JSON array of 1 to ${MAX_HASH_PATHS} paths`);
  }
  for (const path of paths as string[]) pathSegments(path); // every path checked before any file is read
  const hashes: Record<string, string | null> = {};
  for (const path of paths as string[]) {
    try {
      hashes[path] = createHash('sha256')
        .update(await context.fs.readFile(path))
        .digest('hex');
    } catch (error) {
      if (!(error instanceof BoardFsError && ['ENOENT', 'EISDIR', 'ENOTDIR'].includes(error.code))) throw error;
      hashes[path] = null;
    }
  }
  return hashes;
}

/** GETRANGE on the live connection; a dropped connection is waited out, not fatal. */
async function readBlobChunk(context: OperationContext, key: string, from: number, to: number): Promise<Buffer> {
  for (let attempt = 0; ; attempt++) {
    const connection = await context.connection();
    try {
      const reply = await connection.call('GETRANGE', key, from, to);
      return Buffer.isBuffer(reply) ? reply : Buffer.alloc(0);
    } catch (error) {
      if (attempt >= 20) throw error;
    }
  }
}

async function get(context: OperationContext, cid: string, fields: Map<string, Buffer>, sequence: { next: number }): Promise<ResultFields> {
  const content = await context.fs.readFile(field(fields, 'p'));
  const chunk = Math.max(1024, Math.min(Number(fields.get('ch')?.toString() ?? '4096') || 4096, 16 * 1024));
  let acked = -1;
  for (let offset = 0; offset < content.length; offset += chunk) {
    if (sequence.next - acked > DATA_WINDOW) acked = await waitForAcknowledgement(context, cid, sequence.next);
    context.send(['k', 'dat', 'i', cid, 'n', String(sequence.next++), 'o', String(offset), 'd', content.subarray(offset, offset + chunk)]);
  }
  return ok(sequence.next, { size: content.length, sha256: createHash('sha256').update(content).digest('hex') });
}

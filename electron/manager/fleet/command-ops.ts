/**
 * The operations the manager can send to a board (firmware/PROTOCOL.md §7): their typed
 * form, validation, and their encoding as queue-entry fields.
 */
import { MAX_HEARTBEAT_S, MIN_HEARTBEAT_S } from './board-registry.js';
import { InvalidCommandError } from '../errors.js';
import { MAX_FILE_BYTES, validateBoardPath } from '../transfer/board-path.js';

export { InvalidCommandError } from '../errors.js';
export { MAX_FILE_BYTES, validateBoardPath } from '../transfer/board-path.js';
export type CommandRequest =
  | { op: 'exec'; code: string; timeoutMs?: number }
  | { op: 'put'; path: string; data: Buffer }
  | { op: 'get'; path: string }
  | { op: 'ls'; path: string }
  | { op: 'stat'; path: string }
  | { op: 'rm'; path: string; recursive?: boolean }
  | { op: 'mkdir'; path: string }
  | { op: 'mv'; path: string; to: string }
  | { op: 'hash'; paths: string[] }
  | { op: 'reboot' }
  | { op: 'rename'; name: string }
  | { op: 'cfg_get' }
  | { op: 'cfg_set'; key: string; value: unknown }
  | { op: 'info' };

export type CommandOp = CommandRequest['op'];
export const COMMAND_OPS: readonly CommandOp[] = [
  'exec',
  'put',
  'get',
  'ls',
  'stat',
  'rm',
  'mkdir',
  'mv',
  'hash',
  'reboot',
  'rename',
  'cfg_get',
  'cfg_set',
  'info',
];

export const MAX_CODE_BYTES = 64 * 1024;
/** Paths one `hash` command may ask about. */
export const MAX_HASH_PATHS = 32;
/**
 * Bytes of `hash`'s path list (its JSON) at most. A board holds the list and its answer
 * (the list again, plus 70 bytes a path) at once: a 36 KB ESP8266-class board answers 4 KB
 * of paths with about 6 KB of heap to spare, and runs out at 6 KB. Use hashBatches.
 */
export const MAX_HASH_LIST_BYTES = 4096;
/** `hash`'s result: each requested path's SHA-256 (lowercase hex), null for a missing path or a directory. */
export type HashResult = Record<string, string | null>;
/** `info`'s result (PROTOCOL.md §7.5). mpy: the .mpy ABI the board loads (sys.implementation._mpy), 0 or absent when unknown. */
export interface BoardInfoResult {
  p: string;
  mv: string;
  cv: string;
  mf: number;
  ip: string;
  boot: string;
  mpy?: number;
}
export const DEFAULT_EXEC_TIMEOUT_MS = 30_000;
/** Config keys that hold credentials: never settable remotely, never shown. */
export const PROTECTED_CONFIG_KEYS = ['id', 'user', 'password', 'dk'];
export const SECRET_CONFIG_KEYS = ['wifi_password', 'password', 'dk'];
export const REDACTED = '********';
/**
 * A key whose value is shown masked wherever it sits in a config or a command: the board's
 * own secrets, and whatever a user keeps beside them (`wifi.password`, `mqtt_token`, `api_key`).
 */
const SECRET_KEY = /pass|secret|token|key|psk|credential|^dk$/i;
/** Deeper than this, a value is masked whole: a board's JSON is at most 16 KiB, but may nest that deep. */
const MAX_MASK_DEPTH = 32;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/**
 * Keys the board client itself reads (PROTOCOL.md §8) must have values it can use; the
 * name belongs to the manager, which keeps names unique (`rename`). Other keys are the
 * user's own and are kept as given.
 */
const text =
  (max: number, min = 1) =>
  (value: unknown) =>
    typeof value === 'string' && Buffer.byteLength(value) >= min && Buffer.byteLength(value) <= max;
const int = (min: number, max: number) => (value: unknown) => Number.isInteger(value) && (value as number) >= min && (value as number) <= max;
/** Known config keys: a check of the value, and what to say when it fails. */
const CONFIG_RULES: Record<string, [(value: unknown) => boolean, string]> = {
  name: [() => false, "is the board's name: use rename (mbm board-rename), which keeps names unique"],
  hb: [int(MIN_HEARTBEAT_S, MAX_HEARTBEAT_S), `must be a whole number of seconds from ${MIN_HEARTBEAT_S} to ${MAX_HEARTBEAT_S}`],
  server: [text(253), 'must be a host name or address (text, at most 253 bytes)'],
  port: [int(1, 65535), 'must be a port number from 1 to 65535'],
  dp: [int(1, 65535), 'is the discovery port and must be a port number from 1 to 65535'],
  wifi_ssid: [text(32), 'must be text of 1 to 32 bytes'],
  wifi_password: [text(64, 0), 'must be text of at most 64 bytes'],
};

function checkKnownConfigValue(key: string, value: unknown): void {
  const rule = Object.hasOwn(CONFIG_RULES, key) ? CONFIG_RULES[key] : undefined;
  if (rule && !rule[0](value)) throw new InvalidCommandError(`config key "${key}" ${rule[1]}`);
}

/** Checks a request completely (throws InvalidCommandError), before anything is queued. */
export function validateCommandRequest(request: CommandRequest): void {
  if (request.op === 'put') {
    validateBoardPath(request.path, 'destination');
    if (request.data.length > MAX_FILE_BYTES) throw new InvalidCommandError(`file is larger than ${MAX_FILE_BYTES / 1024 / 1024} MiB`);
  } else {
    encodeCommandFields(request, 1);
  }
}

/** Validates a request and returns the entry fields for everything but `put`'s blob. */
export function encodeCommandFields(request: CommandRequest, timeoutMs: number): Array<string | Buffer> {
  switch (request.op) {
    case 'exec': {
      const code = Buffer.from(request.code, 'utf8');
      if (code.length > MAX_CODE_BYTES) throw new InvalidCommandError(`code is larger than ${MAX_CODE_BYTES / 1024} KiB`);
      return ['o', 'exec', 'c', code, 't', String(timeoutMs)];
    }
    case 'get':
      return ['o', 'get', 'p', validateBoardPath(request.path), 'ch', '4096'];
    case 'ls':
    case 'stat':
    case 'mkdir':
      return ['o', request.op, 'p', validateBoardPath(request.path)];
    case 'rm':
      return ['o', 'rm', 'p', validateBoardPath(request.path), ...(request.recursive ? ['r', '1'] : [])];
    case 'mv':
      return ['o', 'mv', 'p', validateBoardPath(request.path), 'to', validateBoardPath(request.to, 'destination')];
    case 'hash':
      return ['o', 'hash', 'pl', JSON.stringify(validateHashPaths(request.paths))];
    case 'rename':
      return ['o', 'rename', 'nm', request.name];
    case 'cfg_set': {
      if (!/^[a-z][a-z0-9_]{0,31}$/.test(request.key))
        throw new InvalidCommandError(`config key ${JSON.stringify(request.key)} must be 1-32 characters a-z, 0-9 and _`);
      if (PROTECTED_CONFIG_KEYS.includes(request.key))
        throw new InvalidCommandError(`config key "${request.key}" holds the board's credentials and cannot be set remotely`);
      checkKnownConfigValue(request.key, request.value);
      const value = JSON.stringify(request.value);
      if (value === undefined || value.length > 1024) throw new InvalidCommandError('config value must be JSON of at most 1 KiB');
      return ['o', 'cfg_set', 'key', request.key, 'v', value];
    }
    case 'reboot':
    case 'cfg_get':
    case 'info':
      return ['o', request.op];
    case 'put':
      throw new InvalidCommandError('put is encoded by the transfer module');
  }
}

/**
 * The paths of a `hash` command, normalised: 1 to MAX_HASH_PATHS, each a valid board path,
 * none twice, at most MAX_HASH_LIST_BYTES of JSON.
 */
export function validateHashPaths(paths: unknown): string[] {
  if (!Array.isArray(paths) || paths.length === 0) throw new InvalidCommandError('hash needs at least one path');
  if (paths.length > MAX_HASH_PATHS) throw new InvalidCommandError(`hash takes at most ${MAX_HASH_PATHS} paths at a time (got ${paths.length}): split them`);
  const seen = new Set<string>();
  for (const path of paths) {
    const normalised = validateBoardPath(path as string);
    if (seen.has(normalised)) throw new InvalidCommandError(`hash names ${JSON.stringify(normalised)} twice`);
    seen.add(normalised);
  }
  const normalised = [...seen];
  const bytes = Buffer.byteLength(JSON.stringify(normalised));
  if (bytes > MAX_HASH_LIST_BYTES) {
    throw new InvalidCommandError(`hash takes at most ${MAX_HASH_LIST_BYTES} bytes of paths at a time (got ${bytes}, a small board's memory): split them`);
  }
  return normalised;
}

/** Splits paths (normalised, each once) into lists one `hash` command each may carry: within MAX_HASH_PATHS and MAX_HASH_LIST_BYTES. */
export function hashBatches(paths: readonly string[]): string[][] {
  const batches: string[][] = [];
  let batch: string[] = [];
  let bytes = 2; // []
  for (const path of new Set(paths.map((path) => validateBoardPath(path)))) {
    const size = Buffer.byteLength(JSON.stringify(path)) + 1; // and its comma
    if (batch.length === MAX_HASH_PATHS || (batch.length > 0 && bytes + size > MAX_HASH_LIST_BYTES + 1)) {
      batches.push(batch);
      batch = [];
      bytes = 2;
    }
    batch.push(path);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/**
 * A board's answer to `hash` checked against what was asked: every path present, each a
 * SHA-256 in lowercase hex or null. Keys are the normalised paths (as sent). Throws otherwise.
 */
export function parseHashResult(paths: string[], result: unknown): HashResult {
  if (result === null || typeof result !== 'object' || Array.isArray(result)) throw new Error('the board answered hash without an object of hashes');
  const answer = result as Record<string, unknown>;
  const hashes: HashResult = {};
  for (const path of validateHashPaths(paths)) {
    const value = Object.hasOwn(answer, path) ? answer[path] : undefined;
    if (value !== null && !(typeof value === 'string' && /^[0-9a-f]{64}$/.test(value))) {
      throw new Error(`the board's hash of ${JSON.stringify(path)} is not a SHA-256 or null: ${JSON.stringify(value)?.slice(0, 80)}`);
    }
    hashes[path] = value;
  }
  return hashes;
}

/** A one-line description of a command for lists and history (no file contents, no secrets). */
export function describeCommand(request: CommandRequest): string {
  switch (request.op) {
    case 'exec': {
      const firstLine = request.code.split('\n', 1)[0] ?? '';
      return `exec ${firstLine.length > 60 ? firstLine.slice(0, 57) + '...' : firstLine}`;
    }
    case 'put':
      return `put ${request.path} (${request.data.length} bytes)`;
    case 'mv':
      return `mv ${request.path} ${request.to}`;
    case 'rm':
      return `rm ${request.recursive ? '-r ' : ''}${request.path}`;
    case 'get':
    case 'ls':
    case 'stat':
    case 'mkdir':
      return `${request.op} ${request.path}`;
    case 'hash':
      return `hash ${request.paths[0] ?? ''}${request.paths.length > 1 ? ` (+${request.paths.length - 1} more)` : ''}`;
    case 'rename':
      return `rename ${request.name}`;
    case 'cfg_set':
      return `cfg_set ${request.key}${isSecretKey(request.key) ? '' : '=' + JSON.stringify(maskSecrets(request.value)).slice(0, 40)}`;
    default:
      return request.op;
  }
}

/**
 * `value` with the values of secret keys masked, in nested objects and arrays and inside
 * strings that hold JSON (`set mqtt='{"token":…}'` stores one).
 */
export function maskSecrets(value: unknown, depth = 0): unknown {
  if (depth > MAX_MASK_DEPTH) return REDACTED;
  if (typeof value === 'string') return maskJsonText(value, depth);
  if (Array.isArray(value)) return value.map((item) => maskSecrets(item, depth + 1));
  if (value === null || typeof value !== 'object') return value;
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) copy[key] = isSecretKey(key) ? REDACTED : maskSecrets(item, depth + 1);
  return copy;
}

function maskJsonText(text: string, depth: number): string {
  const start = text.trimStart()[0];
  if (start !== '{' && start !== '[') return text;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return text;
  }
  return JSON.stringify(maskSecrets(parsed, depth + 1));
}

/** A board config as it may be shown: every secret masked (defence in depth: boards mask their own keys too). */
export function redactConfig(config: unknown): unknown {
  return maskSecrets(config);
}

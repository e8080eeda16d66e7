/**
 * The files a board receives when it is provisioned: the board client (firmware/*.py) and
 * its configuration (PROTOCOL.md §8). Built entirely in memory on the host, so a bad input
 * or a compile error fails before anything is sent and nothing is half-written.
 *
 * Modules go as `.mpy` bytecode compiled here when the board loads ABI-6 `.mpy` (smaller,
 * and the board skips parsing and compiling them, which costs heap it does not have), else
 * as `.py` source. `main.py` (and `boot.py`) always stay source: MicroPython runs those
 * two by their `.py` path at start-up and would ignore a `.mpy`.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { packageRoot } from '../package-info.js';
import { canLoadMpyV6, compileToMpy } from '../packages/mpy-cross.js';
import { assertBoardId, assertBoardName, boardUser, InvalidIdError } from '../redis/keys.js';
import type { BoardCredentials } from './fleet.js';
import { MAX_HEARTBEAT_S, MIN_HEARTBEAT_S } from './board-registry.js';
import { sha256 } from '../transfer/upload-blob.js';
import { ManagerError, type ErrorKind } from '../errors.js';

/** The input of buildProvisioningPayload was refused; `field` names the offending value. */
export class ProvisioningInputError extends ManagerError {
  override name = 'ProvisioningInputError';
  readonly kind: ErrorKind = 'bad_request';
  constructor(
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The firmware folder is missing or lacks the entry point. */
export class FirmwareFolderError extends Error {
  override name = 'FirmwareFolderError';
}

export interface ProvisioningInput {
  wifi: { ssid: string; password: string };
  /** Where the board connects: the manager's Redis as reachable from the board's network. */
  server: { host: string; port: number };
  credentials: BoardCredentials;
  /** The board's name; defaults to credentials.name. */
  name?: string;
  /** The board's `sys.implementation._mpy`; null/undefined when unknown (then: source). */
  mpy?: number | null;
  /** Folder of the board client; defaults to the package's firmware/ folder. */
  firmwareDir?: string;
}

export interface ProvisioningFile {
  /** Absolute path on the board, e.g. `/cm_boot.mpy`. */
  path: string;
  data: Buffer;
  /** Hex sha256 of data. */
  sha256: string;
}

export interface ProvisioningPayload {
  /**
   * In write order: modules, then `/cm_config.json`, then `/main.py` (and `/boot.py`) last,
   * so an interrupted transfer never leaves a new entry point importing missing modules.
   */
  files: ProvisioningFile[];
  format: 'mpy' | 'py';
  totalBytes: number;
  /**
   * Paths to delete on the board before writing `files`: each module in the other format.
   * MicroPython's import tries `name.py` before `name.mpy`, so a `.py` left from an earlier
   * source install would silently shadow the new bytecode.
   */
  remove: string[];
}

/** The configuration file of the board client; its keys are fixed by PROTOCOL.md §8. */
export const CONFIG_PATH = '/cm_config.json';
/** Files MicroPython executes by their `.py` path at start-up: never compiled. */
const SOURCE_ONLY = new Set(['main.py', 'boot.py']);

/** Builds the provisioning files for one board (validates the input first). */
export async function buildProvisioningPayload(input: ProvisioningInput): Promise<ProvisioningPayload> {
  const config = validatedConfig(input);
  const format = canLoadMpyV6(input.mpy) ? 'mpy' : 'py';
  const dir = input.firmwareDir ?? path.join(await packageRoot(), 'firmware');
  const { modules, entryPoints } = await listFirmware(dir);

  const files: ProvisioningFile[] = [];
  const remove: string[] = [];
  for (const fileName of modules) {
    const stem = fileName.slice(0, -'.py'.length);
    if (format === 'mpy') {
      const source = await readFile(path.join(dir, fileName), 'utf8');
      // The embedded name is the board path without the slash: board tracebacks name it.
      // -O3 drops line-number tables: about 300 bytes less RAM on a 36 KB board for the
      // client alone; tracebacks of user code (compiled on the board) are unaffected.
      files.push(entry(`/${stem}.mpy`, await compileToMpy(fileName, source, { optimize: 3 })));
      remove.push(`/${stem}.py`);
    } else {
      files.push(entry(`/${fileName}`, await readFile(path.join(dir, fileName))));
      remove.push(`/${stem}.mpy`);
    }
  }
  files.push(entry(CONFIG_PATH, Buffer.from(JSON.stringify(config), 'utf8')));
  for (const fileName of entryPoints) files.push(entry(`/${fileName}`, await readFile(path.join(dir, fileName))));

  return { files, format, totalBytes: files.reduce((sum, file) => sum + file.data.length, 0), remove };
}

function entry(boardPath: string, data: Buffer): ProvisioningFile {
  return { path: boardPath, data, sha256: sha256(data) };
}

/**
 * The board client's files, read from the folder so a new module needs no code change.
 * Skipped: `_…` (private helpers, `__init__`) and `test_…` (host-side tests).
 */
async function listFirmware(dir: string): Promise<{ modules: string[]; entryPoints: string[] }> {
  let names: string[];
  try {
    const dirents = await readdir(dir, { withFileTypes: true });
    names = dirents.filter((d) => d.isFile()).map((d) => d.name);
  } catch (error) {
    throw new FirmwareFolderError(`cannot read the firmware folder ${dir}: ${(error as Error).message}`, { cause: error });
  }
  const python = names.filter((name) => name.endsWith('.py') && !name.startsWith('_') && !name.startsWith('test_')).sort();
  if (!python.includes('main.py')) throw new FirmwareFolderError(`the firmware folder ${dir} has no main.py`);
  return {
    modules: python.filter((name) => !SOURCE_ONLY.has(name)),
    // boot.py before main.py: the order MicroPython runs them in.
    entryPoints: ['boot.py', 'main.py'].filter((name) => python.includes(name)),
  };
}

/** The board's configuration file: its credentials plus the wifi it joins. */
type BoardConfig = Omit<BoardCredentials, 'v'> & { wifi_ssid: string; wifi_password: string };

/**
 * Checks the wifi and server settings a board is provisioned with (throws
 * ProvisioningInputError). Exported so a caller can refuse bad settings before it
 * changes anything (enrollment re-keys a board).
 */
export function checkNetworkSettings(
  wifi: { ssid: unknown; password: unknown },
  server: { host: unknown; port: unknown },
): { ssid: string; password: string; host: string; port: number } {
  // Wifi: 802.11 limits an SSID to 32 bytes; a WPA passphrase is 8–63 characters, and the
  // ESP8266 keeps it in a 64-byte field (64 bytes would be read as a raw hex key).
  const ssid: unknown = wifi.ssid;
  if (typeof ssid !== 'string' || ssid.length === 0) throw new ProvisioningInputError('wifi.ssid', 'the wifi name (SSID) is empty');
  const ssidBytes = Buffer.byteLength(ssid, 'utf8');
  if (ssidBytes > 32) {
    throw new ProvisioningInputError('wifi.ssid', `the wifi name (SSID) is ${ssidBytes} bytes long; at most 32 bytes are allowed`);
  }
  const password: unknown = wifi.password;
  if (typeof password !== 'string') throw new ProvisioningInputError('wifi.password', 'the wifi password must be a string (empty for an open network)');
  const passwordChars = [...password].length;
  if (password !== '' && (passwordChars < 8 || passwordChars > 63)) {
    throw new ProvisioningInputError(
      'wifi.password',
      `the wifi password has ${passwordChars} characters; it must be 8 to 63 characters, or empty for an open network`,
    );
  }
  if (Buffer.byteLength(password, 'utf8') > 63) {
    throw new ProvisioningInputError('wifi.password', 'the wifi password is longer than 63 bytes in UTF-8 (the board cannot store it)');
  }

  // Server: what the board will dial, as the board's network reaches the manager.
  const host: unknown = server.host;
  if (typeof host !== 'string' || host.length === 0) throw new ProvisioningInputError('server.host', 'the server host is empty');
  if (/\s/.test(host) || host.length > 253) {
    throw new ProvisioningInputError(
      'server.host',
      `the server host ${JSON.stringify(host.slice(0, 64))} is not a host name or address (no spaces, at most 253 characters)`,
    );
  }
  const port: unknown = server.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ProvisioningInputError('server.port', `the server port ${String(port)} is not a whole number from 1 to 65535`);
  }

  return { ssid, password, host, port };
}

/** Checks every input value and returns the board configuration (keys in PROTOCOL.md order). */
function validatedConfig(input: ProvisioningInput): BoardConfig {
  if (typeof input !== 'object' || input === null) throw new ProvisioningInputError('input', 'provisioning input must be an object');
  const { wifi, server, credentials } = input;
  if (typeof wifi !== 'object' || wifi === null) throw new ProvisioningInputError('wifi', 'wifi settings are missing');
  if (typeof server !== 'object' || server === null) throw new ProvisioningInputError('server', 'server settings are missing');
  if (typeof credentials !== 'object' || credentials === null) {
    throw new ProvisioningInputError('credentials', 'board credentials are missing');
  }

  const { ssid, password, host, port } = checkNetworkSettings(wifi, server);

  // Identity: the same rules the key builder enforces, so the board's keys and ACL match.
  const id = checkedId(assertBoardId, credentials.id, 'credentials.id');
  const name = checkBoardName(input.name ?? credentials.name);
  if (credentials.user !== boardUser(id)) {
    throw new ProvisioningInputError(
      'credentials.user',
      `the credentials' Redis user must be ${boardUser(id)} (PROTOCOL.md §1): they belong to another board or are damaged`,
    );
  }
  if (typeof credentials.password !== 'string' || credentials.password.length === 0) {
    throw new ProvisioningInputError('credentials.password', 'the credentials have no board password');
  }
  const hb: unknown = credentials.hb;
  if (typeof hb !== 'number' || !Number.isInteger(hb) || hb < MIN_HEARTBEAT_S || hb > MAX_HEARTBEAT_S) {
    throw new ProvisioningInputError('credentials.hb', `the heartbeat period ${String(hb)} is not a whole number of seconds from 1 to 300`);
  }
  // Optional: credentials from before discovery have none, and such a board never runs it.
  const dk: unknown = credentials.dk;
  if (dk !== undefined && (typeof dk !== 'string' || !/^[0-9a-f]{64}$/.test(dk))) {
    throw new ProvisioningInputError(
      'credentials.dk',
      'the discovery key (dk) is damaged: it must be 64 lowercase hex characters; enroll the board again (rotate)',
    );
  }

  const dp: unknown = credentials.dp;
  if (dp !== undefined && (typeof dp !== 'number' || !Number.isInteger(dp) || dp < 1 || dp > 65535)) {
    throw new ProvisioningInputError('credentials.dp', `the discovery port ${String(dp)} is not a whole number from 1 to 65535`);
  }

  const mpy: unknown = input.mpy;
  if (mpy !== undefined && mpy !== null && (typeof mpy !== 'number' || !Number.isSafeInteger(mpy) || mpy < 0)) {
    throw new ProvisioningInputError('mpy', `sys.implementation._mpy must be a non-negative integer or unknown, got ${String(mpy)}`);
  }

  return {
    id,
    name,
    user: credentials.user,
    password: credentials.password,
    server: host,
    port,
    hb,
    ...(dk === undefined ? {} : { dk }),
    ...(dp === undefined ? {} : { dp }),
    wifi_ssid: ssid,
    wifi_password: password,
  };
}

/** A board name as provisioning accepts it (throws ProvisioningInputError for field `name`). */
export function checkBoardName(name: unknown): string {
  return checkedId(assertBoardName, name, 'name');
}

function checkedId(assert: (value: string) => string, value: unknown, field: string): string {
  // The key builder's patterns would accept a number coerced to text: insist on a string.
  if (typeof value !== 'string') throw new ProvisioningInputError(field, `${field} must be a string`);
  try {
    return assert(value);
  } catch (error) {
    if (error instanceof InvalidIdError) throw new ProvisioningInputError(field, error.message, { cause: error });
    throw error;
  }
}

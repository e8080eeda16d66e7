/**
 * Provisioning a board that runs MicroPython, over its USB serial console: enter the raw
 * REPL, learn which bytecode it loads, enroll it (its own Redis user), write the client
 * and its configuration (wifi, server, name, credentials) with the fast serial copy,
 * enable autostart (main.py), turn the board's own wifi access point off, soft-reset, and
 * wait until it is online in the fleet. Whatever fails, the board is left out of the raw
 * REPL.
 *
 * Online means a `hello` from the board's new start: one whose boot id differs from the
 * one the fleet knew before the restart (the registry may still show the board online from
 * before provisioning, for up to two heartbeats). Meanwhile the port stays open: the client
 * prints how joining the wifi went (`cm: wifi "SSID" wrong password (status 2)`,
 * PROTOCOL.md §8), so a board that cannot join fails within WIFI_JOIN_MS with what to
 * check, and one that joined but never says hello is told apart from it.
 *
 * The access point: MicroPython's first boot on an ESP8266 leaves it on (an open door
 * named MicroPython-xxxxxx with the documented password micropythoN), and the ESP8266's
 * SDK keeps its on/off state in flash, so turning it off once lasts across reboots. On a
 * port without `network` (or without an access point) the step does nothing.
 */
import type { BoardCredentials } from '../fleet/fleet.js';
import { buildProvisioningPayload, checkBoardName, checkNetworkSettings, ProvisioningInputError } from '../fleet/provisioning-payload.js';
import { silentLogger, type Logger } from '../log.js';
import { RawRepl } from './raw-repl.js';
import { putFile, pythonLiteral } from './serial-copy.js';
import { closeNodeSerialPort, openNodeSerialPort, type NodeSerialPort } from './web-serial-port.js';
import { ManagerError, type ErrorKind } from '../errors.js';

export type ProvisionPhase = 'open' | 'repl' | 'enroll' | 'write' | 'access-point' | 'restart' | 'online' | 'done';

export interface ProvisionProgress {
  phase: ProvisionPhase;
  message: string;
  done?: number;
  total?: number;
}

export interface ProvisionOptions {
  portPath: string;
  name: string;
  wifi: { ssid: string; password: string };
  /** Where the board reaches Redis. */
  server: { host: string; port: number };
  /** Where this board reaches Redis, once enrolled (a Cluster: its slot's node); default `server`. */
  serverFor?: (credentials: BoardCredentials) => { host: string; port: number };
  /** Creates (or re-keys) the board in the fleet and returns its credentials. */
  enroll: (name: string) => Promise<BoardCredentials>;
  /** The boot id the fleet knows for the board now (null: none yet). */
  knownBoot: (boardId: string) => string | null;
  /** Resolves true once the board said hello with a boot id other than `previousBoot` (false at the timeout). */
  waitOnline: (boardId: string, previousBoot: string | null, timeoutMs: number) => Promise<boolean>;
  /** How long to wait for the board to come online after its restart (default 60 s). */
  onlineTimeoutMs?: number;
  /** How long the board may take to join its wifi (default WIFI_JOIN_MS). */
  wifiJoinTimeoutMs?: number;
  /** How long the board may take to answer on its console (default 15 s: a first boot formats the file system). */
  replTimeoutMs?: number;
  /** Leave the board's own wifi access point as it is (default false: it is turned off). */
  keepAccessPoint?: boolean;
  onProgress?: (progress: ProvisionProgress) => void;
  log?: Logger;
}

export interface ProvisionResult {
  boardId: string;
  name: string;
  format: 'mpy' | 'py';
  files: number;
  bytes: number;
  online: boolean;
  seconds: number;
}

export class ProvisionError extends ManagerError {
  override name = 'ProvisionError';
  readonly kind: ErrorKind = 'device';
}

/**
 * How long a board may take to join its wifi after the restart: a board says it joined in
 * 2-5 s, or that the password is wrong after 10-15 s (the ESP8266 SDK's retries).
 */
export const WIFI_JOIN_MS = 30_000;

/** Turns the board's access point off (network.WLAN(network.AP_IF)); nothing on a port without one. */
const ACCESS_POINT_OFF = `try:
    import network
except ImportError:
    network = None
if network and hasattr(network, 'AP_IF'):
    network.WLAN(network.AP_IF).active(False)
del network
`;

export async function provisionBoard(options: ProvisionOptions): Promise<ProvisionResult> {
  checkProvisionSettings(options);
  const progress = options.onProgress ?? (() => undefined);
  const log = options.log ?? silentLogger;
  const started = Date.now();
  progress({ phase: 'open', message: `opening ${options.portPath}` });
  let port: NodeSerialPort;
  try {
    port = await openNodeSerialPort(options.portPath, { baudRate: 115_200 });
  } catch (error) {
    throw new ProvisionError(`cannot open ${options.portPath}: ${(error as Error).message}`);
  }
  const repl = new RawRepl({ port, exitOnError: true, onLog: (level, message) => log(level, `repl: ${message}`) });
  try {
    progress({ phase: 'repl', message: 'waiting for MicroPython on the serial console' });
    await repl.enter({ timeoutMs: options.replTimeoutMs ?? 15_000 });
    // A board provisioned before was running the client: Ctrl-C stopped it, but main.py's
    // objects still fill the heap. A soft reset in the raw REPL (boot.py only) frees it.
    await repl.softReset({ runMain: false, timeoutMs: options.replTimeoutMs ?? 15_000 });
    const mpy = Number(await repl.eval("getattr(__import__('sys').implementation, '_mpy', 0)"));
    progress({ phase: 'enroll', message: `enrolling ${options.name}` });
    const credentials = await options.enroll(options.name);
    const server = options.serverFor?.(credentials) ?? options.server;
    const payload = await buildProvisioningPayload({ wifi: options.wifi, server, credentials, mpy: mpy || null });
    for (const stale of payload.remove) {
      await repl.execChecked(`import os\ntry:\n    os.remove(${pythonLiteral(stale)})\nexcept OSError:\n    pass\n`);
    }
    let sent = 0;
    for (const file of payload.files) {
      progress({ phase: 'write', message: `writing ${file.path}`, done: sent, total: payload.totalBytes });
      await putFile(repl, file.data, file.path, {
        onProgress: (copy) => progress({ phase: 'write', message: `writing ${file.path}`, done: sent + copy.bytes, total: payload.totalBytes }),
      });
      sent += file.data.length;
    }
    if (!options.keepAccessPoint) {
      progress({ phase: 'access-point', message: "turning off the board's own wifi access point" });
      await repl.execChecked(ACCESS_POINT_OFF);
    }
    progress({ phase: 'restart', message: 'restarting the board with the Cloudmanager client' });
    // Before the restart: a hello naming this boot id is from before it.
    const previousBoot = options.knownBoot(credentials.id);
    const wifi = new WifiReport(port);
    try {
      await repl.softReset({ runMain: true });
      repl.dispose();
      await waitUntilOnline(options, credentials.id, previousBoot, wifi, progress);
    } finally {
      wifi.dispose();
    }
    await closeNodeSerialPort(port);
    progress({ phase: 'done', message: `${options.name} is online` });
    return {
      boardId: credentials.id,
      name: credentials.name,
      format: payload.format,
      files: payload.files.length,
      bytes: payload.totalBytes,
      online: true,
      seconds: (Date.now() - started) / 1000,
    };
  } catch (error) {
    // Whatever failed, the board goes back to its normal console (out of the raw REPL).
    if (repl.inRawRepl) await repl.exit({ timeoutMs: 3_000 }).catch(() => undefined);
    repl.dispose();
    await closeNodeSerialPort(port);
    if (error instanceof ProvisionError || error instanceof ProvisioningInputError) throw error;
    throw new ProvisionError(`provisioning ${options.name} failed: ${(error as Error).message}`);
  }
}

/** The client's console line on joining the wifi (firmware/cm_ops.py, PROTOCOL.md §8). */
const WIFI_LINE = /cm: wifi ".*" ([a-z ]+) \(status (\d+)\)/;
const WIFI_JOINED = 5;

/** Listens on the console for the client's wifi line; `status` is the last one seen (null: none yet). */
class WifiReport {
  status: number | null = null;
  private text = '';
  private wake: (() => void) | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.text = (this.text + chunk.toString('latin1')).slice(-512);
    for (const match of this.text.matchAll(new RegExp(WIFI_LINE.source, 'g'))) this.status = Number(match[2]);
    this.wake?.();
  };

  constructor(private readonly port: NodeSerialPort) {
    port.on('data', this.onData);
  }

  /** Resolves when something arrives on the console, or after `ms`. */
  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake = done;
    });
  }

  dispose(): void {
    this.port.off('data', this.onData);
    this.wake?.();
  }
}

/**
 * After the restart: resolves once the board said hello from its new start; throws a
 * ProvisionError that says what to check when it reports it cannot join its wifi, says
 * nothing of its wifi within the join time, or joined but never says hello.
 */
async function waitUntilOnline(
  options: ProvisionOptions,
  boardId: string,
  previousBoot: string | null,
  wifi: WifiReport,
  progress: (p: ProvisionProgress) => void,
): Promise<void> {
  const { ssid } = options.wifi;
  const joinMs = options.wifiJoinTimeoutMs ?? WIFI_JOIN_MS;
  const onlineMs = options.onlineTimeoutMs ?? 60_000;
  const start = Date.now();
  let online = false;
  const hello = options.waitOnline(boardId, previousBoot, onlineMs).then((ok) => {
    online = ok;
    return ok;
  });
  progress({ phase: 'online', message: `waiting for ${options.name} to join wifi ${JSON.stringify(ssid)}` });
  // Until it joined (or said hello: a board on a port without wifi does not report any).
  while (!online && wifi.status !== WIFI_JOINED) {
    const status = wifi.status;
    if (status === 3)
      throw new ProvisionError(`the board did not find wifi ${JSON.stringify(ssid)} — check the network's name, and that the board is in its range`);
    if (status !== null) throw new ProvisionError(`the board did not join wifi ${JSON.stringify(ssid)} — check the password`);
    const left = start + joinMs - Date.now();
    if (left <= 0) throw new ProvisionError(`the board did not join wifi ${JSON.stringify(ssid)} within ${Math.round(joinMs / 1000)} s — check the password`);
    await Promise.race([wifi.next(left), hello]);
  }
  if (!online) {
    progress({ phase: 'online', message: `${options.name} joined wifi ${JSON.stringify(ssid)}; waiting for it to connect to the service` });
    if (!(await hello)) {
      throw new ProvisionError(
        `${options.name} joined wifi ${JSON.stringify(ssid)} but did not connect to the service at ${options.server.host}:${options.server.port} within ${Math.round(onlineMs / 1000)} s — ` +
          'check that the board can reach this computer (the address boards use, a firewall)',
      );
    }
  }
}

/**
 * Refuses bad settings before anything changes: enrolling re-keys an existing board, and
 * flashing erases what runs on it.
 */
export function checkProvisionSettings(settings: { name: string; wifi: { ssid: string; password: string }; server: { host: string; port: number } }): void {
  checkNetworkSettings(settings.wifi, settings.server);
  checkBoardName(settings.name);
}

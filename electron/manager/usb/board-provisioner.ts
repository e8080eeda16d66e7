/**
 * Provisioning a board that runs MicroPython, over its USB serial console: enter the raw
 * REPL, learn which bytecode it loads, enroll it (its own Redis user), write the client
 * and its configuration (wifi, server, name, credentials) with the fast serial copy,
 * enable autostart (main.py), turn the board's own wifi access point off, soft-reset, and
 * wait until it is online in the fleet. Whatever fails, the board is left out of the raw
 * REPL.
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
  /** Creates (or re-keys) the board in the fleet and returns its credentials. */
  enroll: (name: string) => Promise<BoardCredentials>;
  /** Resolves true once the board is online (false at the timeout). */
  waitOnline: (boardId: string, timeoutMs: number) => Promise<boolean>;
  /** How long to wait for the board to come online after its restart (default 60 s). */
  onlineTimeoutMs?: number;
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

export class ProvisionError extends Error {
  override name = 'ProvisionError';
}

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
    const mpy = Number(await repl.eval("getattr(__import__('sys').implementation, '_mpy', 0)"));
    progress({ phase: 'enroll', message: `enrolling ${options.name}` });
    const credentials = await options.enroll(options.name);
    const payload = await buildProvisioningPayload({ wifi: options.wifi, server: options.server, credentials, mpy: mpy || null });
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
    await repl.softReset({ runMain: true });
    repl.dispose();
    await closeNodeSerialPort(port);
    progress({ phase: 'online', message: `waiting for ${options.name} to come online` });
    const online = await options.waitOnline(credentials.id, options.onlineTimeoutMs ?? 60_000);
    progress({ phase: 'done', message: online ? `${options.name} is online` : `${options.name} did not come online yet (check the wifi name and password)` });
    return {
      boardId: credentials.id, name: credentials.name, format: payload.format, files: payload.files.length, bytes: payload.totalBytes,
      online, seconds: (Date.now() - started) / 1000,
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

/**
 * Refuses bad settings before anything changes: enrolling re-keys an existing board, and
 * flashing erases what runs on it.
 */
export function checkProvisionSettings(settings: { name: string; wifi: { ssid: string; password: string }; server: { host: string; port: number } }): void {
  checkNetworkSettings(settings.wifi, settings.server);
  checkBoardName(settings.name);
}

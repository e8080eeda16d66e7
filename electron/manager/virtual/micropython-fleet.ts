/**
 * Simulated ESP8266 boards running our real MicroPython firmware (`mbm sim --micropython`,
 * and the tests): each board is enrolled through the API as a virtual board, its flash
 * folder gets the files provisioning writes to a board, and it boots in the lab. The
 * folder is the board's flash: it lasts from run to run with the user's files in it (only
 * the client and cm_config.json are written again, with the run's new credentials), and
 * only folders `mbm sim` made are used (virtual-board-folders.ts).
 */
import { chmod, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ApiClient } from '../api/client.js';
import type { BoardCredentials } from '../fleet/fleet.js';
import type { Logger } from '../log.js';
import { buildProvisioningPayload } from '../fleet/provisioning-payload.js';
import { ensurePrivateDir } from '../data-dir.js';
import { LAB_WIFI, MicroPythonBoard, type MicroPythonBoardOptions } from './micropython-board.js';
import { virtualBoardNames } from './virtual-fleet.js';
import { planBoardFolders, prepareBoardFolder } from './virtual-board-folders.js';

export { LAB_WIFI };
/** sys.implementation._mpy of the MicroPython 1.27 WebAssembly port (.mpy ABI 6). */
export const LAB_MPY = 774;

export interface MicroPythonFleetOptions {
  api: ApiClient;
  count: number;
  prefix?: string;
  /** Folder holding one flash folder per board (`<root>/<name>`). */
  root: string;
  /** Start the boards with empty flash folders (only folders `mbm sim` made are emptied). */
  fresh?: boolean;
  /**
   * Redis address every board is provisioned with; default: each board's own, as enrolling
   * gave it (on a Cluster its slot's primary, with Sentinel the current primary).
   */
  server?: { host: string; port: number };
  board?: Partial<Omit<MicroPythonBoardOptions, 'folder'>>;
  log?: Logger;
  onProgress?: (online: number, total: number) => void;
}

export interface SimulatedBoard {
  name: string;
  credentials: BoardCredentials;
  folder: string;
  board: MicroPythonBoard;
}

/** Writes what provisioning would write to a fresh board into its flash folder. */
export async function provisionFolder(folder: string, credentials: BoardCredentials, server: { host: string; port: number }): Promise<void> {
  const payload = await buildProvisioningPayload({ wifi: LAB_WIFI, server, credentials, mpy: LAB_MPY });
  // cm_config.json holds the board's Redis and wifi passwords: the folder and its files are
  // the user's alone (0700, 0600) whatever the umask, also when they were there already.
  await ensurePrivateDir(folder);
  for (const stale of payload.remove) await rm(path.join(folder, stale), { force: true });
  for (const file of payload.files) {
    const target = path.join(folder, file.path);
    await ensurePrivateDir(path.dirname(target));
    await writeFile(target, file.data, { mode: 0o600 });
    await chmod(target, 0o600);
  }
}

export class MicroPythonFleet {
  constructor(readonly boards: SimulatedBoard[]) {}

  byName(name: string): SimulatedBoard | undefined {
    return this.boards.find((board) => board.name === name);
  }

  async close(): Promise<void> {
    await Promise.all(this.boards.map(({ board }) => board.powerOff()));
  }
}

export async function startMicroPythonFleet(options: MicroPythonFleetOptions): Promise<MicroPythonFleet> {
  const names = virtualBoardNames(options.prefix ?? 'mp', options.count);
  const enrolled = new Map((await options.api.call('boards.list', {})).map((board) => [board.name, board.id]));
  // Decided before enrolling: a folder that may not be used leaves the fleet untouched too.
  const plans = await planBoardFolders(
    options.root,
    names.map((name) => ({ name, id: enrolled.get(name) ?? null })),
    { fresh: options.fresh },
  );
  const credentials = await options.api.call('boards.enrollMany', { names, rotate: true, virtual: true });
  const boards: SimulatedBoard[] = [];
  for (const [index, item] of credentials.entries()) {
    const folder = plans[index]!.folder;
    await prepareBoardFolder(plans[index]!, item.id);
    await provisionFolder(folder, item, options.server ?? { host: item.server, port: item.port });
    const board = new MicroPythonBoard({
      label: item.name,
      onLog: (level, message) => options.log?.(level, `${item.name}: ${message}`),
      ...options.board,
      folder,
      wifi: LAB_WIFI,
    });
    boards.push({ name: item.name, credentials: item, folder, board });
  }
  let started = 0;
  // A few at a time: each boot compiles and loads a fresh interpreter.
  for (let index = 0; index < boards.length; index += 4) {
    await Promise.all(
      boards.slice(index, index + 4).map(async ({ board }) => {
        await board.start();
        options.onProgress?.(++started, boards.length);
      }),
    );
  }
  return new MicroPythonFleet(boards);
}

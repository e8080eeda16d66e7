/**
 * Runs N virtual boards (reference boards) against a running manager: enrolls them through
 * the API as virtual boards (new credentials each run), starts them, and waits until they
 * are connected. Connections are opened in waves so a thousand boards do not overflow the
 * server's accept queue at once. With `fsRoot` each board's files last from run to run in
 * a folder `mbm sim` made (virtual-board-folders.ts).
 */
import path from 'node:path';
import type { ApiClient } from '../api/client.js';
import type { BoardCredentials } from '../fleet/fleet.js';
import { MicroPythonInterpreter } from './micropython-interpreter.js';
import { HostFolderFs, MemoryFs } from './board-fs.js';
import { ReferenceBoard, type ReferenceBoardOptions } from './reference-board.js';
import { planBoardFolders, prepareBoardFolder } from './virtual-board-folders.js';

export interface VirtualFleetOptions {
  api: ApiClient;
  count: number;
  prefix?: string;
  /** Exact names instead of PREFIX-1 … PREFIX-N. */
  names?: string[];
  /** Keep each board's files in `<fsRoot>/<name>` instead of memory. */
  fsRoot?: string;
  /** With fsRoot: start with empty folders (only folders `mbm sim` made are emptied). */
  fresh?: boolean;
  /** Boards connecting at the same time (default 200). */
  wave?: number;
  /** Where boards connect (default: the address in their credentials). */
  host?: string;
  board?: Partial<Omit<ReferenceBoardOptions, 'credentials' | 'fs'>>;
  onProgress?: (connected: number, total: number) => void;
}

export class VirtualFleet {
  constructor(
    readonly boards: ReferenceBoard[],
    private readonly interpreter: MicroPythonInterpreter,
  ) {}

  byName(name: string): ReferenceBoard | undefined {
    return this.boards.find((board) => board.config.name === name);
  }

  async stop(): Promise<void> {
    await Promise.all(this.boards.map((board) => board.stop()));
  }

  /** Stops the boards and the interpreter they share. */
  async close(): Promise<void> {
    await this.stop();
    await this.interpreter.close();
  }
}

export function virtualBoardNames(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, index) => `${prefix}-${index + 1}`);
}

export async function createVirtualBoard(
  credentials: BoardCredentials,
  options: Omit<VirtualFleetOptions, 'api' | 'count' | 'prefix'> & { interpreter: MicroPythonInterpreter },
): Promise<ReferenceBoard> {
  let fs;
  if (options.fsRoot) {
    // The folder was planned and made (or found to be this board's) before enrolling.
    fs = new HostFolderFs(path.join(options.fsRoot, credentials.name));
  } else {
    fs = new MemoryFs();
  }
  return new ReferenceBoard({ ...options.board, credentials, fs, interpreter: options.interpreter, host: options.host });
}

export async function startVirtualFleet(options: VirtualFleetOptions): Promise<VirtualFleet> {
  const names = options.names ?? virtualBoardNames(options.prefix ?? 'sim', options.count);
  let plans;
  if (options.fsRoot) {
    const enrolled = new Map((await options.api.call('boards.list', {})).map((board) => [board.name, board.id]));
    plans = await planBoardFolders(
      options.fsRoot,
      names.map((name) => ({ name, id: enrolled.get(name) ?? null })),
      { fresh: options.fresh },
    );
  }
  const credentials: BoardCredentials[] = [];
  for (let index = 0; index < names.length; index += 1000) {
    credentials.push(...(await options.api.call('boards.enrollMany', { names: names.slice(index, index + 1000), rotate: true, virtual: true })));
  }
  if (plans) for (const [index, item] of credentials.entries()) await prepareBoardFolder(plans[index]!, item.id);
  const interpreter = options.board?.interpreter ?? new MicroPythonInterpreter();
  await interpreter.start();
  const boards = await Promise.all(credentials.map((item) => createVirtualBoard(item, { ...options, interpreter })));
  const wave = options.wave ?? 200;
  let connected = 0;
  for (let index = 0; index < boards.length; index += wave) {
    await Promise.all(
      boards.slice(index, index + wave).map(
        (board) =>
          new Promise<void>((resolve) => {
            board.once('connected', () => {
              connected++;
              options.onProgress?.(connected, boards.length);
              resolve();
            });
            board.start();
          }),
      ),
    );
  }
  return new VirtualFleet(boards, interpreter);
}

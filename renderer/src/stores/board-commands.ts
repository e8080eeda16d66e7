/**
 * One command on one board, awaited: for the Files and Settings tabs, whose operations are
 * quick (list, stat, make a folder) and only make sense while the board is online.
 */
import type { ApiCommandRequest, CommandView } from '../../../electron/manager/api/contract.js';
import { ApiCallError } from '../lib/api.js';
import { api } from './api.js';
import { isFinal } from '../lib/command-status.js';

export class BoardCommandError extends Error {
  override name = 'BoardCommandError';
  constructor(
    message: string,
    readonly code: string | null,
  ) {
    super(message);
  }
}

/** Sends `request` to `board` and resolves with the finished command; failures throw. */
export async function runOnBoard(board: string, request: ApiCommandRequest, options: { expireMs?: number; waitMs?: number } = {}): Promise<CommandView> {
  const { commands } = await api.call('commands.send', { boards: board, request, expireMs: options.expireMs ?? 15_000 });
  let view: CommandView = commands[0]!;
  const deadline = Date.now() + (options.waitMs ?? 120_000);
  while (!isFinal(view)) {
    if (Date.now() > deadline) throw new BoardCommandError(`${board} did not answer in time`, 'ETIMEDOUT');
    [view] = (await api.call('commands.wait', { cids: [view.cid], timeoutMs: 20_000 })) as [CommandView];
    if (!view) throw new ApiCallError('not_found', 'the command was forgotten by the service');
  }
  if (view.status !== 'ok') {
    const why = view.status === 'expired' ? `${board} is offline` : (view.error ?? view.status);
    throw new BoardCommandError(why, view.errorCode);
  }
  return view;
}

/** An `ls` entry as the protocol returns it: [name, "f" | "d", size]. */
export type ListEntry = [name: string, type: 'f' | 'd', size: number];

export function sortEntries(entries: ListEntry[]): ListEntry[] {
  return [...entries].sort((a, b) => (a[1] === b[1] ? a[0].localeCompare(b[0], 'en', { numeric: true }) : a[1] === 'd' ? -1 : 1));
}

export function joinPath(folder: string, name: string): string {
  return folder === '/' ? `/${name}` : `${folder}/${name}`;
}

export function parentOf(path: string): string {
  const index = path.lastIndexOf('/');
  return index <= 0 ? '/' : path.slice(0, index);
}

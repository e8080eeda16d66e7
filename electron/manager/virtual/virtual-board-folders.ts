/**
 * The flash folders of virtual boards (`mbm sim --fs DIR`, `--micropython`): a board's
 * files live in `DIR/<name>` and last from one run to the next, as a real board's flash
 * does. `mbm sim` only ever writes to, empties or deletes a folder it made itself: each
 * one it makes holds a marker file with the board's id. A folder without the marker (the
 * user's own files, a symbolic link) is never touched, and one whose marker names another
 * board is only started over with `--fresh`.
 *
 * Everything is decided before anything is enrolled or written (planBoardFolders), so a
 * refusal leaves the fleet and the disk as they were.
 */
import { lstat, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ManagerError, type ErrorKind } from '../errors.js';
import { listNames, MAX_LISTED_NAMES } from '../fleet/board-selector.js';

/** In every folder `mbm sim` made: the id of the board whose flash it is. */
export const VIRTUAL_BOARD_MARKER = '.cloudmanager-virtual-board';

export class VirtualBoardFolderError extends ManagerError {
  override name = 'VirtualBoardFolderError';
  readonly kind: ErrorKind = 'conflict';
}

export interface BoardFolderPlan {
  name: string;
  folder: string;
  /** create: no folder yet; reuse: this board's own flash, files kept; wipe: a folder sim made, started over (--fresh). */
  action: 'create' | 'reuse' | 'wipe';
  /** The board id the folder's marker names (reuse). */
  id?: string;
}

type Found = { kind: 'none' } | { kind: 'foreign'; why: string } | { kind: 'marked'; id: string };

async function inspect(folder: string): Promise<Found> {
  const stats = await lstat(folder).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });
  if (!stats) return { kind: 'none' };
  if (stats.isSymbolicLink()) return { kind: 'foreign', why: 'is a symbolic link' };
  if (!stats.isDirectory()) return { kind: 'foreign', why: 'is not a folder' };
  const marker = path.join(folder, VIRTUAL_BOARD_MARKER);
  const markerStats = await lstat(marker).catch(() => null);
  if (!markerStats?.isFile()) return { kind: 'foreign', why: `exists and was not made by mbm sim (it has no ${VIRTUAL_BOARD_MARKER} file)` };
  return { kind: 'marked', id: (await readFile(marker, 'utf8')).trim().slice(0, 64) };
}

/**
 * What happens to each board's folder under `root`, or a VirtualBoardFolderError naming
 * every folder that may not be used (nothing is written). `id`: the board's id when it is
 * enrolled already (its folder's marker must name it), null for a board not enrolled yet.
 */
export async function planBoardFolders(
  root: string,
  boards: Array<{ name: string; id: string | null }>,
  options: { fresh?: boolean } = {},
): Promise<BoardFolderPlan[]> {
  const plans: BoardFolderPlan[] = [];
  const foreign: string[] = [];
  const others: string[] = [];
  for (const { name, id } of boards) {
    const folder = path.join(root, name);
    const found = await inspect(folder);
    if (found.kind === 'none') plans.push({ name, folder, action: 'create' });
    else if (found.kind === 'foreign') foreign.push(`${folder} ${found.why}`);
    else if (options.fresh) plans.push({ name, folder, action: 'wipe' });
    else if (id !== null && found.id === id) plans.push({ name, folder, action: 'reuse', id });
    else others.push(folder);
  }
  const problems: string[] = [];
  if (foreign.length > 0) {
    // At most 10 named, as everywhere boards are listed: a refusal for 20,000 boards stays short.
    const shown = foreign.slice(0, MAX_LISTED_NAMES).join('; ') + (foreign.length > MAX_LISTED_NAMES ? `; and ${foreign.length - MAX_LISTED_NAMES} more` : '');
    problems.push(`mbm sim only uses folders it made: ${shown}. Nothing was touched; move those files elsewhere, or choose another --prefix or --fs`);
  }
  if (others.length > 0) {
    problems.push(
      `${listNames(others)} ${others.length === 1 ? 'holds' : 'hold'} the flash of another virtual board of that name (one removed since, or of another service): ` +
        'pass --fresh to start over with empty boards, or choose another --prefix or --fs',
    );
  }
  if (problems.length > 0) throw new VirtualBoardFolderError(problems.join('\n'));
  return plans;
}

/**
 * Carries out one plan once the board is enrolled (`id`): makes or empties the folder as
 * planned and writes its marker. The folder is made with mkdir alone (not recursive), so
 * one that appeared since the plan is refused rather than taken over.
 */
export async function prepareBoardFolder(plan: BoardFolderPlan, id: string): Promise<void> {
  if (plan.action === 'reuse' && plan.id !== id) {
    throw new VirtualBoardFolderError(
      `${plan.folder} holds the flash of board ${plan.id}, but ${plan.name} is ${id} now: nothing was touched; pass --fresh to start over`,
    );
  }
  if (plan.action === 'wipe') {
    const found = await inspect(plan.folder);
    if (found.kind !== 'marked') throw new VirtualBoardFolderError(`${plan.folder} changed while mbm sim was starting: nothing was touched`);
    await rm(plan.folder, { recursive: true });
  }
  if (plan.action !== 'reuse') {
    await mkdir(path.dirname(plan.folder), { recursive: true });
    await mkdir(plan.folder, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'EEXIST' ? new VirtualBoardFolderError(`${plan.folder} appeared while mbm sim was starting: nothing was touched`) : error;
    });
  }
  await writeFile(path.join(plan.folder, VIRTUAL_BOARD_MARKER), `${id}\n`);
}

/**
 * Paths and sizes of files on a board (PROTOCOL.md §7): checked here, below both the
 * command layer (fleet/) and the transfers (transfer/), which both use them.
 */
import { InvalidCommandError } from '../errors.js';

export const MAX_FILE_BYTES = 16 * 1024 * 1024;

/**
 * Checks a path on the board: absolute, `/`-separated, no `.`/`..` segments, no NUL, no
 * backslash, ≤ 255 bytes. A backslash is refused because a board's files may live in a
 * host folder (virtual boards), and on Windows `/a\..\..\x` would leave it.
 */
export function validateBoardPath(path: string, what = 'path'): string {
  if (typeof path !== 'string' || path === '') throw new InvalidCommandError(`${what} is empty`);
  if (!path.startsWith('/')) throw new InvalidCommandError(`${what} ${JSON.stringify(path)} must be absolute (start with /)`);
  if (path.includes('\0')) throw new InvalidCommandError(`${what} contains a NUL byte`);
  if (path.includes('\\')) {
    throw new InvalidCommandError(`${what} ${JSON.stringify(path)} contains a backslash: paths on a board are separated by / (e.g. /lib/main.py)`);
  }
  if (Buffer.byteLength(path) > 255) throw new InvalidCommandError(`${what} is longer than 255 bytes`);
  const segments = path.split('/').slice(1);
  if (segments.some((segment) => segment === '..' || segment === '.')) {
    throw new InvalidCommandError(`${what} ${JSON.stringify(path)} must not contain "." or ".." segments`);
  }
  // "/a//b" or "/a/" are normalised rather than refused; the root itself stays "/".
  return '/' + segments.filter((segment) => segment !== '').join('/');
}

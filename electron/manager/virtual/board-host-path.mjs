// @ts-check
// Where a board path may land in a host folder that is the board's "/": the one rule for the
// reference board's HostFolderFs (board-fs.ts) and the MicroPython lab boards' flash mirror
// (micropython-board-worker-flash.mjs). Plain JS so the workers, which Node runs as they are
// (not built from TypeScript), can import it; pure, with the path rules (`path`,
// `path.win32`, `path.posix`) passed in so tests can check Windows' on any platform.
import path from 'node:path';

/** Windows device names, which open the device in any folder (`C:\boards\x\NUL.txt` too). */
const WINDOWS_DEVICE_NAME = /^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
/** Characters Windows gives a meaning in a name: `:` a drive or a file's data stream, the others wildcards and quoting. */
const WINDOWS_SPECIAL_CHARS = /[<>:"|?*\u0000-\u001f]/;

/**
 * Splits a board path ("/a/b") into segments, or says why the protocol forbids it. A
 * backslash is refused too: it is a separator to Windows, where a host folder's
 * `/a\..\..\x` would be `..\x` of the folder.
 * @param {string} boardPath
 * @returns {{ segments: string[], problem?: undefined } | { problem: string }}
 */
export function boardPathSegments(boardPath) {
  if (!boardPath.startsWith('/') || boardPath.includes('\0') || boardPath.includes('\\') || Buffer.byteLength(boardPath) > 255) {
    return { problem: `invalid path ${JSON.stringify(boardPath)}` };
  }
  const segments = boardPath.split('/').filter((segment) => segment !== '');
  if (segments.some((segment) => segment === '.' || segment === '..')) {
    return { problem: `path ${JSON.stringify(boardPath)} has . or .. segments` };
  }
  return { segments };
}

/**
 * The host file of a board path in a folder mapped as the board's "/", by the host's path
 * rules: never outside `root`. On Windows, names the file system would read as a drive, a
 * stream or a device, or would change (a trailing dot or space is dropped), are refused as well.
 * @param {string} root
 * @param {string} boardPath
 * @param {path.PlatformPath} [hostPath]
 * @returns {{ host: string, problem?: undefined } | { problem: string }}
 */
export function boardHostPath(root, boardPath, hostPath = path) {
  const split = boardPathSegments(boardPath);
  if (split.problem !== undefined) return split;
  const { segments } = split;
  if (hostPath.sep === '\\') {
    const bad = segments.find((segment) => WINDOWS_SPECIAL_CHARS.test(segment) || WINDOWS_DEVICE_NAME.test(segment) || /[. ]$/.test(segment));
    if (bad !== undefined) {
      return { problem: `${JSON.stringify(bad)} in ${JSON.stringify(boardPath)} cannot be a file name in this board's folder on Windows` };
    }
  }
  const host = hostPath.join(root, ...segments);
  const inside = hostPath.relative(root, host);
  if (inside === '..' || inside.startsWith('..' + hostPath.sep) || hostPath.isAbsolute(inside)) {
    return { problem: `path ${JSON.stringify(boardPath)} leads outside the board's folder` };
  }
  return { host };
}

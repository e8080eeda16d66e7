/**
 * The desktop app's native dialogs. In the app's window the preload gives the page
 * `window.cmDesktop` (electron/app/preload.cts): open and save dialogs run by the main
 * process, which reads and writes the files (the sandboxed page cannot). In a browser there
 * is none, and the page uses <input type=file> and a download link, as it always has.
 * Views ask `desktopApi()` once and take one way or the other.
 */
import type { CmDesktopApi, DesktopFile } from '../../../electron/app/dialogs.js';
import type { PickedFile } from './file-drop.js';

/** The native dialogs when the page runs in the desktop app, else null. */
export function desktopApi(scope: object = globalThis): CmDesktopApi | null {
  const candidate = (scope as { cmDesktop?: Partial<CmDesktopApi> }).cmDesktop;
  if (!candidate || typeof candidate !== 'object') return null;
  const complete = typeof candidate.pickFirmware === 'function' && typeof candidate.pickFiles === 'function' && typeof candidate.saveFile === 'function';
  return complete ? (candidate as CmDesktopApi) : null;
}

function asFile(item: DesktopFile): File {
  // A copy into a fresh ArrayBuffer: the bytes came across IPC and may be a view of a larger buffer.
  return new File([new Uint8Array(item.bytes)], item.name);
}

/** A firmware image (.bin) chosen in the native dialog; null when the user cancelled. */
export async function pickFirmwareFile(desktop: CmDesktopApi): Promise<File | null> {
  const [first] = await desktop.pickFirmware();
  return first ? asFile(first) : null;
}

/** Files chosen in the native dialog, as the page's pickers give them (a file's path is its name). */
export async function pickFiles(desktop: CmDesktopApi, multiple = true): Promise<PickedFile[]> {
  return (await desktop.pickFiles({ multiple })).map((item) => ({ file: asFile(item), relativePath: item.name }));
}

/**
 * Saves bytes under a suggested name: the native save dialog in the app (false when the user
 * cancelled), a download in a browser (which saves where the browser puts downloads).
 */
export async function saveBytes(name: string, bytes: Uint8Array, desktop: CmDesktopApi | null = desktopApi()): Promise<boolean> {
  if (desktop) return desktop.saveFile(name, bytes);
  const url = URL.createObjectURL(new Blob([new Uint8Array(bytes)]));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return true;
}

/**
 * The native open/save dialogs the window's page may ask for (window.cmDesktop, exposed by
 * preload.cts): the IPC channel names, the checks on every argument, the size limits, and
 * the file reading and writing. The sandboxed page cannot touch files, so the main process
 * shows the dialog, reads what the user chose and hands back only the bytes; the page never
 * learns a path and cannot name one to read or write.
 *
 * Plain Node: the dialogs themselves come in as NativeDialogs (Electron's `dialog` in
 * main.ts, a stand-in in tests).
 */
import { open } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../manager/data-dir.js';
import type { Logger } from '../manager/log.js';
import { isTrustedSender } from './window-policy.js';

/** IPC channels; preload.cts repeats them (a sandboxed preload cannot import), a test keeps both equal. */
export const DESKTOP_CHANNELS = {
  pickFirmware: 'cm-desktop:pick-firmware',
  pickFiles: 'cm-desktop:pick-files',
  saveFile: 'cm-desktop:save-file',
} as const;

const MIB = 1024 * 1024;
/** Largest file picked or saved through a dialog (a board holds a few MiB; firmware images are ≤ 16 MiB). */
export const MAX_DIALOG_FILE_BYTES = 64 * MIB;
/** Largest sum of one pick of several files: all of it is held in memory twice (here and in the page). */
export const MAX_DIALOG_TOTAL_BYTES = 256 * MIB;
/** Most files one pick may return. */
export const MAX_DIALOG_FILES = 1000;

/** A file the user chose, as the page receives it. */
export interface DesktopFile {
  name: string;
  bytes: Uint8Array;
}

/** What the page sees as `window.cmDesktop` (renderer/src/lib/desktop.ts). */
export interface CmDesktopApi {
  /** A firmware image (.bin); [] when the user cancelled. */
  pickFirmware(): Promise<DesktopFile[]>;
  /** Files of any kind; [] when the user cancelled. */
  pickFiles(options: { multiple: boolean }): Promise<DesktopFile[]>;
  /** Asks where to save `bytes` and writes them there; false when the user cancelled. */
  saveFile(suggestedName: string, bytes: Uint8Array): Promise<boolean>;
}

/** The answer on the IPC channel: an error travels as its message, which the preload throws in the page. */
export type DesktopAnswer<T> = { ok: true; value: T } | { ok: false; error: string };

export interface NativeDialogs {
  /** Paths the user chose; [] when cancelled. */
  showOpen(request: { title: string; multiple: boolean; filters?: Array<{ name: string; extensions: string[] }> }): Promise<string[]>;
  /** The path the user chose; null when cancelled. */
  showSave(request: { title: string; defaultName: string }): Promise<string | null>;
}

/** A refusal the user can act on: its message is shown in the page. */
export class DesktopDialogError extends Error {
  override readonly name = 'DesktopDialogError';
}

/** A size in MiB, rounded up (a file just over the limit must not read as the limit). */
function mib(bytes: number): string {
  const tenths = Math.ceil((bytes / MIB) * 10) / 10;
  return `${Number.isInteger(tenths) ? tenths : tenths.toFixed(1)} MiB`;
}

/** A plain file name from whatever the page suggested: no folders, no characters a file system refuses. */
export function safeFileName(suggested: string): string {
  const base = suggested.split(/[\\/]/).pop() ?? '';
  const clean = base
    .replace(/[\x00-\x1f\x7f<>:"|?*]/g, '_')
    .replace(/^[.\s]+|[.\s]+$/g, '')
    .slice(0, 200);
  return clean || 'download';
}

function parsePickFilesOptions(value: unknown): { multiple: boolean } {
  if (value === undefined) return { multiple: false };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DesktopDialogError('pickFiles takes { multiple: boolean }');
  const multiple = (value as { multiple?: unknown }).multiple;
  if (multiple !== undefined && typeof multiple !== 'boolean') throw new DesktopDialogError('pickFiles: multiple must be true or false');
  return { multiple: multiple === true };
}

function parseSaveArguments(name: unknown, bytes: unknown): { name: string; bytes: Uint8Array } {
  if (typeof name !== 'string' || name.length === 0 || name.length > 1000) throw new DesktopDialogError('saveFile needs a file name');
  if (!(bytes instanceof Uint8Array)) throw new DesktopDialogError('saveFile needs the bytes to save (a Uint8Array)');
  if (bytes.byteLength > MAX_DIALOG_FILE_BYTES) {
    throw new DesktopDialogError(`${safeFileName(name)} is ${mib(bytes.byteLength)}: files saved from the app may be at most ${mib(MAX_DIALOG_FILE_BYTES)}`);
  }
  return { name: safeFileName(name), bytes };
}

/** Reads the chosen files, refusing (before reading) any that is not a file or is too large. */
export async function readChosenFiles(paths: string[]): Promise<DesktopFile[]> {
  if (paths.length > MAX_DIALOG_FILES) throw new DesktopDialogError(`${paths.length} files were chosen: at most ${MAX_DIALOG_FILES} at a time`);
  const files: DesktopFile[] = [];
  let total = 0;
  for (const file of paths) {
    const name = path.basename(file);
    const handle = await open(file, 'r').catch((error: NodeJS.ErrnoException) => {
      throw new DesktopDialogError(`${name} cannot be read (${error.code ?? error.message})`);
    });
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new DesktopDialogError(`${name} is not a file`);
      if (info.size > MAX_DIALOG_FILE_BYTES)
        throw new DesktopDialogError(`${name} is ${mib(info.size)}: a file chosen here may be at most ${mib(MAX_DIALOG_FILE_BYTES)}`);
      total += info.size;
      if (total > MAX_DIALOG_TOTAL_BYTES)
        throw new DesktopDialogError(`the chosen files come to more than ${mib(MAX_DIALOG_TOTAL_BYTES)}: choose fewer at a time`);
      const bytes = await handle.readFile();
      // It may have grown between the check and the read.
      if (bytes.byteLength > MAX_DIALOG_FILE_BYTES) throw new DesktopDialogError(`${name} grew past ${mib(MAX_DIALOG_FILE_BYTES)} while it was read`);
      files.push({ name, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) });
    } finally {
      await handle.close();
    }
  }
  return files;
}

/** The three dialogs, each taking the page's raw arguments. */
export function desktopDialogs(native: NativeDialogs) {
  return {
    async pickFirmware(): Promise<DesktopFile[]> {
      const paths = await native.showOpen({
        title: 'Add a MicroPython firmware file',
        multiple: false,
        filters: [{ name: 'Firmware image', extensions: ['bin'] }],
      });
      return readChosenFiles(paths);
    },
    async pickFiles(options: unknown): Promise<DesktopFile[]> {
      const { multiple } = parsePickFilesOptions(options);
      return readChosenFiles(await native.showOpen({ title: multiple ? 'Choose files' : 'Choose a file', multiple }));
    },
    async saveFile(name: unknown, bytes: unknown): Promise<boolean> {
      const request = parseSaveArguments(name, bytes);
      const target = await native.showSave({ title: 'Save file', defaultName: request.name });
      if (!target) return false;
      // Temp name beside the target, then rename: an interrupted save never leaves half a file.
      await writeFileAtomic(target, request.bytes, 0o644).catch((error: NodeJS.ErrnoException) => {
        throw new DesktopDialogError(`${path.basename(target)} could not be saved (${error.code ?? error.message})`);
      });
      return true;
    },
  };
}

/** Runs one call for the page: its refusals travel as their message, anything else as a short note (details go to the log). */
export async function answerPage<T>(work: () => Promise<T>, onUnexpected: (error: Error) => void): Promise<DesktopAnswer<T>> {
  try {
    return { ok: true, value: await work() };
  } catch (error) {
    if (error instanceof DesktopDialogError) return { ok: false, error: error.message };
    onUnexpected(error as Error);
    return { ok: false, error: 'the dialog failed; the app log (Open data folder → logs) says why' };
  }
}

/** What the IPC side needs of Electron's IpcMainInvokeEvent. */
export interface DialogInvokeEvent {
  sender: { id: number };
  senderFrame: { url: string; parent: unknown } | null;
}

/**
 * Serves the three channels through `handle` (ipcMain.handle): each call is answered only for
 * our window's own page on the service's origin, with its arguments checked by the dialogs.
 */
export function serveDesktopDialogs(options: {
  handle(channel: string, listener: (event: DialogInvokeEvent, ...args: unknown[]) => Promise<DesktopAnswer<unknown>>): void;
  native: NativeDialogs;
  windowContentsId: () => number | undefined;
  serviceOrigin: () => string | null;
  log: Logger;
}): void {
  const { log } = options;
  const dialogs = desktopDialogs(options.native);
  const serve = (channel: string, work: (...args: unknown[]) => Promise<unknown>) =>
    options.handle(channel, async (event, ...args) => {
      const frame = event.senderFrame;
      // The top frame is the one without a parent (an iframe of the page has one).
      const sender = { webContentsId: event.sender.id, frameUrl: frame?.url, isMainFrame: frame !== null && frame.parent === null };
      if (!isTrustedSender(sender, options.windowContentsId(), options.serviceOrigin())) {
        log('warn', `refused ${channel}: not asked by the app's window on the service's page`);
        return { ok: false, error: "only the Cloudmanager window's own page may open this dialog" };
      }
      return answerPage(
        () => work(...args),
        (error) => log('error', `${channel} failed: ${error.stack ?? error.message}`),
      );
    });
  serve(DESKTOP_CHANNELS.pickFirmware, () => dialogs.pickFirmware());
  serve(DESKTOP_CHANNELS.pickFiles, (pickOptions) => dialogs.pickFiles(pickOptions));
  serve(DESKTOP_CHANNELS.saveFile, (name, bytes) => dialogs.saveFile(name, bytes));
}

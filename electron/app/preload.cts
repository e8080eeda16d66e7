/**
 * The window's preload: gives the page `window.cmDesktop`, the native open/save dialogs, and
 * nothing else (DESIGN.md 10). CommonJS, because the window is sandboxed and a sandboxed
 * preload runs as a plain script whose `require` knows only Electron's own modules: it
 * cannot import dialogs.ts, so the channel names are repeated here (a test keeps them equal).
 * Every argument is checked again in the main process; this file only forwards.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS on purpose (see above); this is TypeScript's import form for it
import electron = require('electron');
import type { CmDesktopApi, DesktopAnswer, DesktopFile } from './dialogs.js';

const channels = {
  pickFirmware: 'cm-desktop:pick-firmware',
  pickFiles: 'cm-desktop:pick-files',
  saveFile: 'cm-desktop:save-file',
} as const;

async function call<T>(channel: string, ...args: unknown[]): Promise<T> {
  const answer = (await electron.ipcRenderer.invoke(channel, ...args)) as DesktopAnswer<T>;
  if (!answer.ok) throw new Error(answer.error);
  return answer.value;
}

const cmDesktop: CmDesktopApi = {
  pickFirmware: () => call<DesktopFile[]>(channels.pickFirmware),
  pickFiles: (options) => call<DesktopFile[]>(channels.pickFiles, { multiple: options?.multiple === true }),
  saveFile: (suggestedName, bytes) => call<boolean>(channels.saveFile, suggestedName, bytes),
};

electron.contextBridge.exposeInMainWorld('cmDesktop', cmDesktop);

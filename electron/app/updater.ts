/**
 * Automatic updates, off until the user turns them on (tray: "Check for updates
 * automatically"). The only importer of electron-updater. Nothing is checked while
 * `enabled()` is false; when it is true the app checks a minute after it starts and every
 * 6 hours, and when the user clicks "Check for updates". An update found is downloaded
 * (the user asked for updates), never installed behind their back: electron-updater's
 * own install-on-quit is off, and the shell installs it on its way out (installOnQuit).
 *
 * The releases are GitHub releases. UPDATE_FEED must say the same as electron-builder's
 * `publish` config; owner and repo are placeholders until the project's release repository
 * is known.
 */
import electronUpdater, { type ProgressInfo, type UpdateDownloadedEvent, type UpdateInfo } from 'electron-updater';
import type { Logger } from '../manager/log.js';
import { updateFailureReason, updateStatusLine, type UpdateState } from './update-status.js';

export interface Updater {
  check(): Promise<void>;
  dispose(): void;
  /**
   * Called by the shell when the user quits: runs the installer of a downloaded update and
   * quits (true), or does nothing (false: quit as usual).
   */
  installOnQuit(): boolean;
}

/** Placeholders (see above): the GitHub repository whose releases carry the installers and latest*.yml. */
export const UPDATE_FEED = { provider: 'github', owner: 'cloudmanager', repo: 'cloudmanager-desktop' } as const;
/** After the start (the service comes first), then periodically while the app runs. */
export const FIRST_CHECK_DELAY_MS = 60_000;
export const CHECK_INTERVAL_MS = 6 * 3_600_000;
/** Download progress updates the tray line in steps this big (each one rebuilds the menu). */
const PROGRESS_STEP = 10;

export function createUpdater(options: { enabled: () => boolean; onStatus(status: string | undefined): void; log: Logger }): Updater {
  const { autoUpdater } = electronUpdater;
  const { log } = options;
  autoUpdater.autoDownload = false;
  autoUpdater.autoInstallOnAppQuit = false;
  autoUpdater.allowPrerelease = false;
  autoUpdater.logger = {
    info: (message?: unknown) => log('info', `updater: ${String(message)}`),
    warn: (message?: unknown) => log('warn', `updater: ${String(message)}`),
    error: (message?: unknown) => log('error', `updater: ${String(message)}`),
    debug: (message: string) => log('debug', `updater: ${message}`),
  };
  autoUpdater.setFeedURL({ ...UPDATE_FEED });

  let state: UpdateState = { kind: 'idle' };
  let running: Promise<void> | undefined;
  let disposed = false;
  const set = (next: UpdateState) => {
    state = next;
    if (!disposed) options.onStatus(updateStatusLine(next));
  };
  const fail = (error: unknown) => set({ kind: 'failed', reason: updateFailureReason(error) });

  const onChecking = () => set({ kind: 'checking' });
  const onNone = () => set({ kind: 'up-to-date' });
  const onAvailable = (info: UpdateInfo) => {
    set({ kind: 'downloading', version: info.version });
    // A failed download is also an 'error' event (onError says it); this only keeps the rejection handled.
    autoUpdater.downloadUpdate().catch(() => undefined);
  };
  const onProgress = (progress: ProgressInfo) => {
    if (state.kind !== 'downloading') return;
    const step = Math.floor(progress.percent / PROGRESS_STEP) * PROGRESS_STEP;
    if (step !== state.percent) set({ ...state, percent: step });
  };
  const onDownloaded = (event: UpdateDownloadedEvent) => {
    log('info', `updater: ${event.version} downloaded; it is installed when the app quits`);
    set({ kind: 'downloaded', version: event.version });
  };
  const onError = (error: Error) => {
    log('warn', `updater: ${error.message}`);
    fail(error);
  };
  autoUpdater.on('checking-for-update', onChecking);
  autoUpdater.on('update-not-available', onNone);
  autoUpdater.on('update-available', onAvailable);
  autoUpdater.on('download-progress', onProgress);
  autoUpdater.on('update-downloaded', onDownloaded);
  autoUpdater.on('error', onError);

  const check = (): Promise<void> => {
    if (disposed || !options.enabled()) return Promise.resolve();
    // Found already: nothing newer to learn until this one is installed.
    if (state.kind === 'downloading' || state.kind === 'downloaded') return Promise.resolve();
    running ??= (async () => {
      try {
        // null: not an installed app (run from the source tree), so electron-updater skipped it.
        if ((await autoUpdater.checkForUpdates()) === null) set({ kind: 'not-installed' });
      } catch (error) {
        fail(error);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  const first = setTimeout(() => void check(), FIRST_CHECK_DELAY_MS);
  const every = setInterval(() => void check(), CHECK_INTERVAL_MS);
  first.unref();
  every.unref();

  return {
    check,
    installOnQuit() {
      if (state.kind !== 'downloaded') return false;
      log('info', `updater: installing ${state.version}`);
      // Silent where the platform allows (Windows' NSIS), and not started again: the user was quitting.
      autoUpdater.quitAndInstall(true, false);
      return true;
    },
    dispose() {
      disposed = true;
      clearTimeout(first);
      clearInterval(every);
      autoUpdater.off('checking-for-update', onChecking);
      autoUpdater.off('update-not-available', onNone);
      autoUpdater.off('update-available', onAvailable);
      autoUpdater.off('download-progress', onProgress);
      autoUpdater.off('update-downloaded', onDownloaded);
      autoUpdater.off('error', onError);
    },
  };
}

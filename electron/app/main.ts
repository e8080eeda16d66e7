/**
 * The Electron shell: one instance, the manager service in this process, a tray that says how
 * the service is, one window showing the service's own UI, and the native dialogs its page
 * asks for. It decides nothing itself: the tray is trayView(...), notices come from the
 * NotificationPolicy, the window's rules from window-policy.ts, the dialogs from dialogs.ts.
 * Only this file, preload.cts and updater.ts import Electron (eslint.config.js).
 *
 * Electron runs this module as its entry, which starts the shell; the wiring test calls
 * startShell() itself with a recording stand-in for the electron module.
 */
import { app, BrowserWindow, dialog, ipcMain, Menu, nativeImage, Notification, session, shell, Tray } from 'electron';
import type { MenuItemConstructorOptions } from 'electron';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Manager, type ManagerOptions } from '../manager/manager.js';
import { DEFAULT_API_PORT } from '../manager/service-ports.js';
import { dataPaths, defaultDataDir } from '../manager/data-dir.js';
import { createFileLog } from '../manager/file-log.js';
import { readDesktopSettings, writeDesktopSettings, type DesktopSettings } from './desktop-settings.js';
import { NotificationPolicy, type DesktopNotice } from './desktop-notifications.js';
import { feedFromManager, type FeedTrayState } from './manager-feed.js';
import { trayIconFile, trayView, type ServicePhase, type TrayAction, type TrayView } from './tray-model.js';
import { createUpdater } from './updater.js';
import { serveDesktopDialogs } from './dialogs.js';
import { navigationGuard, permissionDecision, serviceRouteUrl, signinPageUrl, windowWebPreferences } from './window-policy.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** dist/electron/app → the package (build/ holds the icons). */
const packageDir = path.join(here, '..', '..', '..');
const preloadPath = path.join(here, 'preload.cjs');
/** The flash wizard's route in the UI (renderer/src/lib/router.ts). */
const FLASH_ROUTE = '#/flash';
/** Passed by the login item (Windows): a start at login stays in the tray. */
const HIDDEN_ARG = '--hidden';

export interface ShellOptions {
  dataDir?: string;
  /** Overrides of the manager's options (the wiring test: free ports, a short heartbeat). */
  manager?: Partial<ManagerOptions>;
}

export async function startShell(options: ShellOptions = {}): Promise<void> {
  // Before anything else: a second launch hands over to the first (its window comes up) and leaves.
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  const dataDir = options.dataDir ?? defaultDataDir();
  const fileLog = createFileLog({ file: path.join(dataPaths(dataDir).logsDir, 'desktop.log') });
  const log = fileLog.log;
  let settings: DesktopSettings = await readDesktopSettings(dataDir);
  let manager: Manager | null = null;
  let phase: ServicePhase = 'stopped';
  let serviceError: string | undefined;
  /** Board counts and alarms, from the running service's feed. */
  let serviceState: FeedTrayState = { online: 0, total: 0, alarms: [] };
  let updateStatus: string | undefined;
  let window: BrowserWindow | null = null;
  let tray: Tray | null = null;
  let starting: Promise<void> | null = null;
  let shuttingDown: Promise<void> | null = null;
  let shutDown = false;
  const shownNotices = new Set<Notification>();

  const serviceOrigin = () => (manager ? new URL(manager.apiUrl).origin : null);

  app.on('second-instance', () => showWindow());

  // Every web contents (our window, and any other that might appear) is held to the same rules.
  const openExternal = (url: string) => shell.openExternal(url).catch((error: Error) => log('warn', `could not open ${url.slice(0, 200)}: ${error.message}`));
  const guard = navigationGuard({ serviceOrigin, openExternal, log });
  app.on('web-contents-created', (_event, contents) => {
    contents.setWindowOpenHandler(guard.windowOpen);
    contents.on('will-navigate', guard.navigate);
    contents.on('will-redirect', guard.navigate);
    contents.on('will-attach-webview', (event) => event.preventDefault());
  });

  // While the service stops and quits, the app waits for it: Redis is flushed and stopped, never killed.
  app.on('before-quit', (event) => {
    if (shutDown) return;
    event.preventDefault();
    // A downloaded update installs on the way out (its installer quits the app), else a plain quit.
    void shutdown().finally(() => updater.installOnQuit() || app.quit());
  });
  app.on('quit', () => void fileLog.close());
  // Closing the window leaves the app in the tray; only Quit ends it.
  app.on('window-all-closed', () => undefined);

  const notifications = new NotificationPolicy({ show: showNotice });
  const updater = createUpdater({
    enabled: () => settings.updatesEnabled,
    onStatus: (status) => {
      updateStatus = status;
      renderTray();
    },
    log,
  });

  serveDesktopDialogs({
    handle: (channel, listener) => ipcMain.handle(channel, listener),
    windowContentsId: () => window?.webContents.id,
    serviceOrigin,
    log,
    native: {
      async showOpen({ title, multiple, filters }) {
        const options = { title, filters, properties: multiple ? ['openFile' as const, 'multiSelections' as const] : ['openFile' as const] };
        const result = window ? await dialog.showOpenDialog(window, options) : await dialog.showOpenDialog(options);
        return result.canceled ? [] : result.filePaths;
      },
      async showSave({ title, defaultName }) {
        const options = { title, defaultPath: path.join(app.getPath('downloads'), defaultName) };
        const result = window ? await dialog.showSaveDialog(window, options) : await dialog.showSaveDialog(options);
        return result.canceled || !result.filePath ? null : result.filePath;
      },
    },
  });

  await app.whenReady();
  session.defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(permissionDecision()));
  session.defaultSession.setPermissionCheckHandler(() => permissionDecision());
  applyLoginItem();
  tray = new Tray(trayImage('starting'));
  tray.on('click', () => showWindow());
  log('info', `desktop app started (data folder ${dataDir})`);

  await startService();
  const openedAtLogin = process.argv.includes(HIDDEN_ARG) || app.getLoginItemSettings().wasOpenedAtLogin;
  if (manager && !openedAtLogin) showWindow();

  // --- the tray ----------------------------------------------------------------------------
  function trayInput() {
    return { phase, error: serviceError, ...serviceState, updatesEnabled: settings.updatesEnabled, updateStatus, startAtLogin: settings.startAtLogin };
  }

  function trayImage(icon: TrayView['icon']) {
    return nativeImage.createFromPath(path.join(packageDir, 'build', 'icons', trayIconFile(icon)));
  }

  function renderTray(): void {
    if (!tray) return;
    const view = trayView(trayInput());
    tray.setImage(trayImage(view.icon));
    tray.setToolTip(view.tooltip);
    tray.setContextMenu(Menu.buildFromTemplate(view.menu.map(menuItem)));
  }

  function menuItem(item: TrayView['menu'][number]): MenuItemConstructorOptions {
    const click = item.action
      ? () => void onTrayAction(item.action!).catch((error: Error) => log('error', `tray ${item.action}: ${error.stack ?? error.message}`))
      : undefined;
    switch (item.kind) {
      case 'separator':
        return { type: 'separator' };
      case 'status':
        return { label: item.label, enabled: false };
      case 'checkbox':
        return { type: 'checkbox', label: item.label, checked: item.checked === true, enabled: item.enabled, click };
      case 'item':
        return { label: item.label, enabled: item.enabled, click };
    }
  }

  async function onTrayAction(action: TrayAction): Promise<void> {
    switch (action) {
      case 'open':
        return showWindow();
      case 'flash':
        return showWindow(FLASH_ROUTE);
      case 'start-service':
        return startService();
      case 'stop-service':
        return stopService();
      case 'open-data-folder': {
        const problem = await shell.openPath(dataDir);
        if (problem) log('warn', `could not open the data folder ${dataDir}: ${problem}`);
        return;
      }
      case 'check-updates':
        return updater.check();
      case 'toggle-start-at-login':
        await changeSettings({ startAtLogin: !settings.startAtLogin });
        return applyLoginItem();
      case 'toggle-updates':
        await changeSettings({ updatesEnabled: !settings.updatesEnabled });
        if (settings.updatesEnabled) void updater.check();
        return;
      case 'quit':
        return app.quit();
    }
  }

  async function changeSettings(change: Partial<DesktopSettings>): Promise<void> {
    settings = await writeDesktopSettings(dataDir, change);
    renderTray();
  }

  function applyLoginItem(): void {
    app.setLoginItemSettings({ openAtLogin: settings.startAtLogin, args: [HIDDEN_ARG] });
  }

  // --- the service ---------------------------------------------------------------------------
  function setPhase(next: ServicePhase, error?: string): void {
    phase = next;
    serviceError = error;
    renderTray();
  }

  function startService(): Promise<void> {
    if (phase === 'stopped' || phase === 'error') starting = runStart().finally(() => (starting = null));
    return starting ?? Promise.resolve();
  }

  async function runStart(): Promise<void> {
    setPhase('starting');
    const next = new Manager({
      dataDir,
      log,
      redisUrl: settings.redisUrl ?? undefined,
      apiPort: DEFAULT_API_PORT,
      apiPortFallback: true,
      ...options.manager,
    });
    try {
      await next.start();
    } catch (error) {
      const message = (error as Error).message;
      log('error', `the service did not start: ${message}`);
      setPhase('error', message);
      showNotice({ title: 'Cloudmanager could not start', body: message });
      return;
    }
    manager = next;
    next.once('stopped', () => {
      if (manager === next) manager = null;
      setPhase('stopped');
    });
    feedFromManager(next, {
      tray: (changed) => {
        serviceState = changed;
        renderTray();
      },
      notifications,
    });
    setPhase('running');
    // A window from before a restart holds a session of the old service: sign it in again.
    if (window) load(window, signinPageUrl(next.signinUrl().url, undefined));
  }

  async function stopService(): Promise<void> {
    await starting;
    if (!manager) return;
    setPhase('stopping');
    await manager.stop();
  }

  function shutdown(): Promise<void> {
    shuttingDown ??= (async () => {
      log('info', 'quitting: stopping the service');
      notifications.dispose();
      updater.dispose();
      await stopService();
      tray?.destroy();
      tray = null;
      shutDown = true;
      await fileLog.flush();
    })();
    return shuttingDown;
  }

  // --- the window and notices ---------------------------------------------------------------
  function showWindow(route?: string): void {
    if (!manager || shuttingDown) return;
    if (!window) {
      window = createWindow(manager, route);
      return;
    }
    if (route) load(window, serviceRouteUrl(new URL(manager.apiUrl).origin, route));
    if (window.isMinimized()) window.restore();
    window.show();
    window.focus();
  }

  function createWindow(service: Manager, route: string | undefined): BrowserWindow {
    const created = new BrowserWindow({
      width: 1200,
      height: 800,
      minWidth: 720,
      minHeight: 480,
      show: false,
      title: 'Cloudmanager',
      // Windows and macOS take the window's icon from the app; Linux window managers need it given.
      ...(process.platform === 'linux' ? { icon: path.join(packageDir, 'build', 'icons', '256x256.png') } : {}),
      webPreferences: windowWebPreferences(preloadPath),
    });
    created.once('ready-to-show', () => created.show());
    created.on('close', (event) => {
      if (shuttingDown) return;
      event.preventDefault();
      created.hide();
      if (!settings.closeToTrayNoticeShown) {
        settings = { ...settings, closeToTrayNoticeShown: true };
        showNotice({ title: 'Cloudmanager is still running', body: 'It keeps your boards managed from the tray. Open the window or quit from the tray icon.' });
        void changeSettings({ closeToTrayNoticeShown: true }).catch((error: Error) => log('warn', `could not save the settings: ${error.message}`));
      }
    });
    created.on('closed', () => {
      if (window === created) window = null;
    });
    // The one-time link signs the window in (ui-sessions.ts); the API token stays in this process.
    load(created, signinPageUrl(service.signinUrl().url, route));
    return created;
  }

  /** A load that fails (or is cut short by the next one) is logged, never an unhandled rejection. */
  function load(target: BrowserWindow, url: string): void {
    target.loadURL(url).catch((error: Error) => log('warn', `the window could not load the service's page: ${error.message}`));
  }

  function showNotice(notice: DesktopNotice): void {
    if (!Notification.isSupported()) return;
    const shown = new Notification({ title: notice.title, body: notice.body });
    // Held until dismissed: a notice collected earlier would lose its click.
    shownNotices.add(shown);
    shown.on('click', () => showWindow(notice.route));
    shown.on('close', () => shownNotices.delete(shown));
    shown.show();
  }
}

if (process.versions.electron) {
  // A SIGTERM or Ctrl-C quits as the tray's Quit does: the service and Redis stop first.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => app.quit());
  startShell().catch((error: Error) => {
    process.stderr.write(`Cloudmanager could not start: ${error.stack ?? error.message}\n`);
    app.exit(1);
  });
}

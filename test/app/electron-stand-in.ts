/**
 * A recording stand-in for the `electron` module (there is no Electron binary here): the
 * parts of its API the shell uses, each call written to `recorder.calls` in order, events
 * kept so a test can fire them as Electron would (a navigation, a click in the tray menu,
 * a quit). It behaves only as far as the shell's wiring needs: app.quit() runs before-quit
 * and quits unless a listener prevented it, a new BrowserWindow announces its web contents
 * through 'web-contents-created', Menu.buildFromTemplate keeps the template.
 */
import { EventEmitter } from 'node:events';

export interface Call {
  name: string;
  args: unknown[];
}

/** An Electron-style event: preventable. */
export function preventable<T extends object>(fields: T): T & { defaultPrevented: boolean; preventDefault(): void } {
  const event = {
    ...fields,
    defaultPrevented: false,
    preventDefault() {
      event.defaultPrevented = true;
    },
  };
  return event;
}

export const recorder = {
  calls: [] as Call[],
  /** What requestSingleInstanceLock answers (false: another instance runs). */
  gotLock: true,
  /** Paths the open dialog answers with; the save dialog's answer. */
  openDialogPaths: [] as string[],
  saveDialogPath: null as string | null,
  downloadsFolder: '/tmp',
  /** Runs when the app really quits (no before-quit listener prevented it). */
  onQuit: undefined as (() => void) | undefined,
  quitted: false,
  ipcHandlers: new Map<string, (event: unknown, ...args: unknown[]) => unknown>(),
  permissionRequestHandler: undefined as ((contents: unknown, permission: string, callback: (granted: boolean) => void) => void) | undefined,
  permissionCheckHandler: undefined as ((...args: unknown[]) => boolean) | undefined,
  windows: [] as FakeBrowserWindow[],
  trays: [] as FakeTray[],
  notifications: [] as FakeNotification[],
  /** Called with each call as it is recorded (a test takes a snapshot of the world at that moment). */
  onRecord: undefined as ((call: Call) => void) | undefined,
  record(name: string, ...args: unknown[]) {
    const call = { name, args };
    this.calls.push(call);
    this.onRecord?.(call);
  },
  names(): string[] {
    return this.calls.map((call) => call.name);
  },
  reset() {
    this.calls = [];
    this.gotLock = true;
    this.openDialogPaths = [];
    this.saveDialogPath = null;
    this.onQuit = undefined;
    this.onRecord = undefined;
    this.quitted = false;
    this.ipcHandlers.clear();
    this.permissionRequestHandler = undefined;
    this.permissionCheckHandler = undefined;
    this.windows = [];
    this.trays = [];
    this.notifications = [];
    app.removeAllListeners();
    autoUpdater.removeAllListeners();
  },
};

let nextContentsId = 1;

export class FakeWebContents extends EventEmitter {
  readonly id = nextContentsId++;
  windowOpenHandler: ((details: { url: string }) => { action: string }) | undefined;
  readonly mainFrame = { url: '', parent: null as unknown };
  setWindowOpenHandler(handler: (details: { url: string }) => { action: string }) {
    recorder.record('webContents.setWindowOpenHandler', this.id);
    this.windowOpenHandler = handler;
  }
  /** Fires a will-navigate as a link click would; true when the shell let it happen. */
  navigate(url: string): boolean {
    const event = preventable({ url });
    this.emit('will-navigate', event, url);
    return !event.defaultPrevented;
  }
}

export class FakeBrowserWindow extends EventEmitter {
  readonly webContents = new FakeWebContents();
  visible = false;
  minimized = false;
  loaded: string[] = [];
  constructor(readonly options: Record<string, unknown>) {
    super();
    recorder.record('new BrowserWindow', options);
    recorder.windows.push(this);
    app.emit('web-contents-created', {}, this.webContents);
  }
  async loadURL(url: string) {
    recorder.record('window.loadURL', url);
    this.loaded.push(url);
    this.webContents.mainFrame.url = url;
  }
  show() {
    recorder.record('window.show');
    this.visible = true;
    this.minimized = false;
  }
  hide() {
    recorder.record('window.hide');
    this.visible = false;
  }
  focus() {
    recorder.record('window.focus');
  }
  isMinimized() {
    return this.minimized;
  }
  restore() {
    recorder.record('window.restore');
    this.minimized = false;
  }
  /** The user closes the window; true when it really closed. */
  close(): boolean {
    const event = preventable({});
    this.emit('close', event);
    if (event.defaultPrevented) return false;
    this.emit('closed');
    return true;
  }
}

export class FakeTray extends EventEmitter {
  image: unknown;
  tooltip = '';
  menu: Array<Record<string, any>> = [];
  destroyed = false;
  constructor(image: unknown) {
    super();
    recorder.record('new Tray', image);
    recorder.trays.push(this);
    this.image = image;
  }
  setImage(image: unknown) {
    this.image = image;
  }
  setToolTip(text: string) {
    recorder.record('tray.setToolTip', text);
    this.tooltip = text;
  }
  setContextMenu(menu: { template: Array<Record<string, any>> }) {
    recorder.record('tray.setContextMenu', menu.template);
    this.menu = menu.template;
  }
  destroy() {
    recorder.record('tray.destroy');
    this.destroyed = true;
  }
  /** The menu item with this label (its click calls the shell). */
  item(label: string): Record<string, any> {
    const found = this.menu.find((entry) => entry.label === label);
    if (!found) throw new Error(`no tray menu item "${label}" in: ${this.menu.map((entry) => entry.label ?? '—').join(' | ')}`);
    return found;
  }
  lines(): string[] {
    return menuLines(this.menu);
  }
}

/** A menu template's lines as a user reads them (disabled items in brackets, checkboxes marked). */
export function menuLines(template: Array<Record<string, any>>): string[] {
  return template.map((entry) => {
    if (entry.type === 'separator') return '---';
    const label = entry.type === 'checkbox' ? `${entry.checked ? '[x]' : '[ ]'} ${entry.label}` : entry.label;
    return entry.enabled === false ? `(${label})` : label;
  });
}

/** Stand-in for electron-updater's autoUpdater: records what the shell's updater asks of it. */
export class FakeAutoUpdater extends EventEmitter {
  autoDownload = true;
  autoInstallOnAppQuit = true;
  allowPrerelease = false;
  logger: unknown = null;
  setFeedURL(feed: unknown) {
    recorder.record('autoUpdater.setFeedURL', feed);
  }
  async checkForUpdates() {
    recorder.record('autoUpdater.checkForUpdates');
    return null;
  }
  async downloadUpdate() {
    recorder.record('autoUpdater.downloadUpdate');
    return [];
  }
  quitAndInstall(...args: unknown[]) {
    recorder.record('autoUpdater.quitAndInstall', ...args);
  }
}
export const autoUpdater = new FakeAutoUpdater();

export class FakeNotification extends EventEmitter {
  static isSupported() {
    return true;
  }
  constructor(readonly options: { title: string; body: string }) {
    super();
    recorder.notifications.push(this);
  }
  show() {
    recorder.record('notification.show', this.options);
  }
}

class FakeApp extends EventEmitter {
  requestSingleInstanceLock() {
    recorder.record('app.requestSingleInstanceLock');
    return recorder.gotLock;
  }
  whenReady() {
    recorder.record('app.whenReady');
    return Promise.resolve();
  }
  quit() {
    recorder.record('app.quit');
    const event = preventable({});
    this.emit('before-quit', event);
    if (event.defaultPrevented) return;
    for (const window of recorder.windows) window.close();
    this.emit('will-quit', preventable({}));
    this.emit('quit', preventable({}), 0);
    recorder.record('app quitted');
    recorder.quitted = true;
    recorder.onQuit?.();
  }
  exit(code: number) {
    recorder.record('app.exit', code);
  }
  getPath(name: string) {
    return name === 'downloads' ? recorder.downloadsFolder : '/nonexistent';
  }
  setLoginItemSettings(settings: unknown) {
    recorder.record('app.setLoginItemSettings', settings);
  }
  getLoginItemSettings() {
    return { openAtLogin: false, wasOpenedAtLogin: false };
  }
}

export const app = new FakeApp();

export const electronStandIn = {
  app,
  BrowserWindow: FakeBrowserWindow,
  Tray: FakeTray,
  Notification: FakeNotification,
  Menu: {
    buildFromTemplate: (template: Array<Record<string, unknown>>) => ({ template }),
  },
  nativeImage: {
    createFromPath: (file: string) => ({ file }),
  },
  session: {
    defaultSession: {
      setPermissionRequestHandler(handler: typeof recorder.permissionRequestHandler) {
        recorder.record('session.setPermissionRequestHandler');
        recorder.permissionRequestHandler = handler;
      },
      setPermissionCheckHandler(handler: typeof recorder.permissionCheckHandler) {
        recorder.record('session.setPermissionCheckHandler');
        recorder.permissionCheckHandler = handler;
      },
    },
  },
  shell: {
    openExternal: async (url: string) => recorder.record('shell.openExternal', url),
    openPath: async (file: string) => {
      recorder.record('shell.openPath', file);
      return '';
    },
  },
  ipcMain: {
    handle(channel: string, handler: (event: unknown, ...args: unknown[]) => unknown) {
      recorder.record('ipcMain.handle', channel);
      recorder.ipcHandlers.set(channel, handler);
    },
  },
  dialog: {
    async showOpenDialog(...args: unknown[]) {
      recorder.record('dialog.showOpenDialog', args.at(-1));
      return { canceled: recorder.openDialogPaths.length === 0, filePaths: recorder.openDialogPaths };
    },
    async showSaveDialog(...args: unknown[]) {
      recorder.record('dialog.showSaveDialog', args.at(-1));
      return { canceled: recorder.saveDialogPath === null, filePath: recorder.saveDialogPath ?? '' };
    },
  },
};

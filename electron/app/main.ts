/**
 * The Electron shell: lifecycle, tray and (with the renderer) the window. All logic lives
 * in electron/manager, which runs here in the main process exactly as it does headless.
 * This file is type-checked against the electron package; it is the only importer of it.
 */
import { app, Menu, Tray, nativeImage, shell } from 'electron';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Manager } from '../manager/manager.js';
import { defaultDataDir } from '../manager/data-dir.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const iconPath = path.join(here, '..', '..', '..', 'build', 'icons', 'tray.png');

if (!app.requestSingleInstanceLock()) app.quit();

// Defence in depth for the windows the renderer will open: no new windows, no navigation.
app.on('web-contents-created', (_event, contents) => {
  contents.setWindowOpenHandler(({ url }) => {
    if (url.startsWith('https://')) void shell.openExternal(url);
    return { action: 'deny' };
  });
  contents.on('will-navigate', (event) => event.preventDefault());
});

let tray: Tray | null = null;
let manager: Manager | null = null;
let quitting = false;

function refreshTray(status: string): void {
  if (!tray) return;
  tray.setToolTip(`Cloudmanager: ${status}`);
  tray.setContextMenu(
    Menu.buildFromTemplate([
      { label: status, enabled: false },
      { type: 'separator' },
      { label: 'Open data folder', click: () => void shell.openPath(manager?.paths.root ?? defaultDataDir()) },
      { label: 'Quit Cloudmanager', role: 'quit' },
    ]),
  );
}

async function startService(): Promise<void> {
  tray = new Tray(nativeImage.createFromPath(iconPath));
  refreshTray('starting…');
  manager = new Manager({ dataDir: defaultDataDir(), log: () => undefined });
  try {
    await manager.start();
  } catch (error) {
    refreshTray(`service failed: ${(error as Error).message}`);
    return;
  }
  const fleetStatus = () => {
    const { online, total } = manager!.fleet.counts();
    refreshTray(`running, ${online}/${total} boards online`);
  };
  manager.fleet.on('board', fleetStatus);
  fleetStatus();
}

app.whenReady().then(startService, () => app.quit());

// The service keeps running with no window open; it stops when the user quits.
app.on('window-all-closed', () => undefined);

app.on('before-quit', (event) => {
  if (quitting || !manager) return;
  event.preventDefault();
  quitting = true;
  void manager.stop().finally(() => app.quit());
});

/**
 * The desktop shell's wiring (electron/app/main.ts), run against a recording stand-in for the
 * `electron` module (test/app/electron-stand-in.ts: there is no Electron binary here) with
 * the real parts behind it: the Manager on a temporary data folder, its real redis-server,
 * virtual boards. What is asserted is what a user of the app would see: the order things come
 * up in, a window that can only show the service's page, the tray in each state, close to
 * tray, and a quit that takes the service and Redis down before the app goes.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

vi.mock('electron', async () => (await import('./electron-stand-in.js')).electronStandIn);
vi.mock('electron-updater', async () => ({ default: { autoUpdater: (await import('./electron-stand-in.js')).autoUpdater } }));

import { FakeWebContents, app as electronApp, menuLines, preventable, recorder, type FakeBrowserWindow, type FakeTray } from './electron-stand-in.js';
import { startShell } from '../../electron/app/main.js';
import { DESKTOP_CHANNELS } from '../../electron/app/dialogs.js';
import { readDesktopSettings, writeDesktopSettings } from '../../electron/app/desktop-settings.js';
import { ApiClient } from '../../electron/manager/api/client.js';
import { dataPaths } from '../../electron/manager/data-dir.js';
import { startVirtualFleet, type VirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/lab.js';
import { startPlainRedis, type PlainRedis } from '../helpers/plain-redis.js';

const appFolder = path.dirname(fileURLToPath(new URL('../../electron/app/main.ts', import.meta.url)));

let dataDir: string;
let cleanups: Array<() => Promise<unknown> | unknown>;

beforeEach(async () => {
  recorder.reset();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-shell-'));
  recorder.downloadsFolder = dataDir;
  cleanups = [];
});

afterEach(async () => {
  // A test that failed half-way still quits (the service and its redis-server stop) and cleans up.
  if (!recorder.quitted && recorder.trays.length > 0) {
    electronApp.quit();
    await waitFor(() => recorder.quitted, 30_000, 'the app to quit');
  }
  for (const cleanup of cleanups.reverse()) await cleanup();
  await rm(dataDir, { recursive: true, force: true });
});

async function managerPorts() {
  return { redisPort: await freePort(), apiPort: await freePort(), heartbeatS: 1 };
}

async function service() {
  const paths = dataPaths(dataDir);
  const info = JSON.parse(await readFile(paths.serviceFile, 'utf8')) as { apiUrl: string };
  const api = new ApiClient(info.apiUrl, (await readFile(paths.apiToken, 'utf8')).trim());
  return { origin: new URL(info.apiUrl).origin, api, token: (await readFile(paths.apiToken, 'utf8')).trim() };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const tray = (): FakeTray => recorder.trays[0]!;
const window = (): FakeBrowserWindow => recorder.windows[0]!;
/** The tray menu's status line (the only disabled line that is not a separator or an action). */
const statusOf = (lines: string[]) => lines.find((line) => /^\((Starting|Stopping|Running|Service|Error|\d+ of)/.test(line));
const click = (label: string) => (tray().item(label).click as () => void)();
const iconOf = () => path.basename((tray().image as { file: string }).file);
/** Invokes an IPC channel as a page would, from `contents` (its top frame unless `frame` says otherwise). */
function invoke(channel: string, contents: FakeWebContents, args: unknown[], frame: { url: string; parent: unknown } = contents.mainFrame) {
  const handler = recorder.ipcHandlers.get(channel);
  if (!handler) throw new Error(`nothing serves ${channel}`);
  return handler({ sender: contents, senderFrame: frame }, ...args) as Promise<{ ok: boolean; value?: any; error?: string }>;
}

describe('desktop shell wiring', () => {
  it('comes up in order, locks the window to the service, keeps running in the tray, and quits only after the service and Redis stopped', async () => {
    const options = await managerPorts();
    const paths = dataPaths(dataDir);
    let serviceUpWhenWindowCreated: boolean | undefined;
    recorder.onRecord = (call) => {
      if (call.name === 'new BrowserWindow') serviceUpWhenWindowCreated = existsSync(paths.serviceFile);
    };
    await startShell({ dataDir, manager: options });

    // Order: the single-instance lock before anything; the service up before the window.
    const names = recorder.names();
    expect(names[0]).toBe('app.requestSingleInstanceLock');
    expect(names.indexOf('app.whenReady')).toBeLessThan(names.indexOf('session.setPermissionRequestHandler'));
    expect(names.indexOf('session.setPermissionCheckHandler')).toBeLessThan(names.indexOf('new BrowserWindow'));
    expect(names.filter((name) => name === 'new BrowserWindow')).toHaveLength(1);
    expect(serviceUpWhenWindowCreated).toBe(true);
    // Start at login is off by default, and said so to the OS.
    expect(recorder.calls.find((call) => call.name === 'app.setLoginItemSettings')!.args[0]).toMatchObject({ openAtLogin: false });

    // The tray said "starting" before the window existed, then "running".
    const menus = recorder.calls.filter((call) => call.name === 'tray.setContextMenu').map((call) => menuLines(call.args[0] as Array<Record<string, any>>));
    expect(statusOf(menus[0]!)).toBe('(Starting…)');
    expect(menus[0]).toContain('(Open Cloudmanager)');
    expect(names.indexOf('tray.setContextMenu')).toBeLessThan(names.indexOf('new BrowserWindow'));
    expect(statusOf(tray().lines())).toBe('(Running, no boards yet)');
    expect(tray().lines()).toEqual(
      expect.arrayContaining(['Open Cloudmanager', 'Flash a board…', 'Stop service', 'Open data folder', '[ ] Start at login', 'Quit Cloudmanager']),
    );

    // The window: isolated, sandboxed, our preload, signed in by a one-time link — not the token.
    const { origin, api, token } = await service();
    expect(window().options.webPreferences).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true });
    expect((window().options.webPreferences as { preload: string }).preload).toBe(path.join(appFolder, 'preload.cjs'));
    const [signin] = window().loaded;
    expect(signin).toMatch(new RegExp(`^${origin}/signin\\?code=[\\w-]+$`));
    expect(signin).not.toContain(token);
    const answer = await fetch(signin!, { redirect: 'manual' });
    expect(answer.status).toBe(303);
    expect(answer.headers.get('set-cookie')).toMatch(/^cm_session_\d+=.*HttpOnly/);

    // Navigation stays on the service's origin; https elsewhere goes to the browser; nothing opens a window.
    const contents = window().webContents;
    expect(contents.navigate(`${origin}/#/jobs`)).toBe(true);
    expect(contents.navigate('http://127.0.0.1:1/')).toBe(false);
    expect(contents.navigate('file:///etc/passwd')).toBe(false);
    expect(contents.navigate('https://micropython.org/download/')).toBe(false);
    expect(contents.windowOpenHandler!({ url: 'https://docs.micropython.org/' })).toEqual({ action: 'deny' });
    expect(contents.windowOpenHandler!({ url: `${origin}/#/flash` })).toEqual({ action: 'deny' });
    expect(recorder.calls.filter((call) => call.name === 'shell.openExternal').map((call) => call.args[0])).toEqual([
      'https://micropython.org/download/',
      'https://docs.micropython.org/',
    ]);
    // Any other web contents gets the same rules.
    const other = new FakeWebContents();
    electronApp.emit('web-contents-created', preventable({}), other);
    expect(other.windowOpenHandler!({ url: 'http://example.com/' })).toEqual({ action: 'deny' });
    expect(other.navigate('http://example.com/')).toBe(false);
    expect(other.navigate(`${origin}/`)).toBe(true);

    // Every permission is refused.
    for (const permission of ['media', 'notifications', 'geolocation', 'serial', 'clipboard-read']) {
      const granted = await new Promise<boolean>((resolve) => recorder.permissionRequestHandler!(contents, permission, resolve));
      expect(granted, permission).toBe(false);
      expect(recorder.permissionCheckHandler!(contents, permission, origin, {}), permission).toBe(false);
    }

    // Native dialogs, for our window's page only.
    const firmware = path.join(dataDir, 'picked.bin');
    await writeFile(firmware, Buffer.from([0xe9, 0x02]));
    recorder.openDialogPaths = [firmware];
    expect(await invoke(DESKTOP_CHANNELS.pickFirmware, contents, [])).toEqual({
      ok: true,
      value: [{ name: 'picked.bin', bytes: new Uint8Array([0xe9, 0x02]) }],
    });
    expect(await invoke(DESKTOP_CHANNELS.pickFirmware, other, [])).toMatchObject({ ok: false });
    // An iframe of the page, even on the service's origin, is not the page.
    expect(await invoke(DESKTOP_CHANNELS.pickFiles, contents, [{ multiple: true }], { url: `${origin}/`, parent: contents.mainFrame })).toMatchObject({
      ok: false,
    });
    recorder.saveDialogPath = path.join(dataDir, 'saved.py');
    expect(await invoke(DESKTOP_CHANNELS.saveFile, contents, ['lib/main.py', new TextEncoder().encode('print(1)\n')])).toEqual({ ok: true, value: true });
    expect(await readFile(path.join(dataDir, 'saved.py'), 'utf8')).toBe('print(1)\n');
    expect(recorder.calls.find((call) => call.name === 'dialog.showSaveDialog')!.args[0]).toMatchObject({ defaultPath: path.join(dataDir, 'main.py') });

    // Boards: the tray counts them, and its icon says when one is missing.
    const fleet: VirtualFleet = await startVirtualFleet({ api, count: 2, prefix: 'desk', board: { reconnectMinMs: 100, bootDelayMs: 200 } });
    cleanups.push(() => fleet.close());
    await waitFor(() => statusOf(tray().lines()) === '(2 of 2 boards online)', 20_000, 'the tray to count 2 of 2 online');
    expect(iconOf()).toBe('tray-online.png');
    await fleet.boards[0]!.stop();
    await waitFor(() => statusOf(tray().lines()) === '(1 of 2 boards online)', 20_000, 'the tray to count 1 of 2 online');
    expect(iconOf()).toBe('tray-offline.png');

    // Closing the window keeps the app in the tray; the first time only, a notice says so.
    expect(window().close()).toBe(false);
    expect(window().visible).toBe(false);
    expect(window().close()).toBe(false);
    const notices = () => recorder.calls.filter((call) => call.name === 'notification.show').map((call) => (call.args[0] as { title: string }).title);
    expect(notices()).toEqual(['Cloudmanager is still running']);
    await waitFor(async () => (await readDesktopSettings(dataDir)).closeToTrayNoticeShown, 5_000, 'the notice remembered');
    // Its click, the tray's Open, a second launch: the window comes back (restored when minimized).
    recorder.notifications[0]!.emit('click');
    expect(window().visible).toBe(true);
    window().minimized = true;
    electronApp.emit('second-instance', preventable({}), [], dataDir);
    expect(recorder.names().slice(-3)).toEqual(['window.restore', 'window.show', 'window.focus']);
    click('Flash a board…');
    expect(window().loaded.at(-1)).toBe(`${origin}/#/flash`);
    click('Open data folder');
    expect(recorder.calls.at(-1)).toEqual({ name: 'shell.openPath', args: [dataDir] });

    // Stop and start the service from the tray: Redis goes with it; the window signs in again.
    const redisPid = (await api.call('status', {})).redis.pid!;
    click('Stop service');
    await waitFor(() => statusOf(tray().lines()) === '(Service stopped)', 30_000, 'the service to stop');
    expect(isAlive(redisPid)).toBe(false);
    expect(iconOf()).toBe('tray-stopped.png');
    expect(tray().lines()).toEqual(expect.arrayContaining(['(Open Cloudmanager)', '(Flash a board…)', 'Start service']));
    click('Start service');
    await waitFor(() => statusOf(tray().lines())?.endsWith('boards online)'), 30_000, 'the service to run again');
    expect(window().loaded.at(-1)).toMatch(new RegExp(`^${origin}/signin\\?code=`));
    expect(window().loaded.at(-1)).not.toBe(signin);

    // Quit: the app waits for the service, then goes; redis-server is gone by then.
    const restarted = (await service()).api;
    const pid = (await restarted.call('status', {})).redis.pid!;
    expect(isAlive(pid)).toBe(true);
    let redisAliveAtQuit: boolean | undefined;
    recorder.onQuit = () => (redisAliveAtQuit = isAlive(pid));
    click('Quit Cloudmanager');
    expect(recorder.quitted).toBe(false);
    await waitFor(() => recorder.quitted, 30_000, 'the app to quit');
    expect(redisAliveAtQuit).toBe(false);
    expect(existsSync(paths.serviceFile)).toBe(false);
    expect(tray().destroyed).toBe(true);
    expect(recorder.names().filter((name) => name === 'app.quit')).toHaveLength(2);
    // Its log is in the data folder, without the token or a sign-in code.
    const log = await readFile(path.join(paths.logsDir, 'desktop.log'), 'utf8');
    expect(log).toContain('service stopped');
    expect(log).not.toContain(token);
  });

  it('shows a service that cannot start as an error in the tray, with no window, and starts it when asked again', async () => {
    const options = await managerPorts();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(options.redisPort, '127.0.0.1', resolve));
    await startShell({ dataDir, manager: options });
    expect(statusOf(tray().lines())).toMatch(/^\(Error: port \d+ is already in use/);
    expect(iconOf()).toBe('tray-error.png');
    expect(recorder.windows).toEqual([]);
    expect(recorder.calls.filter((call) => call.name === 'notification.show').map((call) => call.args[0])).toEqual([
      { title: 'Cloudmanager could not start', body: expect.stringContaining(`port ${options.redisPort} is already in use`) },
    ]);
    expect(tray().lines()).toEqual(expect.arrayContaining(['(Open Cloudmanager)', 'Start service']));
    click('Open Cloudmanager'); // disabled in a real menu; the shell has nothing to show anyway
    expect(recorder.windows).toEqual([]);

    await new Promise((resolve) => blocker.close(resolve));
    click('Start service');
    await waitFor(() => statusOf(tray().lines()) === '(Running, no boards yet)', 30_000, 'the service to start');
    click('Open Cloudmanager');
    expect(window().loaded[0]).toMatch(/\/signin\?code=/);
    electronApp.quit();
    await waitFor(() => recorder.quitted, 30_000, 'the app to quit');
  });

  it('uses the external Redis named in the desktop settings instead of starting one', async () => {
    const redis: PlainRedis = await startPlainRedis();
    cleanups.push(() => redis.kill());
    await writeDesktopSettings(dataDir, { redisUrl: redis.url() });
    const { redisPort, apiPort } = await managerPorts();
    await startShell({ dataDir, manager: { redisPort, apiPort } });
    const status = await (await service()).api.call('status', {});
    expect(status.redis).toMatchObject({ external: true, port: redis.port });
    electronApp.quit();
    await waitFor(() => recorder.quitted, 30_000, 'the app to quit');
    // The user's Redis is theirs: still there after the app quit.
    expect(
      await new Promise((resolve) =>
        net
          .connect(redis.port, '127.0.0.1')
          .on('connect', function (this: net.Socket) {
            this.destroy();
            resolve(true);
          })
          .on('error', () => resolve(false)),
      ),
    ).toBe(true);
  });

  it('a second launch only hands over to the first: no tray, no window, no service', async () => {
    recorder.gotLock = false;
    await startShell({ dataDir, manager: await managerPorts() });
    expect(recorder.names()).toEqual(['app.requestSingleInstanceLock', 'app.quit', 'app quitted']);
    expect(await readdir(dataDir)).toEqual([]);
  });
});

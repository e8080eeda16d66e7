// `npm run screenshots`: drives the real UI (built renderer, served by a real service with
// its own Redis) against virtual boards, and writes PNGs of every main screen to
// docs/screenshots/. Uses the OS's Chromium through playwright-core; never downloads.
import { mkdtemp, readFile, rm, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { chromium } from 'playwright-core';
import { Manager } from '../dist/electron/manager/manager.js';
import { ApiClient } from '../dist/electron/manager/api/client.js';
import { startVirtualFleet } from '../dist/electron/manager/virtual/virtual-fleet.js';
import { RespConnection } from '../dist/electron/manager/redis/resp-connection.js';
import { boardKeys } from '../dist/electron/manager/redis/keys.js';
import { SimulatedEsp8266 } from '../dist/test/lab/simulated-esp8266.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'docs', 'screenshots');
const only = process.argv.slice(2);
const want = (name) => only.length === 0 || only.some((part) => name.includes(part));

import http from 'node:http';
import { createHash } from 'node:crypto';
import { makeEsp8266Image } from '../dist/test/lab/esp8266-image.js';

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-shots-'));
// The wizard's built-in firmware comes from a local mirror here: a synthetic image with
// MicroPython's banner (no download from the internet).
const image = makeEsp8266Image({ size: 600 * 1024, seed: 1 });
image.write('MicroPython v1.27.0 on 2025-12-09; ESP module with ESP8266\0', 100 * 1024, 'latin1');
const mirror = http.createServer((_request, response) => response.end(image));
await new Promise((resolve) => mirror.listen(0, '127.0.0.1', resolve));
process.env.CLOUDMANAGER_FIRMWARE_MIRROR = `http://127.0.0.1:${mirror.address().port}/`;
// The Packages screens install from a package index on 127.0.0.1 in micropython-lib's v2
// layout (package JSON by name, files by the first 8 hex digits of their sha256).
const indexFiles = new Map();
const indexPackages = new Map();
const publish = (name, version, files, deps = []) => {
  const hashes = Object.entries(files).map(([file, text]) => {
    const data = Buffer.from(text);
    const hash = createHash('sha256').update(data).digest('hex').slice(0, 8);
    indexFiles.set(hash, data);
    return [file, hash];
  });
  indexPackages.set(name, JSON.stringify({ hashes, deps, version }));
};
publish('logging', '0.6', { 'logging.py': '# logging\n'.repeat(120) });
publish('umqtt.simple', '1.3.4', { 'umqtt/simple.py': '# umqtt.simple\n'.repeat(200) });
publish(
  'sensors-kit',
  '1.2.0',
  {
    'sensors_kit/__init__.py': 'from .bme280 import BME280\n',
    'sensors_kit/bme280.py': '# bme280\n'.repeat(300),
    'sensors_kit/ds18x20.py': '# ds18x20\n'.repeat(90),
  },
  [
    ['logging', 'latest'],
    ['umqtt.simple', 'latest'],
  ],
);
// Its dependency ssd1306 is not on the index: the install is refused before any board is touched.
publish('weather-station', '0.3', { 'weather_station.py': 'import sensors_kit\n' }, [
  ['sensors-kit', 'latest'],
  ['ssd1306', '0.1'],
]);
const packageIndex = http.createServer((request, response) => {
  const url = request.url ?? '';
  const json = /^\/pi\/v2\/package\/(?:py|6)\/([^/]+)\/[^/]+\.json$/.exec(url);
  const file = /^\/pi\/v2\/file\/[0-9a-f]{2}\/([0-9a-f]{8})$/.exec(url);
  const body = json ? indexPackages.get(json[1]) : file ? indexFiles.get(file[1]) : undefined;
  response.statusCode = body === undefined ? 404 : 200;
  response.end(body ?? 'not found');
});
await new Promise((resolve) => packageIndex.listen(0, '127.0.0.1', resolve));
const linkDir = await mkdtemp(path.join(os.tmpdir(), 'cm-shots-usb-'));
const usbLink = path.join(linkDir, 'ttyUSB0');
const freePort = () =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
const redisPort = await freePort();
const manager = new Manager({
  dataDir,
  redisPort,
  heartbeatS: 2,
  extraSerialPorts: [usbLink],
  packageIndexUrl: `http://127.0.0.1:${packageIndex.address().port}/pi/v2`,
  pypiUrl: '',
});
const cleanups = [];
try {
  await manager.start();
  cleanups.push(() => manager.stop());
  const api = new ApiClient(manager.apiUrl, manager.apiToken);
  await mkdir(out, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
  cleanups.push(() => browser.close());
  const open = async (colorScheme = 'light') => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme, deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.on('pageerror', (error) => console.error(`page error: ${error.message}`));
    await page.goto(manager.signinUrl().url);
    return page;
  };
  const shot = async (page, name) => {
    if (!want(name)) return;
    await page.waitForTimeout(300); // let transitions settle (a picture, not a test)
    await page.screenshot({ path: path.join(out, `${name}.png`) });
    console.log(`wrote docs/screenshots/${name}.png`);
  };

  // First run: nothing enrolled yet.
  let page = await open();
  await page.getByRole('heading', { name: 'Welcome to Cloudmanager' }).waitFor();
  await shot(page, 'first-run');

  // A small fleet with tags, a few offline.
  const fleet = await startVirtualFleet({ api, count: 8, prefix: 'greenhouse', board: { reconnectMinMs: 200 } });
  cleanups.unshift(() => fleet.close());
  await api.call('boards.tag', { boards: 'greenhouse-[1-4]', add: ['garden'] });
  await api.call('boards.tag', { boards: 'greenhouse-[5-6]', add: ['kitchen'] });
  await api.call('boards.enrollMany', { names: ['attic-sensor', 'garage-door'] });
  await page.reload();
  await page.locator('[data-board="greenhouse-8"]').waitFor();
  await page.locator('[data-board="greenhouse-2"] input[type=checkbox]').click();
  await page.locator('[data-board="greenhouse-4"] input[type=checkbox]').click({ modifiers: ['Shift'] });
  await shot(page, 'fleet-light');
  const dark = await open('dark');
  await dark.locator('[data-board="greenhouse-8"]').waitFor();
  await shot(dark, 'fleet-dark');

  // Board page: Code tab after a run.
  await page.goto(`${manager.apiUrl}/#/board/greenhouse-1/code`);
  await page.locator('.cm-content').waitFor();
  await page.locator('.cm-content').click();
  await page.keyboard.press('Control+a');
  await page.keyboard.type('import sys\nprint("MicroPython", sys.version)\nfor i in range(3):\n    print("reading", i, "=", 20 + i * 0.5)\n', { delay: 0 });
  await page.getByRole('button', { name: '▶ Run' }).click();
  await page.getByText('Finished').waitFor();
  await shot(page, 'board-code');

  // Files tab with a few files.
  await api.call('commands.send', {
    boards: 'greenhouse-1',
    request: { op: 'put', path: '/main.py', dataBase64: Buffer.from('import cm\n').toString('base64') },
  });
  await api.call('commands.send', {
    boards: 'greenhouse-1',
    request: { op: 'put', path: '/lib/sensors.py', dataBase64: Buffer.from('# sensors\n'.repeat(300)).toString('base64') },
  });
  await api.call('commands.send', {
    boards: 'greenhouse-1',
    request: { op: 'put', path: '/data/readings.csv', dataBase64: Buffer.alloc(12_000, 65).toString('base64') },
  });
  await page.goto(`${manager.apiUrl}/#/board/greenhouse-1/files`);
  await page.locator('[data-path="/lib"]').waitFor();
  await page.locator('[data-path="/lib"]').click();
  await page.locator('[data-path="/lib/sensors.py"]').waitFor();
  await shot(page, 'board-files');

  await page.goto(`${manager.apiUrl}/#/board/greenhouse-1/telemetry`);
  await page.locator('.u-over').waitFor();
  await shot(page, 'board-telemetry');
  await page.goto(`${manager.apiUrl}/#/board/greenhouse-1/console`);
  await page.locator('.xterm-helper-textarea').waitFor();
  await page.locator('.xterm').click();
  await page.keyboard.type('x = 6 * 7\r');
  await page.locator('.xterm-rows').getByText('>>> ', { exact: false }).nth(1).waitFor();
  await page.keyboard.type('[x * i for i in range(5)]\r');
  await page.locator('.xterm-rows').getByText('[0, 42, 84, 126, 168]').waitFor();
  await shot(page, 'board-console');
  await page.goto(`${manager.apiUrl}/#/board/greenhouse-1/settings`);
  await page
    .getByText('wifi_password')
    .waitFor()
    .catch(() => undefined);
  await shot(page, 'board-settings');

  // Packages tab: an install with its two dependencies, then one whose dependency is missing.
  await page.goto(`${manager.apiUrl}/#/board/greenhouse-1/packages`);
  await page.getByText('No packages installed through Cloudmanager yet').waitFor();
  await page.getByLabel(/^Packages/).fill('sensors-kit');
  await page.getByRole('button', { name: 'Install', exact: true }).click();
  await page.locator('section[aria-label="Installed packages"] tr[data-package="umqtt.simple"]').waitFor({ timeout: 60_000 });
  await shot(page, 'board-packages');
  await page.getByLabel(/^Packages/).fill('weather-station');
  await page.getByRole('button', { name: 'Install', exact: true }).click();
  await page.getByText('Nothing was installed').waitFor({ timeout: 60_000 });
  await shot(page, 'board-packages-error');
  await page.locator('tr[data-package="logging"]').getByRole('button', { name: 'Uninstall' }).click();
  await page.getByRole('dialog').getByText('Deletes the').waitFor();
  await shot(page, 'board-packages-uninstall');
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();

  // Install packages… on a selection, one board of it offline (it waits for the board).
  await page.goto(`${manager.apiUrl}/#/`);
  for (const name of ['greenhouse-1', 'greenhouse-2', 'greenhouse-3', 'attic-sensor'])
    await page.locator(`[data-board="${name}"] input[type=checkbox]`).check();
  await page.getByRole('button', { name: 'Install packages…' }).click();
  await page
    .getByRole('dialog')
    .getByLabel(/^Packages/)
    .fill('sensors-kit\nlogging@0.6');
  await page.getByRole('dialog').getByText('Advanced').click();
  await shot(page, 'fleet-install');
  await page
    .getByRole('dialog')
    .getByRole('button', { name: /^Install on/ })
    .click();
  await page.waitForURL(/#\/jobs\/j/);
  await page
    .locator('tr[data-board="greenhouse-3"]')
    .getByText(/uploaded/)
    .waitFor({ timeout: 60_000 });
  await shot(page, 'jobs-install');

  // A job: a bulk run on the garden boards.
  const job = await api.call('jobs.start', { kind: 'exec', boards: 'tag:garden', code: 'import gc\nprint(gc.mem_free())' });
  await page.goto(`${manager.apiUrl}/#/jobs/${job.id}`);
  await page
    .getByText('4 ok', { exact: false })
    .first()
    .waitFor()
    .catch(() => undefined);
  await shot(page, 'jobs');

  // A board over its budget (its state hash filled with its own password) is suspended, another revoked by the user.
  const greedy = fleet.byName('greenhouse-7').config;
  const connection = await RespConnection.connect({ host: '127.0.0.1', port: redisPort });
  await connection.call('AUTH', String(greedy.user), String(greedy.password));
  await connection.call('HSET', boardKeys(String(greedy.id)).state, 'junk', 'x'.repeat(20_000)).catch(() => undefined);
  connection.destroy();
  await api.call('boards.revoke', { board: 'greenhouse-8' });
  await page.goto(`${manager.apiUrl}/#/`);
  await page.locator('[data-board="greenhouse-7"] .pill', { hasText: 'suspended' }).waitFor();
  await page.locator('[data-board="greenhouse-8"] .pill', { hasText: 'revoked' }).waitFor();
  await shot(page, 'fleet-suspended');
  await page.goto(`${manager.apiUrl}/#/board/greenhouse-7/code`);
  await page.getByRole('button', { name: 'Enable' }).waitFor();
  await shot(page, 'board-suspended');
  for (const name of ['greenhouse-7', 'greenhouse-8']) await api.call('boards.enable', { board: name });

  // A second service on the same Redis (as on another computer) stands by; its UI shows the
  // same fleet, with a banner naming the service that runs it.
  if (want('standby')) {
    const password = (await readFile(manager.paths.managerPassword, 'utf8')).trim();
    const standbyDir = await mkdtemp(path.join(os.tmpdir(), 'cm-shots-standby-'));
    const standby = new Manager({ dataDir: standbyDir, redisUrl: `redis://cm-manager:${encodeURIComponent(password)}@127.0.0.1:${redisPort}`, apiPort: 0 });
    cleanups.unshift(() => rm(standbyDir, { recursive: true, force: true }));
    cleanups.unshift(() => standby.stop());
    await standby.start();
    const standbyPage = await page.context().newPage();
    await standbyPage.goto(standby.signinUrl().url);
    await standbyPage.locator('.banners [role="status"]').getByText('This service stands by').waitFor();
    await standbyPage.locator('[data-board="greenhouse-1"]').getByText('online').waitFor();
    await shot(standbyPage, 'fleet-standby');
    await standbyPage.close();
  }

  // The flash wizard, against a simulated ESP8266 on a pty.
  const board = new SimulatedEsp8266({ folder: path.join(linkDir, 'board'), link: usbLink });
  cleanups.unshift(() => board.close());
  await board.powerOn('download');
  // A board that ran NodeMCU before: its files are where MicroPython keeps its own, and
  // the wizard shows the flasher clearing them.
  board.rom.flash.program(0x100000, Buffer.from('\x01\x00\x00\x00init.lua\x00', 'latin1'));
  await page.goto(`${manager.apiUrl}/#/flash`);
  await page.getByText(usbLink).waitFor();
  await shot(page, 'wizard-1-port');
  await page.getByText(usbLink).click();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByText('MicroPython 1.27 for ESP8266').waitFor();
  await shot(page, 'wizard-2-firmware');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Wifi name (SSID)').fill('cloudmanager-lab');
  await page.getByLabel('Wifi password').fill('lab-password');
  await page.getByLabel('Board name').fill('kitchen');
  await shot(page, 'wizard-3-setup');
  await page.getByRole('button', { name: 'Flash', exact: true }).click();
  await page.locator('li[data-step="write"][data-state="current"] .detail').waitFor({ timeout: 60_000 });
  await shot(page, 'wizard-4-flashing');
  // The simulated adapter has no reset lines: the wizard asks for one plain RESET.
  await page.getByRole('alert').getByText('Press RESET once').waitFor({ timeout: 60_000 });
  await shot(page, 'wizard-5-press-reset');
  await board.rom.pressReset();
  await page.waitForURL(/#\/board\/kitchen\/code/, { timeout: 90_000 });
  await shot(page, 'wizard-6-done');
} finally {
  for (const cleanup of cleanups) await cleanup()?.catch?.(() => undefined);
  mirror.close();
  packageIndex.close();
  await rm(dataDir, { recursive: true, force: true });
  await rm(linkDir, { recursive: true, force: true });
}

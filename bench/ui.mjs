// `npm run bench:ui`: the UI's budgets, measured in the OS's Chromium against the real
// service. Prints one JSON line:
//   start_to_fleet_ms     `mbm server-start --foreground` (what `npm start` runs headless) to
//                         the fleet view visible in a browser that was already open (≤ 3000)
//   fleet_js_gz_kb        JavaScript the fleet view loads first, gzipped (≤ 150); the editor,
//                         terminal and chart load with their tabs
//   render_10k_ms         10,000 boards: from asking the service for them to their rows on
//                         screen (≤ 1000)
//   update_10k_batch_ms   a change to all 10,000 boards (10,000 events): the longest batch,
//                         applied and on screen (≤ 100)
// Options: --boards N (default 10000).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { Manager } from '../dist/electron/manager/manager.js';
import { ApiClient } from '../dist/electron/manager/api/client.js';
import { freeTcpPort } from './ports.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { boards: { type: 'string', default: '10000' } } });
const BOARDS = Number(values.boards);

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
const results = {};
try {
  results.start_to_fleet_ms = await startToFleet();
  results.fleet_js_gz_kb = await initialJavaScriptKb();
  Object.assign(results, await bigFleet());
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));

/** The headless `npm start` path: service up, sign-in link printed, fleet view visible. */
async function startToFleet() {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-bench-ui-'));
  const page = await (await browser.newContext()).newPage();
  const started = performance.now();
  const child = spawn(
    process.execPath,
    [
      path.join(root, 'bin', 'mbm.js'),
      'server-start',
      '--foreground',
      '--data-dir',
      dataDir,
      '--port',
      String(await freeTcpPort()),
      '--api-port',
      String(await freeTcpPort()),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    const url = await new Promise((resolve, reject) => {
      let text = '';
      child.stdout.on('data', (chunk) => {
        text += chunk;
        const match = /Open the app: (\S+)/.exec(text);
        if (match) resolve(match[1]);
      });
      child.on('exit', (code) => reject(new Error(`the service exited (${code}) before printing its sign-in link`)));
    });
    await page.goto(url);
    await page.getByRole('heading', { name: 'Welcome to Cloudmanager' }).waitFor();
    return Math.round(performance.now() - started);
  } finally {
    child.kill('SIGINT');
    await new Promise((resolve) => child.once('exit', resolve));
    await page.context().close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** The entry script and the modules it preloads, gzipped as a server would send them. */
async function initialJavaScriptKb() {
  const html = await readFile(path.join(root, 'dist', 'renderer', 'index.html'), 'utf8');
  const files = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+\.js)"/g)].map((match) => match[1]);
  let bytes = 0;
  for (const file of files) bytes += gzipSync(await readFile(path.join(root, 'dist', 'renderer', file))).length;
  return Math.round(bytes / 102.4) / 10;
}

/** 10,000 enrolled boards: first render, then a change to every one of them. */
async function bigFleet() {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-bench-ui-'));
  const manager = new Manager({ dataDir, redisPort: await freeTcpPort() });
  await manager.start();
  try {
    const api = new ApiClient(manager.apiUrl, manager.apiToken);
    const names = Array.from({ length: BOARDS }, (_, index) => `bench-${index + 1}`);
    for (let index = 0; index < names.length; index += 1000) await api.call('boards.enrollMany', { names: names.slice(index, index + 1000) });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    await page.goto(manager.signinUrl().url);
    await page.locator('[data-board="bench-1"]').waitFor({ timeout: 60_000 });
    const render = await page.evaluate(() => {
      const requested = performance.getEntriesByName('cm:boards-requested')[0].startTime;
      const rendered = performance.getEntriesByName('cm:fleet-rendered').find((entry) => entry.startTime > requested);
      return rendered.startTime - requested;
    });
    // A change to every board: 10,000 events, applied in batches (at most 4 a second).
    await api.call('boards.tag', { boards: 'bench-*', add: ['bench'] });
    await page.waitForFunction(
      (count) => performance.getEntriesByName('cm:boards-batch').reduce((sum, entry) => sum + (entry.detail?.events ?? 0), 0) >= count,
      BOARDS,
      { timeout: 60_000 },
    );
    const batches = await page.evaluate(() =>
      performance.getEntriesByName('cm:boards-batch').map((entry) => ({ ms: entry.duration, events: entry.detail.events })),
    );
    await context.close();
    return {
      render_10k_ms: Math.round(render),
      update_10k_batch_ms: Math.round(Math.max(...batches.map((batch) => batch.ms))),
      update_batches: batches.length,
      boards: BOARDS,
    };
  } finally {
    await manager.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

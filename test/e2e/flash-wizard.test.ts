/**
 * The flash wizard in Chromium against simulated ESP8266 boards on ptys: it downloads the
 * built-in MicroPython (from a local mirror), flashes, sets the board up, shows each phase,
 * and ends on the board's page with the board online; a board that needs `dio` gets the
 * automatic re-flash; a text file chosen as firmware is refused with nothing written.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startManager } from '../helpers/lab.js';
import { keepFailure, launchBrowser, pageErrors, signedInPage } from '../helpers/browser.js';
import { SimulatedEsp8266 } from '../lab/simulated-esp8266.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';
import { LAB_WIFI } from '../../electron/manager/virtual/micropython-board.js';

const OFFICIAL_FILE = 'ESP8266_GENERIC-20251209-v1.27.0.bin';

/** Records every state each wizard step shows, in order, as the page changes. */
async function recordSteps(page: Page): Promise<void> {
  await page.evaluate(() => {
    const seen: Record<string, string[]> = {};
    const details: string[] = [];
    (window as unknown as { steps: typeof seen; details: string[] }).steps = seen;
    (window as unknown as { details: string[] }).details = details;
    const look = () => {
      for (const item of document.querySelectorAll<HTMLElement>('li[data-step]')) {
        const list = (seen[item.dataset.step!] ??= []);
        if (list[list.length - 1] !== item.dataset.state) list.push(item.dataset.state!);
        const detail = item.querySelector('.detail')?.textContent;
        if (detail && details[details.length - 1] !== detail) details.push(detail);
      }
    };
    new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true, characterData: true });
  });
}

describe('flash wizard (Chromium, simulated ESP8266)', () => {
  let service: Awaited<ReturnType<typeof startManager>>;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let folder: string;
  let mirror: http.Server;
  const boards: SimulatedEsp8266[] = [];
  const links = { plain: '', dio: '' };

  beforeAll(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), 'cm-wizard-'));
    links.plain = path.join(folder, 'ttyUSB0');
    links.dio = path.join(folder, 'ttyUSB1');
    // The built-in firmware comes from a local mirror: a synthetic image carrying MicroPython's banner.
    const image = makeEsp8266Image({ size: 160 * 1024, seed: 9 });
    image.write('MicroPython v1.27.0 on 2025-12-09; ESP module with ESP8266\0', 100 * 1024, 'latin1');
    mirror = http.createServer((request, response) => {
      if (request.url === `/firmware/${OFFICIAL_FILE}`) response.end(image);
      else response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => mirror.listen(0, '127.0.0.1', resolve));
    process.env.CLOUDMANAGER_FIRMWARE_MIRROR = `http://127.0.0.1:${(mirror.address() as AddressInfo).port}/firmware/`;
    service = await startManager({ heartbeatS: 1, extraSerialPorts: [links.plain, links.dio], serialPortPollMs: 250 });
    browser = await launchBrowser();
    ({ context, page } = await signedInPage(browser, service.manager.signinUrl().url));
  });
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') await keepFailure(page, context.task.name);
  });
  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await Promise.all(boards.map((board) => board.close()));
    await service?.close();
    mirror?.close();
    delete process.env.CLOUDMANAGER_FIRMWARE_MIRROR;
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  async function plugIn(link: string, name: string, options: { needsMode?: 'dio'; bootMode?: 'download' | 'flash' } = {}): Promise<SimulatedEsp8266> {
    const board = new SimulatedEsp8266({ folder: path.join(folder, name), link, ...(options.needsMode ? { needsMode: options.needsMode } : {}) });
    boards.push(board);
    await board.powerOn(options.bootMode ?? 'download');
    return board;
  }

  async function throughTheSteps(port: string, name: string): Promise<void> {
    await page.goto(`${service.manager.apiUrl}/#/flash`);
    await page.getByText(port).click();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('MicroPython 1.27 for ESP8266').waitFor();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Wifi name (SSID)').fill(LAB_WIFI.ssid);
    await page.getByLabel('Wifi password').fill(LAB_WIFI.password);
    await page.getByLabel('Board name').fill(name);
    // The service listens on this computer only: the wizard says so (the simulated board is local).
    await page.getByText('accepts boards from this computer only').waitFor();
    await page.getByText(`127.0.0.1:${service.redisPort}`).waitFor();
    await recordSteps(page);
    await page.getByRole('button', { name: 'Flash', exact: true }).click();
  }

  it('lists a board as it is plugged in, flashes it, shows each phase, and opens its page once online', { timeout: 120_000 }, async () => {
    await page.goto(`${service.manager.apiUrl}/#/flash`);
    await page.getByText('Waiting for a board to be plugged in').waitFor();
    // Plugged in as it comes (running from its flash), on an adapter without reset lines.
    const board = await plugIn(links.plain, 'kitchen', { bootMode: 'flash' });
    await page.getByText(links.plain).waitFor();
    await throughTheSteps(links.plain, 'kitchen');
    // The bootloader does not answer: the wizard shows the BOOT/RESET step; the user does it.
    await page.getByRole('alert').getByText('Put the board in download mode').waitFor({ timeout: 60_000 });
    await board.rom.pressBootAndReset();
    // Flashed by hand: the wizard asks for one plain RESET; the user presses it.
    await page.getByRole('alert').getByText('Press RESET once').waitFor({ timeout: 60_000 });
    await board.rom.pressReset();
    await page.waitForURL(/#\/board\/kitchen\/code/, { timeout: 90_000 });
    await page.getByRole('heading', { name: 'kitchen' }).waitFor();
    const steps = await page.evaluate(() => (window as unknown as { steps: Record<string, string[]> }).steps);
    expect(Object.keys(steps).sort()).toEqual(['connect', 'download', 'online', 'setup', 'start', 'verify', 'write']);
    for (const [step, states] of Object.entries(steps)) expect(states[states.length - 1], step).toBe('done');
    // The job went through every phase, in order (the page shows the latest few times a second).
    const job = (await service.api.call('jobs.list', {})).find((item) => item.kind === 'flash')!;
    const parts = [...new Set(job.phases.map((item) => item.phase.split('.')[0]))];
    expect(parts).toEqual(['download', 'flash', 'provision']);
    const flashPhases = [...new Set(job.phases.filter((item) => item.phase.startsWith('flash.')).map((item) => item.phase))];
    expect(flashPhases).toEqual([
      'flash.check-image',
      'flash.connect',
      'flash.bootloader',
      'flash.detect',
      'flash.write',
      'flash.verify',
      'flash.reset',
      'flash.boot-check',
      'flash.press-reset',
      'flash.done',
    ]);
    expect(job.phases.map((item) => item.phase)).toContain('provision.online');
    const details = await page.evaluate(() => (window as unknown as { details: string[] }).details);
    expect(details.some((detail) => /^\d+ %/.test(detail))).toBe(true);
    expect((await service.api.call('boards.get', { board: 'kitchen' })).online).toBe(true);
    // The downloaded firmware is in the catalogue, its sha256 recorded.
    expect((await service.api.call('firmware.builtins', {}))[0]?.downloaded).toBeTruthy();
    expect(pageErrors(page)).toEqual([]);
  });

  it('a board that only boots in dio is flashed again automatically', { timeout: 120_000 }, async () => {
    const board = await plugIn(links.dio, 'garage', { needsMode: 'dio' });
    await throughTheSteps(links.dio, 'garage');
    // The first image crashes; its exception reset lands in the bootloader (the boot mode
    // is still latched at "download"), so the re-flash needs no button.
    await page.getByText("did not start with the image's flash mode").waitFor({ timeout: 60_000 });
    await page.getByRole('alert').getByText('Press RESET once').waitFor({ timeout: 60_000 });
    await board.rom.pressReset();
    await page.waitForURL(/#\/board\/garage\/code/, { timeout: 90_000 });
    expect((await service.api.call('boards.get', { board: 'garage' })).online).toBe(true);
  });

  it('a text file chosen as firmware is refused, with nothing written', async () => {
    const catalogue = path.join(service.dataDir, 'firmware');
    const before = (await readdir(catalogue)).sort();
    const notes = path.join(folder, 'notes.bin');
    await writeFile(notes, 'These are my notes, not a firmware image.\n'.repeat(20));
    await page.goto(`${service.manager.apiUrl}/#/flash`);
    // The wizard shows the last flash's outcome until started over: whatever the test
    // before left there, this one starts from the port list.
    const startOver = page.getByRole('button', { name: 'Start over' });
    await page.getByText(links.plain).or(startOver).first().waitFor();
    if (await startOver.isVisible()) await startOver.click();
    await page.getByText(links.plain).click();
    await page.getByRole('button', { name: 'Next' }).click();
    await page.locator('input[type=file]').setInputFiles(notes);
    await page.getByRole('alert').getByText('notes.bin cannot be used').waitFor();
    expect((await readdir(catalogue)).sort()).toEqual(before);
  });
});

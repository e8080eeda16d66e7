/**
 * The USB console page in Chromium: a serial terminal to a board's REPL through the
 * service (WebSocket), owning the port while open (a flash is refused), and only for
 * ports the service lists.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startManager } from '../helpers/lab.js';
import { keepFailure, launchBrowser, pageErrors, signedInPage } from '../helpers/browser.js';
import { PtyLink } from '../lab/pty-link.js';
import { MicroPythonReplSimulator } from '../lab/micropython-repl/micropython-repl-simulator.js';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';

describe('USB console (Chromium, MicroPython REPL on a pty)', () => {
  let service: Awaited<ReturnType<typeof startManager>>;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let folder: string;
  let link: PtyLink;
  let repl: MicroPythonReplSimulator;
  let board: MicroPythonBoard;
  let device: string;

  beforeAll(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), 'cm-e2e-console-'));
    device = path.join(folder, 'ttyUSB0');
    await mkdir(path.join(folder, 'flash'));
    board = new MicroPythonBoard({ folder: path.join(folder, 'flash') });
    link = await PtyLink.open({ link: device, baud: 115_200 });
    repl = new MicroPythonReplSimulator({ link, board });
    await repl.start();
    service = await startManager({ extraSerialPorts: [device] });
    browser = await launchBrowser();
    ({ context, page } = await signedInPage(browser, service.manager.signinUrl().url));
  });
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') await keepFailure(page, context.task.name);
  });
  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await service?.close();
    repl?.close();
    await link?.close();
    await board?.powerOff();
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  it("types into the board's REPL and shows its answers; a flash waits while it is open", async () => {
    await page.goto(`${service.manager.apiUrl}/#/usb/${encodeURIComponent(device)}`);
    await page.getByText('connected', { exact: true }).waitFor();
    await page.locator('.xterm').click();
    await page.keyboard.type('print(6 * 7)\r');
    await page.locator('.xterm-rows').getByText('42', { exact: true }).waitFor();
    const flash = service.api.call('usb.flash', { port: device, imageBase64: makeEsp8266Image({ size: 64 * 1024 }).toString('base64') });
    await expect(flash).rejects.toThrow(/USB console of .* is open/);
    await page.getByRole('button', { name: 'Close console' }).click();
    await page.getByText('you closed the console').waitFor();
    expect(pageErrors(page)).toEqual([]);
  });

  it('refuses a port the service does not list', async () => {
    await page.goto(`${service.manager.apiUrl}/#/usb/${encodeURIComponent('/dev/null')}`);
    await page.getByRole('alert').getByText('there is no serial port /dev/null').waitFor();
  });
});

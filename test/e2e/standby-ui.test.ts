/**
 * The UI of a standby manager in Chromium: two managers on one real redis-server, the user
 * signed in to the one standing by. Both run on this computer, so the banner speaks of
 * "another Cloudmanager service on this computer" (the wording for another computer, which
 * names it, is unit-tested in test/renderer/manager-role.test.ts). The fleet loads without an
 * error, code runs on a board from here, and the flash page and USB console say up front
 * that USB works through the service running the fleet. When the active manager stops and
 * this one takes over, the page follows.
 */
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startManager, waitFor } from '../helpers/lab.js';
import { startPlainRedis, type PlainRedis } from '../helpers/plain-redis.js';
import { keepFailure, launchBrowser, pageErrors, signedInPage } from '../helpers/browser.js';
import { startVirtualFleet, type VirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';

type Service = Awaited<ReturnType<typeof startManager>>;

describe("a standby manager's UI (Chromium, two managers on one Redis)", () => {
  let redis: PlainRedis;
  let active: Service;
  let standby: Service;
  let activeClosed = false;
  let fleet: VirtualFleet;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const banner = () => page.locator('.banners [role="status"]');

  beforeAll(async () => {
    redis = await startPlainRedis();
    active = await startManager({ redisUrl: redis.url(), redisPort: undefined, leaseTtlMs: 3_000 });
    standby = await startManager({ redisUrl: redis.url(), redisPort: undefined, leaseTtlMs: 3_000 });
    expect((await standby.api.call('status', {})).manager.role).toBe('standby');
    fleet = await startVirtualFleet({ api: standby.api, count: 3, prefix: 'ui', board: { reconnectMinMs: 100 } });
    await waitFor(async () => (await standby.api.call('status', {})).boards.online === 3, 30_000, 'boards online, as the standby sees them');
    browser = await launchBrowser();
    ({ context, page } = await signedInPage(browser, standby.manager.signinUrl().url));
  }, 60_000);
  afterEach(async (test) => {
    if (test.task.result?.state === 'fail') await keepFailure(page, test.task.name);
  });
  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await fleet?.close();
    await standby?.close();
    if (!activeClosed) await active?.close();
    redis?.kill();
  });

  it('shows the boards and a banner saying another service on this computer runs the fleet, without an error', async () => {
    // Load the page afresh, waiting for every answer its first load asks for: a failure to load would show by then.
    const answers = ['boards.list', 'jobs.list', 'usb.ports', 'status'].map((route) =>
      page.waitForResponse((response) => response.url().endsWith(`/api/${route}`)),
    );
    await page.reload();
    const [, , usbPorts] = await Promise.all(answers);
    expect(usbPorts!.status()).toBe(503);
    for (const name of ['ui-1', 'ui-2', 'ui-3']) await page.locator(`[data-board="${name}"]`).getByText('online').waitFor();
    await banner().getByText('This service stands by').waitFor();
    expect(await banner().textContent()).toMatch(
      /This service stands by: another Cloudmanager service on this computer \(process \d+\) runs the fleet \(since /,
    );
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(resolve)));
    // No error toast. A board news toast ("3 boards went offline") is not one: on a loaded
    // machine the lab boards' heartbeats come late and the fleet says so, standby or not.
    const toasts = await page.locator('.toast').allTextContents();
    expect(toasts.filter((toast) => !/boards? went (offline|online)/.test(toast))).toEqual([]);
    expect(pageErrors(page)).toEqual([]);
  });

  it('runs code on a board from here and shows its output; the board console works too', async () => {
    await page.goto(`${standby.manager.apiUrl}/#/board/ui-2/code`);
    await page.locator('.cm-content').waitFor();
    await page.locator('.cm-content').click();
    await page.keyboard.press('Control+a');
    await page.keyboard.press('Delete');
    await page.keyboard.insertText('print("from the standby", 6 * 7)\n');
    await page.keyboard.press('Control+Enter');
    await page.getByRole('status').getByText('Finished').waitFor({ timeout: 20_000 });
    expect(await page.locator('section.output pre').textContent()).toBe('from the standby 42\n');
    expect(await page.locator('.toast.error').count()).toBe(0);

    // The board's console keeps a variable between two lines, as on the active computer.
    await page.goto(`${standby.manager.apiUrl}/#/board/ui-3/console`);
    await page.locator('.xterm-helper-textarea').waitFor();
    await page.locator('.xterm').click();
    await page.keyboard.type('answer = 6 * 7\r');
    await page.locator('.xterm-rows').getByText('>>> ', { exact: false }).nth(1).waitFor();
    await page.keyboard.type('print("the answer is", answer)\r');
    await page.locator('.xterm-rows').getByText('the answer is 42').waitFor();
  });

  it('a file dropped on a board from the standby lands on it, the same bytes (the file goes along to the active manager)', async () => {
    const data = Buffer.from(Array.from({ length: 50 * 1024 }, (_, index) => (index * 13) % 256));
    await page.goto(`${standby.manager.apiUrl}/#/`);
    const card = page.locator('[data-board="ui-1"]');
    await card.waitFor();
    const transfer = await page.evaluateHandle((base64) => {
      const dataTransfer = new DataTransfer();
      dataTransfer.items.add(new File([Uint8Array.from(atob(base64), (char) => char.charCodeAt(0))], 'card.bin'));
      return dataTransfer;
    }, data.toString('base64'));
    for (const type of ['dragenter', 'dragover', 'drop']) await card.dispatchEvent(type, { dataTransfer: transfer });
    await card.getByText('✓ uploaded').waitFor({ timeout: 20_000 });
    const onBoard = await fleet.byName('ui-1')!.fs.readFile('/card.bin');
    expect(createHash('sha256').update(onBoard).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
    expect(await page.locator('.toast.error').count()).toBe(0);
  });

  it('the flash page says flashing works through the service running the fleet, with no port list or steps', async () => {
    await page.goto(`${standby.manager.apiUrl}/#/flash`);
    const notice = page.getByTestId('usb-elsewhere');
    await notice.waitFor();
    await notice.getByRole('heading', { name: 'Flashing works through the other Cloudmanager service' }).waitFor();
    expect(await notice.textContent()).toContain("flash it from that service's window or its mbm");
    expect(await page.getByRole('radiogroup', { name: 'Serial ports' }).count()).toBe(0);
    expect(await page.getByText('Waiting for a board to be plugged in').count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Next' }).count()).toBe(0);
    await notice.getByRole('link', { name: 'Back to the fleet' }).click();
    await page.locator('[data-board="ui-1"]').waitFor();
  });

  it('the USB console says the same, with no terminal', async () => {
    await page.goto(`${standby.manager.apiUrl}/#/usb/${encodeURIComponent('/dev/ttyUSB0')}`);
    await page.locator('.usb-console [role="status"]').getByRole('heading', { name: 'The USB console works through the other Cloudmanager service' }).waitFor();
    expect(await page.locator('.xterm').count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Reconnect' }).count()).toBe(0);
  });

  it('when the active manager stops, this one takes over: the banner goes, the flash page offers the ports, the boards are online', async () => {
    await page.goto(`${standby.manager.apiUrl}/#/flash`);
    await page.getByTestId('usb-elsewhere').waitFor();
    await active.close();
    activeClosed = true;
    await page.getByText('Waiting for a board to be plugged in').waitFor({ timeout: 30_000 });
    expect(await banner().count()).toBe(0);
    expect(await page.getByTestId('usb-elsewhere').count()).toBe(0);
    expect((await standby.api.call('status', {})).manager.role).toBe('active');
    // The boards carry on with this manager, and the page shows them online again by itself.
    await page.goto(`${standby.manager.apiUrl}/#/`);
    for (const name of ['ui-1', 'ui-2', 'ui-3']) await page.locator(`[data-board="${name}"]`).getByText('online', { exact: true }).waitFor({ timeout: 30_000 });
    expect(pageErrors(page)).toEqual([]);
  }, 60_000);
});

/**
 * The fleet view and the board page in a real browser (the OS's Chromium) against the real
 * service, its own redis-server and virtual boards: what a user sees and does.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';
import { keepFailure, launchBrowser, pageErrors, signedInPage } from '../helpers/browser.js';
import { startVirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Drops `files` (name → bytes) on the element matched by `selector`, as a real DataTransfer. */
async function dropFiles(page: Page, selector: string, files: Record<string, Buffer>): Promise<void> {
  const payload = Object.entries(files).map(([name, data]) => ({ name, base64: data.toString('base64') }));
  const transfer = await page.evaluateHandle((items) => {
    const dataTransfer = new DataTransfer();
    for (const item of items) {
      const bytes = Uint8Array.from(atob(item.base64), (char) => char.charCodeAt(0));
      dataTransfer.items.add(new File([bytes], item.name));
    }
    return dataTransfer;
  }, payload);
  const target = page.locator(selector).first();
  await target.dispatchEvent('dragenter', { dataTransfer: transfer });
  await target.dispatchEvent('dragover', { dataTransfer: transfer });
  await target.dispatchEvent('drop', { dataTransfer: transfer });
}

describe('fleet view and board page (Chromium)', () => {
  let lab: Lab;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let folder: string;

  beforeAll(async () => {
    lab = await startLab({ boards: 4, prefix: 'ui', heartbeatS: 1 });
    await lab.api.call('boards.tag', { boards: 'ui-[1-2]', add: ['garden'] });
    browser = await launchBrowser();
    ({ context, page } = await signedInPage(browser, lab.manager.signinUrl().url));
    if (process.env.CM_TEST_DEBUG) page.on('console', (message) => console.log('PAGE', message.text()));
    if (process.env.CM_TEST_DEBUG) page.on('response', (r) => r.url().includes('/api/') && console.log('RESP', r.status(), r.url()));
    folder = await mkdtemp(path.join(os.tmpdir(), 'cm-e2e-'));
  });
  afterEach(async (context) => {
    if (context.task.result?.state === 'fail') await keepFailure(page, context.task.name);
  });
  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await lab?.close();
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  // How soon a board turns offline (two heartbeats) is not asserted here: on a busy machine
  // any limit fails. The page must get there by itself.
  it('shows boards live, and turns stopped boards offline', async () => {
    await page.locator('[data-board="ui-4"]').waitFor();
    // Boards started after the page opened appear by themselves.
    const more = await startVirtualFleet({ api: lab.api, count: 2, prefix: 'late', board: { reconnectMinMs: 100 } });
    await page.locator('[data-board="late-2"]').getByText('online').waitFor();
    await more.close();
    await page.locator('[data-board="late-1"]').getByText('offline', { exact: true }).waitFor({ timeout: 20_000 });
    await page.locator('[data-board="late-2"]').getByText('offline', { exact: true }).waitFor({ timeout: 20_000 });
    expect(pageErrors(page)).toEqual([]);
  });

  it('filters by tag and by search', async () => {
    await page.goto(`${lab.manager.apiUrl}/#/`);
    await page.getByLabel('Tag').selectOption('garden');
    await expect.poll(() => page.locator('[data-board]').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-board')))).toEqual(['ui-1', 'ui-2']);
    await page.getByLabel('Tag').selectOption('');
    await page.getByLabel('Search boards').fill('ui-3');
    await expect.poll(() => page.locator('[data-board]').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-board')))).toEqual(['ui-3']);
    await page.getByLabel('Search boards').fill('');
  });

  // Line by line, asserted by what the page showed rather than by how far apart the lines
  // came (a loaded machine may compress the gaps): each line appeared on its own, in order,
  // and the first while the program was still running.
  it('Run streams the output line by line while the code runs', async () => {
    await page.goto(`${lab.manager.apiUrl}/#/board/ui-1/code`);
    await page.locator('.cm-content').waitFor();
    await page.locator('.cm-content').click();
    await page.keyboard.press('Control+a');
    await page.keyboard.press('Delete');
    await page.keyboard.insertText('import time\nfor i in range(3): print(i); time.sleep(0.8)\n');
    // Record each state of the output the page shows, and the run's status at that moment.
    await page.evaluate(() => {
      const arrivals: Array<{ text: string; status: string }> = [];
      (window as unknown as { arrivals: typeof arrivals }).arrivals = arrivals;
      const output = document.querySelector('section.output')!;
      new MutationObserver(() =>
        arrivals.push({
          text: output.querySelector('pre')?.textContent ?? '',
          status: document.querySelector('span.status[role="status"]')?.textContent ?? '',
        }),
      ).observe(output, { childList: true, subtree: true, characterData: true });
    });
    await page.keyboard.press('Control+Enter');
    await page.getByRole('status').getByText('Finished').waitFor();
    const arrivals = await page.evaluate(() => (window as unknown as { arrivals: Array<{ text: string; status: string }> }).arrivals);
    // States that end a line (a print may reach the page as the text, then its newline).
    const shown = arrivals.map((arrival) => arrival.text).filter((text, index, all) => text.endsWith('\n') && text !== all[index - 1]);
    expect(shown).toEqual(['0\n', '0\n1\n', '0\n1\n2\n']);
    expect(arrivals.find((arrival) => arrival.text === '0\n')?.status).not.toContain('Finished');
  });

  it('Stop ends a running program', async () => {
    await page.goto(`${lab.manager.apiUrl}/#/board/ui-4/code`);
    await page.locator('.cm-content').waitFor();
    await page.locator('.cm-content').click();
    await page.keyboard.press('Control+a');
    await page.keyboard.press('Delete');
    await page.keyboard.insertText('import time\nwhile True:\n    print("working")\n    time.sleep(0.1)\n');
    await page.getByRole('button', { name: '▶ Run' }).click();
    await page.locator('section.output').getByText('working', { exact: false }).first().waitFor();
    await page.getByRole('button', { name: '■ Stop' }).click();
    await page.getByRole('status').getByText('Stopped', { exact: true }).waitFor({ timeout: 15_000 });
    await page.getByRole('button', { name: '▶ Run' }).waitFor();
  });

  it('the Console tab keeps a variable between two lines', async () => {
    await page.goto(`${lab.manager.apiUrl}/#/board/ui-2/console`);
    await page.locator('.xterm-helper-textarea').waitFor();
    await page.locator('.xterm').click();
    await page.keyboard.type('answer = 6 * 7\r');
    if (process.env.CM_TEST_DEBUG) {
      await page.waitForTimeout(3000);
      console.log('ROWS', await page.locator('.xterm-rows').textContent());
      console.log('HIST', JSON.stringify(await lab.api.call('boards.history', { board: 'ui-2' })));
      console.log('BOARD', JSON.stringify(await lab.api.call('boards.get', { board: 'ui-2' })));
    }
    await page.locator('.xterm-rows').getByText('>>> ', { exact: false }).nth(1).waitFor();
    await page.keyboard.type('print("the answer is", answer)\r');
    await page.locator('.xterm-rows').getByText('the answer is 42').waitFor();
    await page.keyboard.type('answer + 1\r');
    await page.locator('.xterm-rows').getByText('43', { exact: true }).waitFor();
  });

  it('the Telemetry chart draws points after a few heartbeats', async () => {
    await page.goto(`${lab.manager.apiUrl}/#/board/ui-3/telemetry`);
    await page.locator('.u-over').waitFor();
    await expect.poll(() => page.getByTestId('live-samples').textContent(), { timeout: 15_000 }).toMatch(/^[3-9]|\d\d/);
    // uPlot draws each point of the memory series: the canvas is not blank.
    const painted = await page.locator('.chart canvas').evaluate((canvas: HTMLCanvasElement) => {
      const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let coloured = 0;
      for (let index = 0; index < pixels.length; index += 4) if (pixels[index + 3]! > 0) coloured++;
      return coloured;
    });
    expect(painted).toBeGreaterThan(0);
  });

  it('a 100 KB file dropped on the Files tab lands with an equal sha256', async () => {
    const data = Buffer.from(Array.from({ length: 100 * 1024 }, (_, index) => (index * 7919) % 251));
    await page.goto(`${lab.manager.apiUrl}/#/board/ui-1/files`);
    await page.getByText('(root)').waitFor();
    await dropFiles(page, '.files', { 'blob.bin': data });
    await page.locator('[data-path="/blob.bin"]').waitFor({ timeout: 20_000 });
    await page.getByText('1 file written, sha256 checked').first().waitFor();
    const onBoard = await lab.fleet.byName('ui-1')!.fs.readFile('/blob.bin');
    expect(sha256(onBoard)).toBe(sha256(data));
  });

  it('a file dropped on a board card goes to that board; on a selected card, to every selected board', async () => {
    const data = Buffer.from(Array.from({ length: 100 * 1024 }, (_, index) => (index * 31) % 256));
    await page.goto(`${lab.manager.apiUrl}/#/`);
    await page.locator('[data-board="ui-4"]').waitFor();
    await dropFiles(page, '[data-board="ui-4"]', { 'card.bin': data });
    await page.locator('[data-board="ui-4"]').getByText('✓ uploaded').waitFor({ timeout: 20_000 });
    expect(sha256(await lab.fleet.byName('ui-4')!.fs.readFile('/card.bin'))).toBe(sha256(data));

    await page.locator('[data-board="ui-2"] input[type=checkbox]').check();
    await page.locator('[data-board="ui-3"] input[type=checkbox]').check();
    await dropFiles(page, '[data-board="ui-3"]', { 'both.bin': data });
    for (const name of ['ui-2', 'ui-3']) await page.locator(`[data-board="${name}"]`).getByText('✓ uploaded').waitFor({ timeout: 20_000 });
    for (const name of ['ui-2', 'ui-3']) expect(sha256(await lab.fleet.byName(name)!.fs.readFile('/both.bin'))).toBe(sha256(data));
    await expect(lab.fleet.byName('ui-1')!.fs.readFile('/both.bin')).rejects.toThrow();
    await page.getByRole('button', { name: 'Clear selection' }).click();
  });

  it('a dropped folder keeps its structure', async () => {
    const tree = path.join(folder, 'project');
    await mkdir(path.join(tree, 'lib', 'drivers'), { recursive: true });
    await writeFile(path.join(tree, 'main.py'), 'print("main")\n');
    await writeFile(path.join(tree, 'lib', 'util.py'), 'X = 1\n');
    await writeFile(path.join(tree, 'lib', 'drivers', 'bme280.py'), 'Y = 2\n');
    await page.goto(`${lab.manager.apiUrl}/#/board/ui-2/files`);
    await page.getByText('(root)').waitFor();
    // A real drop of a real folder, as the OS delivers it (Chromium's drag input).
    const box = (await page.locator('.tree').boundingBox())!;
    const cdp = await context.newCDPSession(page);
    const x = box.x + box.width / 2;
    const y = box.y + box.height / 2;
    const data = { items: [], files: [tree], dragOperationsMask: 1 };
    for (const type of ['dragEnter', 'dragOver', 'drop'] as const) await cdp.send('Input.dispatchDragEvent', { type, x, y, data });
    await page.locator('[data-path="/project"]').waitFor({ timeout: 20_000 });
    const board = lab.fleet.byName('ui-2')!;
    await waitFor(
      async () =>
        board.fs.readFile('/project/lib/drivers/bme280.py').then(
          () => true,
          () => false,
        ),
      20_000,
      'the dropped folder on the board',
    );
    expect((await board.fs.readFile('/project/main.py')).toString()).toBe('print("main")\n');
    expect((await board.fs.readFile('/project/lib/util.py')).toString()).toBe('X = 1\n');
    expect((await board.fs.readFile('/project/lib/drivers/bme280.py')).toString()).toBe('Y = 2\n');
  });

  it('a bulk reboot of a tag shows per-board results; a reload mid-job shows it still running, then done', async () => {
    // ui-1 is switched off first: its reboot waits for it, so the job is still running when the page reloads.
    const sleeper = lab.fleet.byName('ui-1')!;
    await sleeper.stop();
    await waitFor(async () => !(await lab.api.call('boards.get', { board: 'ui-1' })).online, 10_000, 'ui-1 offline');
    await page.goto(`${lab.manager.apiUrl}/#/`);
    await page.getByLabel('Tag').selectOption('garden');
    await page.getByLabel(/Select all \d+ boards shown/).check();
    await page.getByRole('button', { name: 'Reboot' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Reboot' }).click();
    await page.waitForURL(/#\/jobs\/j/);
    await page.locator('tr[data-board="ui-2"]').getByText('ok', { exact: true }).waitFor({ timeout: 20_000 });
    await page.reload();
    await page.getByRole('heading', { name: 'Reboot 2 boards' }).waitFor();
    await page.locator('tr[data-board="ui-1"]').getByText('waiting (offline)').waitFor();
    await page.locator('li a.current').getByText('running').waitFor();
    sleeper.start();
    await page.locator('tr[data-board="ui-1"]').getByText('ok', { exact: true }).waitFor({ timeout: 20_000 });
    await page.locator('li a.current').getByText('done').waitFor();
    await waitFor(
      async () => (await lab.api.call('boards.list', {})).filter((board) => board.tags.includes('garden') && board.online).length === 2,
      20_000,
      'garden boards online again',
    );
    expect(pageErrors(page)).toEqual([]);
  });

  it('a revoked board shows it on its row and its page; Enable brings it back online; Revoke asks first', async () => {
    await lab.api.call('boards.revoke', { board: 'ui-3' });
    await page.goto(`${lab.manager.apiUrl}/#/`);
    const row = page.locator('[data-board="ui-3"]');
    await row.locator('.pill', { hasText: 'revoked' }).waitFor();
    expect(await row.locator('.pill', { hasText: 'revoked' }).getAttribute('title')).toMatch(/^Revoked .*: it cannot log in\. Open the board to enable it\.$/);
    await row.getByRole('link', { name: 'ui-3' }).click();
    const notice = page.getByRole('alert').filter({ hasText: 'ui-3 was revoked' });
    await notice.waitFor();
    // A revoked board has nothing to revoke: only Enable.
    expect(await page.getByRole('button', { name: 'Revoke' }).count()).toBe(0);
    await notice.getByRole('button', { name: 'Enable' }).click();
    await notice.waitFor({ state: 'detached' });
    await page.locator('.head').getByText('online', { exact: true }).waitFor({ timeout: 30_000 });
    await page.goto(`${lab.manager.apiUrl}/#/`);
    await row.getByText('online', { exact: true }).waitFor();
    expect(await row.locator('.pill', { hasText: 'revoked' }).count()).toBe(0);

    // Revoke from the board page: a confirm first, then the notice with Enable.
    await page.goto(`${lab.manager.apiUrl}/#/board/ui-3/code`);
    await page.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke ui-3' }).click();
    await page.getByRole('alert').filter({ hasText: 'ui-3 was revoked' }).getByRole('button', { name: 'Enable' }).click();
    await page.locator('.head').getByText('online', { exact: true }).waitFor({ timeout: 30_000 });
    expect((await lab.api.call('boards.get', { board: 'ui-3' })).disabled).toBeNull();
    expect(pageErrors(page)).toEqual([]);
  });

  it('a board suspended for going over its budget: the banner comes with the alarm, not with the next status poll', async () => {
    const credentials = await lab.api.call('boards.enroll', { name: 'greedy' });
    await page.goto(`${lab.manager.apiUrl}/#/`);
    await page.locator('[data-board="greedy"]').waitFor();
    const statusCalls: number[] = [];
    page.on('request', (request) => {
      if (request.url().endsWith('/api/status')) statusCalls.push(Date.now());
    });
    const connection = await RespConnection.connect({ host: '127.0.0.1', port: lab.redisPort });
    try {
      await connection.call('AUTH', credentials.user, credentials.password);
      // Over its state budget (16 KiB): suspended within a fraction of a second.
      await connection.call('HSET', boardKeys(credentials.id).state, 'junk', 'x'.repeat(20_000));
    } finally {
      connection.destroy();
    }
    const banner = page.getByRole('alert').filter({ hasText: 'greedy was suspended for going over its budget' });
    await banner.waitFor();
    // Shown from the pushed alarm: the page did not ask for the status meanwhile.
    expect(statusCalls).toEqual([]);
    const badge = page.locator('[data-board="greedy"] .pill', { hasText: 'suspended' });
    expect(await badge.getAttribute('title')).toMatch(/stored \d+ KiB in 1 field of its status record/);
    await banner.getByRole('link').click();
    await page.waitForURL(/#\/board\/greedy\/code$/);
    await page.getByRole('alert').filter({ hasText: 'greedy was suspended' }).getByRole('button', { name: 'Enable' }).click();
    await banner.waitFor({ state: 'detached' });
    await lab.api.call('boards.remove', { board: 'greedy' });
    expect(pageErrors(page)).toEqual([]);
  });
});

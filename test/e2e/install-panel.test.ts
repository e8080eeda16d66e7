/**
 * The Install panel in a real browser (the OS's Chromium) against the real service, its own
 * redis-server, virtual boards and a package index served on 127.0.0.1 (never the internet):
 * install from the board page and from the fleet's bulk actions, what the form refuses, a
 * missing dependency, uninstall.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';
import { keepFailure, launchBrowser, pageErrors, signedInPage } from '../helpers/browser.js';
import { startPackageIndexLab, type PackageIndexLab } from '../helpers/package-index-lab.js';

const GREET = 'from colors import RED\n\ndef hello(name):\n    return RED + "hello " + name\n';
const COLORS = 'RED = "\\x1b[31m"\n';

/** A package file on a virtual board: the source, or the .mpy compiled from it for a board that loads them. */
function readPackageFile(board: NonNullable<ReturnType<Lab['fleet']['byName']>>, stem: string): Promise<Buffer> {
  return board.fs.readFile(`${stem}.py`).catch(() => board.fs.readFile(`${stem}.mpy`));
}

describe('the Install panel (Chromium)', () => {
  let index: PackageIndexLab;
  let lab: Lab;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    index = await startPackageIndexLab([
      { name: 'colors', version: '1.0', files: { 'colors.py': COLORS } },
      { name: 'greet', version: '1.0', files: { 'greet.py': GREET }, deps: [['colors', 'latest']] },
      { name: 'broken', version: '0.1', files: { 'broken.py': 'X = 1\n' }, deps: [['not-published', '1.0']] },
    ]);
    // pypiUrl '': the fallback for a name the index lacks is off, so nothing ever leaves the machine.
    lab = await startLab({ boards: 3, prefix: 'pk', heartbeatS: 1, manager: { packageIndexUrl: index.url, pypiUrl: '' } });
    browser = await launchBrowser();
    ({ context, page } = await signedInPage(browser, lab.manager.signinUrl().url));
  });
  afterEach(async (test) => {
    if (test.task.result?.state === 'fail') await keepFailure(page, test.task.name);
  });
  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await lab?.close();
    await index?.stop();
  });

  const installedRow = (name: string) => page.locator(`section[aria-label="Installed packages"] tr[data-package="${name}"]`);
  const packagesField = () => page.getByLabel(/^Packages/);
  const installJobs = async () => (await lab.api.call('jobs.list', {})).filter((job) => job.kind === 'install');

  it('the board page installs a package with its dependency, lists both, and uninstalls one after asking', async () => {
    await page.goto(`${lab.manager.apiUrl}/#/board/pk-1/packages`);
    await page.getByText('No packages installed through Cloudmanager yet').waitFor();

    // The form refuses what it can tell is wrong, before anything is sent.
    await packagesField().fill('greet 1.0');
    await page.getByRole('button', { name: 'Install', exact: true }).click();
    const refused = page.getByRole('alert').filter({ hasText: '“greet 1.0” has a space in it' });
    await refused.waitFor();
    expect(await refused.textContent()).toContain('write greet@1.0');
    expect(await installJobs()).toEqual([]);

    await packagesField().fill('greet@1.0');
    await page.getByRole('button', { name: 'Install', exact: true }).click();
    const progress = page.locator('section[aria-label="Package jobs"]');
    await progress.getByText(/2 uploaded, 0 skipped, [\d.]+ (B|KB) sent/).waitFor({ timeout: 30_000 });
    expect(await progress.locator('[role=progressbar]').first().getAttribute('aria-valuenow')).toBe('100');

    // Listed from the board's record once the job is done.
    await installedRow('greet').waitFor();
    await installedRow('colors').waitFor();
    expect(await installedRow('greet').locator('td').nth(1).textContent()).toBe('1.0');
    expect(await installedRow('greet').locator('td').nth(3).textContent()).toBe('/lib');
    const board = lab.fleet.byName('pk-1')!;
    expect((await readPackageFile(board, '/lib/greet')).length).toBeGreaterThan(0);

    // Uninstall: a confirmation first; the other package stays.
    await installedRow('greet').getByRole('button', { name: 'Uninstall' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Deletes the 1 file that greet 1.0 put in').waitFor();
    await dialog.getByRole('button', { name: 'Uninstall' }).click();
    await progress.getByText('removed 1 file').waitFor({ timeout: 30_000 });
    await installedRow('greet').waitFor({ state: 'detached' });
    await installedRow('colors').waitFor();
    await expect(readPackageFile(board, '/lib/greet')).rejects.toThrow();
    expect((await readPackageFile(board, '/lib/colors')).length).toBeGreaterThan(0);
    expect(pageErrors(page)).toEqual([]);
  });

  it('a missing dependency comes back in the form, what was typed is kept, and nothing reaches the board', async () => {
    await page.goto(`${lab.manager.apiUrl}/#/board/pk-2/packages`);
    await page.getByText('No packages installed through Cloudmanager yet').waitFor();
    await packagesField().fill('broken');
    await page.getByRole('button', { name: 'Install', exact: true }).click();
    const alert = page.getByRole('alert').filter({ hasText: 'Nothing was installed' });
    await alert.waitFor({ timeout: 30_000 });
    expect(await alert.textContent()).toContain('not-published');
    expect(await packagesField().inputValue()).toBe('broken');
    await expect(readPackageFile(lab.fleet.byName('pk-2')!, '/lib/broken')).rejects.toThrow();
    expect(pageErrors(page)).toEqual([]);
  });

  it('Install packages… on the fleet selection shows each board with a bar and its result', async () => {
    // pk-3 has the package already (installed through the API): the bulk install sends it nothing.
    const first = await lab.api.call('jobs.start', { kind: 'install', boards: 'pk-3', packages: ['greet@1.0'] });
    await waitFor(async () => (await lab.api.call('jobs.get', { id: first.id })).state === 'done', 30_000, 'the first install on pk-3');

    await page.goto(`${lab.manager.apiUrl}/#/`);
    for (const name of ['pk-2', 'pk-3']) await page.locator(`[data-board="${name}"] input[type=checkbox]`).check();
    await page.getByRole('button', { name: 'Install packages…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel(/^Packages/).fill('greet@1.0');
    // The index given in Advanced is checked before sending (and then used: the same lab here).
    await dialog.getByText('Advanced').click();
    await dialog.getByLabel('Package index').fill('micropython.org/pi/v2');
    await dialog.getByRole('button', { name: 'Install on 2 boards' }).click();
    await dialog.getByRole('alert').getByText('The index URL must be an http:// or https:// address').waitFor();
    await dialog.getByLabel('Package index').fill(index.url);
    await dialog.getByRole('button', { name: 'Install on 2 boards' }).click();

    await page.waitForURL(/#\/jobs\/j/);
    await page
      .locator('tr[data-board="pk-2"]')
      .getByText(/2 uploaded, 0 skipped/)
      .waitFor({ timeout: 30_000 });
    await page
      .locator('tr[data-board="pk-3"]')
      .getByText(/0 uploaded, 2 skipped, 0 (B|KB) sent/)
      .waitFor({ timeout: 30_000 });
    for (const name of ['pk-2', 'pk-3']) expect(await page.locator(`tr[data-board="${name}"] [role=progressbar]`).getAttribute('aria-valuenow')).toBe('100');
    expect(pageErrors(page)).toEqual([]);
  });
});

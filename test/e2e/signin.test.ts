/**
 * Signing in to the UI: a one-time link becomes an HttpOnly session cookie, works once, and
 * the cookie is useless to any page that is not the UI itself (another loopback origin).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { startManager } from '../helpers/lab.js';
import { launchBrowser, pageErrors, signedInPage } from '../helpers/browser.js';

describe('UI sign-in', () => {
  let service: Awaited<ReturnType<typeof startManager>>;
  let browser: Browser;

  beforeAll(async () => {
    service = await startManager();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await service?.close();
  });

  it('a sign-in link opens the UI once; a second use is refused; the cookie is out of reach of page scripts', async () => {
    const { url } = service.manager.signinUrl();
    expect(url.startsWith('http://127.0.0.1:')).toBe(true);
    const { context, page } = await signedInPage(browser, url);
    await page.getByRole('heading', { name: 'Welcome to Cloudmanager' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/');
    const cookies = await context.cookies();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
    expect(await page.evaluate(() => document.cookie)).toBe('');
    expect(pageErrors(page)).toEqual([]);

    const again = await browser.newContext();
    const second = await again.newPage();
    const response = await second.goto(url);
    expect(response?.status()).toBe(403);
    await second.getByText('This sign-in link was already used.').waitFor();
    // Without a session the API answers 401, and the page never gets a cookie.
    expect(await again.cookies()).toEqual([]);
    await again.close();
    await context.close();
  });

  it('a page from another loopback origin cannot use the session cookie against the API', async () => {
    const { context, page } = await signedInPage(browser, service.manager.signinUrl().url);
    await page.getByRole('heading', { name: 'Welcome to Cloudmanager' }).waitFor();
    const apiOrigin = new URL(service.manager.apiUrl).origin;
    // An unrelated site on the same host, another port: same-site for cookies, another origin.
    const evil = http.createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html' });
      response.end(`<!doctype html><script>
        window.attempts = (async () => {
          const results = {};
          try {
            const r = await fetch('${apiOrigin}/api/boards.enroll', { method: 'POST', credentials: 'include', mode: 'no-cors',
              headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ name: 'evil' }) });
            results.fetch = r.type;
          } catch (e) { results.fetch = 'error'; }
          results.ws = await new Promise((resolve) => {
            const ws = new WebSocket('${apiOrigin.replace('http', 'ws')}/api/events');
            ws.onmessage = (m) => resolve('message: ' + m.data);
            ws.onerror = () => resolve('refused');
          });
          return results;
        })();
      </script>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
    const statuses: number[] = [];
    const evilPage = await context.newPage();
    evilPage.on('response', (response) => {
      if (response.url().includes('/api/boards.enroll')) statuses.push(response.status());
    });
    await evilPage.goto(evilUrl);
    const attempts = await evilPage.evaluate(() => (window as unknown as { attempts: Promise<Record<string, string>> }).attempts);
    expect(attempts.ws).toBe('refused');
    expect(statuses).toEqual([403]);
    // Nothing happened: no board was enrolled.
    expect(await service.api.call('boards.list', {})).toEqual([]);
    evil.close();
    await context.close();
  });

  it('with no boards, "Try virtual boards" starts boards inside the service, and they can be stopped', async () => {
    const { context, page } = await signedInPage(browser, service.manager.signinUrl().url);
    await page.getByRole('heading', { name: 'Welcome to Cloudmanager' }).waitFor();
    await page.getByLabel('How many virtual boards').fill('2');
    await page.getByRole('button', { name: 'Start virtual boards' }).click();
    await page.locator('[data-board="virtual-2"]').getByText('online', { exact: true }).waitFor({ timeout: 20_000 });
    await page.getByText('2 virtual boards running inside the app').waitFor();
    await page.getByRole('button', { name: 'Stop them' }).click();
    await page.locator('[data-board="virtual-1"]').getByText('offline', { exact: true }).waitFor({ timeout: 20_000 });
    expect((await service.api.call('status', {})).virtualBoards).toBe(0);
    expect(pageErrors(page)).toEqual([]);
    await context.close();
  });
});

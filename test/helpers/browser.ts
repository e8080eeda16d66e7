/**
 * A real browser for UI tests: the OS's Chromium driven by playwright-core (never a
 * downloaded browser), headless, with the flags this machine needs (no sandbox as root,
 * no background networking to unreachable hosts).
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM_PATH);
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      '--disable-dev-shm-usage',
    ],
  });
}

/** A fresh context (own cookies) signed in to the UI through a one-time link. */
export async function signedInPage(
  browser: Browser,
  signinUrl: string,
  options: { colorScheme?: 'light' | 'dark'; viewport?: { width: number; height: number } } = {},
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ colorScheme: options.colorScheme ?? 'light', viewport: options.viewport ?? { width: 1280, height: 800 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  (page as Page & { errors?: string[] }).errors = errors;
  await page.goto(signinUrl);
  return { context, page };
}

/** Uncaught errors the page threw (a UI test fails on any). */
export function pageErrors(page: Page): string[] {
  return (page as Page & { errors?: string[] }).errors ?? [];
}

/**
 * After a failed test, keeps what the page showed (a screenshot and its text) in
 * .tmp/e2e-failures/, so a failure on a busy CI machine can be understood afterwards.
 */
export async function keepFailure(page: Page | undefined, testName: string): Promise<void> {
  if (!page || page.isClosed()) return;
  const folder = path.join(process.cwd(), '.tmp', 'e2e-failures');
  const base = path.join(folder, testName.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 80));
  try {
    await mkdir(folder, { recursive: true });
    await page.screenshot({ path: `${base}.png` });
    await writeFile(`${base}.txt`, `${page.url()}\n\n${await page.locator('body').innerText()}\n`);
  } catch {
    // Best effort: the page may be gone.
  }
}

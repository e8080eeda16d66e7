/** What the desktop window may load, open and be asked for (electron/app/window-policy.ts). */
import { describe, expect, it } from 'vitest';
import {
  isTrustedSender,
  isUiRoute,
  navigationDecision,
  serviceRouteUrl,
  signinPageUrl,
  windowOpenDecision,
  windowWebPreferences,
} from '../../electron/app/window-policy.js';

const origin = 'http://127.0.0.1:18267';

describe('window policy', () => {
  it('isolates the page: no Node, sandboxed, web security on, the preload given', () => {
    expect(windowWebPreferences('/app/preload.cjs')).toMatchObject({
      preload: '/app/preload.cjs',
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      webviewTag: false,
      allowRunningInsecureContent: false,
    });
  });

  it("navigates only within the service's origin; https elsewhere goes to the browser; the rest is refused", () => {
    expect(navigationDecision(`${origin}/#/jobs`, origin)).toBe('allow');
    expect(navigationDecision(`${origin}/signin?code=x`, origin)).toBe('allow');
    // Same host, other port: another service (or anything listening there) is another origin.
    expect(navigationDecision('http://127.0.0.1:18268/', origin)).toBe('deny');
    expect(navigationDecision('http://localhost:18267/', origin)).toBe('deny');
    expect(navigationDecision('https://micropython.org/download/', origin)).toBe('open-external');
    for (const url of ['http://example.com/', 'file:///etc/passwd', 'javascript:alert(1)', 'data:text/html,hi', 'smb://host/share', 'not a url']) {
      expect(navigationDecision(url, origin)).toBe('deny');
    }
    // Before the service runs there is no origin: nothing loads.
    expect(navigationDecision(`${origin}/`, null)).toBe('deny');
  });

  it('never opens a new app window', () => {
    expect(windowOpenDecision(`${origin}/#/flash`)).toBe('deny');
    expect(windowOpenDecision('https://docs.micropython.org/')).toBe('open-external');
    expect(windowOpenDecision('http://example.com/')).toBe('deny');
  });

  it('takes only UI hash routes, so a notice cannot point the window elsewhere', () => {
    expect(isUiRoute('#/jobs/abc-1')).toBe(true);
    expect(isUiRoute('#/board/kitchen/files')).toBe(true);
    for (const route of ['//evil.example', 'https://x', '#/a b', '#/\n', 'jobs', '', undefined]) expect(isUiRoute(route)).toBe(false);
    expect(serviceRouteUrl(origin, '#/flash')).toBe(`${origin}/#/flash`);
    expect(serviceRouteUrl(origin, '//evil.example')).toBe(`${origin}/`);
    expect(signinPageUrl(`${origin}/signin?code=abc`, '#/flash')).toBe(`${origin}/signin?code=abc#/flash`);
    expect(signinPageUrl(`${origin}/signin?code=abc`, 'javascript:x')).toBe(`${origin}/signin?code=abc`);
  });

  it("serves IPC only to our window's top frame on the service's origin", () => {
    const ours = { webContentsId: 7, frameUrl: `${origin}/#/flash`, isMainFrame: true };
    expect(isTrustedSender(ours, 7, origin)).toBe(true);
    expect(isTrustedSender({ ...ours, webContentsId: 8 }, 7, origin)).toBe(false);
    expect(isTrustedSender({ ...ours, isMainFrame: false }, 7, origin)).toBe(false);
    expect(isTrustedSender({ ...ours, frameUrl: 'https://example.com/' }, 7, origin)).toBe(false);
    expect(isTrustedSender({ ...ours, frameUrl: undefined }, 7, origin)).toBe(false);
    expect(isTrustedSender(ours, undefined, origin)).toBe(false);
    expect(isTrustedSender(ours, 7, null)).toBe(false);
  });
});

/**
 * What the app's window may do, as pure functions of URLs and the service's origin (the
 * loopback address the manager's API and UI listen on). main.ts applies them to Electron's
 * events; keeping the decisions here lets them be tested without Electron.
 *
 * The window shows one thing: the service's own UI. It signs in through a one-time link the
 * main process asks the manager for, so the API token never reaches page JavaScript; the
 * page gets no Node, no other origin, no new windows and no device permissions.
 */
import type { Logger } from '../manager/log.js';

/** BrowserWindow webPreferences of the app's window (a subset of Electron's, same names). */
export function windowWebPreferences(preload: string) {
  return {
    preload,
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInSubFrames: false,
    nodeIntegrationInWorker: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    webviewTag: false,
    navigateOnDragDrop: false,
    spellcheck: false,
  } as const;
}

/** The origin of `url` (`http://127.0.0.1:18267`), or null for a URL that has none. */
function originOf(url: string): string | null {
  try {
    const parsed = new URL(url);
    return parsed.origin === 'null' ? null : parsed.origin;
  } catch {
    return null;
  }
}

/** True when `url` is a page of the service (same scheme, host and port). */
export function isServiceUrl(url: string, serviceOrigin: string | null): boolean {
  return serviceOrigin !== null && originOf(url) === serviceOrigin;
}

/** True for a link worth handing to the user's browser: https only (no file:, no custom schemes). */
export function isExternalLink(url: string): boolean {
  try {
    return new URL(url).protocol === 'https:';
  } catch {
    return false;
  }
}

/**
 * A navigation of the window (a link, a form, `location = …`): the service's own pages load
 * in the window; an https page elsewhere opens in the user's browser; anything else is refused.
 */
export type NavigationDecision = 'allow' | 'open-external' | 'deny';

export function navigationDecision(url: string, serviceOrigin: string | null): NavigationDecision {
  if (isServiceUrl(url, serviceOrigin)) return 'allow';
  return isExternalLink(url) ? 'open-external' : 'deny';
}

/** `window.open` / target=_blank: never a new app window; https links go to the browser. */
export function windowOpenDecision(url: string): Exclude<NavigationDecision, 'allow'> {
  return isExternalLink(url) ? 'open-external' : 'deny';
}

/** Camera, microphone, notifications, serial, HID…: the UI needs none (USB goes through the service). */
export function permissionDecision(): false {
  return false;
}

/**
 * The handlers main.ts puts on every web contents: window.open is always refused (https links
 * open in the browser); a navigation or redirect away from the service is stopped.
 */
export function navigationGuard(options: { serviceOrigin: () => string | null; openExternal(url: string): void; log: Logger }) {
  return {
    windowOpen({ url }: { url: string }): { action: 'deny' } {
      if (windowOpenDecision(url) === 'open-external') options.openExternal(url);
      return { action: 'deny' };
    },
    navigate(event: { url: string; preventDefault(): void }): void {
      const decision = navigationDecision(event.url, options.serviceOrigin());
      if (decision === 'allow') return;
      event.preventDefault();
      if (decision === 'open-external') options.openExternal(event.url);
      else options.log('warn', `the window was kept from loading ${event.url.slice(0, 200)}`);
    },
  };
}

/**
 * The page URL to show for a UI route ('#/flash', '#/jobs/<id>'): the route must be one of
 * the UI's hash routes, so a notice or a menu cannot send the window anywhere else.
 */
export function serviceRouteUrl(serviceOrigin: string, route: string | undefined): string {
  return `${serviceOrigin}/${isUiRoute(route) ? route : ''}`;
}

/** A hash route of the UI: `#/` then printable characters, no spaces, of a sane length. */
export function isUiRoute(route: string | undefined): route is string {
  return typeof route === 'string' && route.length <= 300 && /^#\/[\x21-\x7e]*$/.test(route);
}

/**
 * The first page of the window: the one-time sign-in link, carrying the route as its
 * fragment (the sign-in answers with a redirect to '/', and a browser keeps the fragment of
 * the original URL across a redirect without one, so the window lands on the route).
 */
export function signinPageUrl(signinUrl: string, route: string | undefined): string {
  return isUiRoute(route) ? `${signinUrl}${route}` : signinUrl;
}

/**
 * Whether an IPC call may be served: it comes from our window's own page (its top frame),
 * showing the service's origin — not from another window, a subframe or a page it navigated to.
 */
export function isTrustedSender(
  sender: { webContentsId: number; frameUrl: string | undefined; isMainFrame: boolean },
  windowWebContentsId: number | undefined,
  serviceOrigin: string | null,
): boolean {
  return sender.webContentsId === windowWebContentsId && sender.isMainFrame && sender.frameUrl !== undefined && isServiceUrl(sender.frameUrl, serviceOrigin);
}

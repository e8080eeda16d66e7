/**
 * Hash routes of the UI (the service serves one page; the hash keeps reloads and the
 * back button working without server routes): #/ fleet, #/board/NAME/TAB, #/jobs,
 * #/jobs/ID, #/flash, #/usb/PORT.
 */
export type BoardTab = 'code' | 'console' | 'files' | 'packages' | 'telemetry' | 'settings';
export const BOARD_TABS: readonly BoardTab[] = ['code', 'console', 'files', 'packages', 'telemetry', 'settings'];

export type Route =
  | { view: 'fleet' }
  | { view: 'board'; board: string; tab: BoardTab }
  | { view: 'jobs'; job: string | null }
  | { view: 'flash' }
  | { view: 'usb'; port: string };

export function parseRoute(hash: string): Route {
  const parts = hash
    .replace(/^#\/?/, '')
    .split('/')
    .map((part) => {
      try {
        return decodeURIComponent(part);
      } catch {
        return part;
      }
    });
  switch (parts[0]) {
    case 'board': {
      const tab = BOARD_TABS.includes(parts[2] as BoardTab) ? (parts[2] as BoardTab) : 'code';
      return parts[1] ? { view: 'board', board: parts[1], tab } : { view: 'fleet' };
    }
    case 'jobs':
      return { view: 'jobs', job: parts[1] || null };
    case 'flash':
      return { view: 'flash' };
    case 'usb':
      return parts[1] ? { view: 'usb', port: parts.slice(1).join('/') } : { view: 'flash' };
    default:
      return { view: 'fleet' };
  }
}

export function href(route: Route): string {
  switch (route.view) {
    case 'fleet':
      return '#/';
    case 'board':
      return `#/board/${encodeURIComponent(route.board)}/${route.tab}`;
    case 'jobs':
      return route.job ? `#/jobs/${encodeURIComponent(route.job)}` : '#/jobs';
    case 'flash':
      return '#/flash';
    case 'usb':
      return `#/usb/${encodeURIComponent(route.port)}`;
  }
}

/**
 * The words of the tray's update line (TrayInput.updateStatus) for each state of an update
 * check, and a failure's reason in words a user can act on. Pure, so it is tested without
 * electron-updater (updater.ts drives it from autoUpdater's events).
 */
import { APP_NAME, oneLine } from './tray-model.js';

export type UpdateState =
  | { kind: 'idle' }
  | { kind: 'checking' }
  | { kind: 'up-to-date' }
  | { kind: 'downloading'; version: string; percent?: number }
  | { kind: 'downloaded'; version: string }
  | { kind: 'failed'; reason: string }
  /** Running from the source tree (not an installed app): electron-updater does not check. */
  | { kind: 'not-installed' };

/** Longest failure reason shown (the tray line is cut at ~100 characters in all). */
const REASON_MAX = 70;

export function updateStatusLine(state: UpdateState): string | undefined {
  switch (state.kind) {
    case 'idle':
      return undefined;
    case 'checking':
      return 'Checking for updates…';
    case 'up-to-date':
      return `${APP_NAME} is up to date`;
    case 'downloading':
      return `${APP_NAME} ${state.version} is available — downloading${state.percent === undefined ? '' : ` (${Math.floor(state.percent)}%)`}`;
    case 'downloaded':
      return `${APP_NAME} ${state.version} will be installed when you quit`;
    case 'failed':
      return `Update check failed: ${state.reason}`;
    case 'not-installed':
      return 'Updates are checked in the installed app only';
  }
}

const OFFLINE_CODES =
  /\b(ENOTFOUND|EAI_AGAIN|ENETUNREACH|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ERR_INTERNET_DISCONNECTED|ERR_NAME_NOT_RESOLVED|ERR_NETWORK_CHANGED|ERR_CONNECTION_[A-Z_]+|ERR_TIMED_OUT|ERR_PROXY_[A-Z_]+)\b/;

/** Why a check failed, short: no connection and no release are said plainly; anything else is its first line. */
export function updateFailureReason(error: unknown): string {
  const text = error instanceof Error ? `${(error as NodeJS.ErrnoException).code ?? ''} ${error.message}` : String(error);
  if (OFFLINE_CODES.test(text)) return 'no connection to the update server (is this computer online?)';
  // The release feed (latest.yml) is missing: nothing published yet, or a release still uploading.
  if (/\b404\b|Cannot find latest|No published versions/i.test(text)) return 'no published release was found';
  return oneLine(error instanceof Error ? error.message : text, REASON_MAX);
}

/**
 * What the tray shows, as a pure function of the service's state: the icon, the tooltip and
 * the menu. The shell (main.ts) renders the TrayView with Electron's Tray and Menu and maps
 * each item's action to what it does; it computes nothing itself, so every state is tested
 * here without Electron.
 *
 * Icons: 'online' when the service runs and every board is online (also with no boards yet:
 * nothing is wrong), 'offline' when some board is not, 'starting' while the service starts
 * or stops (both are "busy, wait": one icon for the two keeps the set small), 'stopped' and
 * 'error' for themselves.
 *
 * Alarms (the service's `status.alarms`, pushed as they change) come first in the menu and
 * replace the tooltip's status while the service runs. Refused connections make the icon
 * 'error' (someone may be filling the boards' port: every board may be locked out); a
 * suspended board makes it 'offline' (one board is out until the user enables it, the rest
 * work), whatever the counts say.
 */
import type { ServiceAlarm } from '../manager/api/contract.js';
import { listNames } from './desktop-notifications.js';

export type ServicePhase = 'stopped' | 'starting' | 'running' | 'stopping' | 'error';

export interface TrayInput {
  phase: ServicePhase;
  /** Why the service is in 'error' (one line, shown in the tooltip and menu). */
  error?: string;
  online: number;
  total: number;
  /** The user turned automatic update checks on (settings); "Check for updates" shows only then. */
  updatesEnabled: boolean;
  /** e.g. 'Checking for updates…', 'Cloudmanager 0.2.0 is ready to install' (menu line under the check item). */
  updateStatus?: string;
  /** Desktop settings, shown as two checkbox items in the menu ("Start at login", "Check for updates automatically"): the only place the user changes them. */
  startAtLogin: boolean;
  /** The service's alarms as lines (trayAlarms), one per kind; shown while it runs (none when absent). */
  alarms?: TrayAlarm[];
}

export interface TrayAlarm {
  kind: ServiceAlarm['kind'];
  /** e.g. "1 board suspended: kitchen", "Redis refused 1,234 connections". */
  text: string;
}

export type TrayIconName = 'stopped' | 'starting' | 'online' | 'offline' | 'error';

export type TrayAction =
  'open' | 'flash' | 'start-service' | 'stop-service' | 'open-data-folder' | 'check-updates' | 'toggle-start-at-login' | 'toggle-updates' | 'quit';

export interface TrayMenuItem {
  kind: 'item' | 'separator' | 'status' | 'checkbox';
  label: string;
  action?: TrayAction;
  enabled: boolean;
  checked?: boolean;
}

export interface TrayView {
  icon: TrayIconName;
  tooltip: string;
  menu: TrayMenuItem[];
}

export const APP_NAME = 'Cloudmanager';
/** Longest error text in the tooltip and the menu (tooltips are cut by some systems anyway). */
export const ERROR_TEXT_MAX = 100;
/** Windows cuts a tray tooltip at 127 characters: longer ones are cut here, with an ellipsis. */
export const TOOLTIP_MAX = 127;

/** "1 board", "0 boards", "3 boards". */
export function countBoards(count: number): string {
  return `${count} board${count === 1 ? '' : 's'}`;
}

/** An error as one line of at most ERROR_TEXT_MAX characters (a stack or a multi-line message is cut). */
export function oneLine(text: string | undefined, max = ERROR_TEXT_MAX): string {
  const line = (text ?? '').trim().split(/\r?\n/, 1)[0]!.replace(/\s+/g, ' ').trim() || 'unknown error';
  return line.length > max ? `${line.slice(0, max - 1).trimEnd()}…` : line;
}

/** The alarms in a few words, one line per kind: suspended boards named, refused connections counted. */
export function trayAlarms(alarms: readonly ServiceAlarm[]): TrayAlarm[] {
  const lines: TrayAlarm[] = [];
  const suspended = alarms.flatMap((alarm) => (alarm.kind === 'board-suspended' ? [alarm.board] : []));
  if (suspended.length > 0) lines.push({ kind: 'board-suspended', text: oneLine(`${countBoards(suspended.length)} suspended: ${listNames(suspended)}`) });
  for (const alarm of alarms) {
    if (alarm.kind === 'connections-refused') lines.push({ kind: alarm.kind, text: `Redis refused ${alarm.count.toLocaleString('en-US')} connections` });
  }
  return lines;
}

export function trayIcon(input: Pick<TrayInput, 'phase' | 'online' | 'total'> & { alarms?: readonly TrayAlarm[] }): TrayIconName {
  switch (input.phase) {
    case 'running':
      if (input.alarms?.some((alarm) => alarm.kind === 'connections-refused')) return 'error';
      if (input.alarms?.some((alarm) => alarm.kind === 'board-suspended')) return 'offline';
      return input.online >= input.total ? 'online' : 'offline';
    case 'starting':
    case 'stopping':
      return 'starting';
    case 'stopped':
      return 'stopped';
    case 'error':
      return 'error';
  }
}

/** The state in a few words: the menu's status line, and the tooltip after the app's name. */
export function serviceStatusLine(input: Pick<TrayInput, 'phase' | 'online' | 'total' | 'error'>): string {
  switch (input.phase) {
    case 'running':
      if (input.total === 0) return 'Running, no boards yet';
      return `${input.online} of ${countBoards(input.total)} online`;
    case 'starting':
      return 'Starting…';
    case 'stopping':
      return 'Stopping…';
    case 'stopped':
      return 'Service stopped';
    case 'error':
      return `Error: ${oneLine(input.error)}`;
  }
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

const separator = (): TrayMenuItem => ({ kind: 'separator', label: '', enabled: false });

export function trayView(input: TrayInput): TrayView {
  const running = input.phase === 'running';
  const busy = input.phase === 'starting' || input.phase === 'stopping';
  const status = serviceStatusLine(input);
  // A stopped service's alarms are history: they show only while it runs.
  const alarms = running ? (input.alarms ?? []) : [];
  // One of the two, so the menu says what a click will do; greyed while a change is under way.
  const serviceItem: TrayMenuItem =
    running || input.phase === 'stopping'
      ? { kind: 'item', label: 'Stop service', action: 'stop-service', enabled: !busy }
      : { kind: 'item', label: 'Start service', action: 'start-service', enabled: !busy };
  const menu: TrayMenuItem[] = [
    ...alarms.map((alarm): TrayMenuItem => ({ kind: 'status', label: alarm.text, enabled: false })),
    ...(alarms.length > 0 ? [separator()] : []),
    // The window and the wizard are pages of the running service: nothing to show without it.
    { kind: 'item', label: `Open ${APP_NAME}`, action: 'open', enabled: running },
    { kind: 'item', label: 'Flash a board…', action: 'flash', enabled: running },
    separator(),
    { kind: 'status', label: status, enabled: false },
    serviceItem,
    separator(),
    { kind: 'item', label: 'Open data folder', action: 'open-data-folder', enabled: true },
    separator(),
  ];
  if (input.updatesEnabled) {
    menu.push({ kind: 'item', label: 'Check for updates', action: 'check-updates', enabled: true });
    if (input.updateStatus) menu.push({ kind: 'status', label: oneLine(input.updateStatus), enabled: false });
  }
  menu.push(
    { kind: 'checkbox', label: 'Start at login', action: 'toggle-start-at-login', enabled: true, checked: input.startAtLogin },
    { kind: 'checkbox', label: 'Check for updates automatically', action: 'toggle-updates', enabled: true, checked: input.updatesEnabled },
    separator(),
    { kind: 'item', label: `Quit ${APP_NAME}`, action: 'quit', enabled: true },
  );
  const tooltip =
    alarms.length > 0 ? oneLine(`${APP_NAME} — ${alarms.map((alarm) => alarm.text).join('; ')}`, TOOLTIP_MAX) : `${APP_NAME} — ${lowerFirst(status)}`;
  return { icon: trayIcon({ ...input, alarms }), tooltip, menu };
}

/** File name of an icon under build/icons (e.g. 'tray-online.png'); Electron picks @2x beside it. */
export function trayIconFile(icon: TrayIconName): string {
  return `tray-${icon}.png`;
}

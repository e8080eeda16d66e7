/**
 * The tray in every state of the service: which icon, what the tooltip says, and what the
 * menu offers (labels, actions, greyed or not), as a user hovering and clicking would see it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { trayAlarms, trayIconFile, trayView, type TrayIconName, type TrayInput, type TrayMenuItem } from '../../electron/app/tray-model.js';
import type { ServiceAlarm } from '../../electron/manager/api/contract.js';

const suspended = (board: string): ServiceAlarm => ({ kind: 'board-suspended', boardId: `id-${board}`, board, reason: 'its uplink holds 2001 entries', at: 1 });
const refused = (count: number): ServiceAlarm => ({ kind: 'connections-refused', count, since: 1, at: 2, maxClients: 1000 });

const base: TrayInput = { phase: 'running', online: 0, total: 0, updatesEnabled: false, startAtLogin: false };

/** The menu as lines: "label [action] (disabled) [x]" — what is read in a menu. */
function lines(menu: TrayMenuItem[]): string[] {
  return menu.map((item) => {
    if (item.kind === 'separator') return '---';
    const parts = [item.kind === 'status' ? `(${item.label})` : item.label];
    if (item.action) parts.push(`[${item.action}]`);
    if (item.kind !== 'status' && !item.enabled) parts.push('disabled');
    if (item.kind === 'checkbox') parts.push(item.checked ? '☑' : '☐');
    return parts.join(' ');
  });
}

const tail = [
  'Open data folder [open-data-folder]',
  '---',
  'Start at login [toggle-start-at-login] ☐',
  'Check for updates automatically [toggle-updates] ☐',
  '---',
  'Quit Cloudmanager [quit]',
];

describe('tray states', () => {
  const table: Array<{ state: string; input: Partial<TrayInput>; icon: TrayIconName; tooltip: string; head: string[] }> = [
    {
      state: 'running, every board online',
      input: { online: 4, total: 4 },
      icon: 'online',
      tooltip: 'Cloudmanager — 4 of 4 boards online',
      head: ['Open Cloudmanager [open]', 'Flash a board… [flash]', '---', '(4 of 4 boards online)', 'Stop service [stop-service]', '---'],
    },
    {
      state: 'running, some board offline',
      input: { online: 3, total: 4 },
      icon: 'offline',
      tooltip: 'Cloudmanager — 3 of 4 boards online',
      head: ['Open Cloudmanager [open]', 'Flash a board… [flash]', '---', '(3 of 4 boards online)', 'Stop service [stop-service]', '---'],
    },
    {
      state: 'running, one board, offline',
      input: { online: 0, total: 1 },
      icon: 'offline',
      tooltip: 'Cloudmanager — 0 of 1 board online',
      head: ['Open Cloudmanager [open]', 'Flash a board… [flash]', '---', '(0 of 1 board online)', 'Stop service [stop-service]', '---'],
    },
    {
      state: 'running, no boards yet (nothing is wrong)',
      input: { online: 0, total: 0 },
      icon: 'online',
      tooltip: 'Cloudmanager — running, no boards yet',
      head: ['Open Cloudmanager [open]', 'Flash a board… [flash]', '---', '(Running, no boards yet)', 'Stop service [stop-service]', '---'],
    },
    {
      state: 'starting',
      input: { phase: 'starting' },
      icon: 'starting',
      tooltip: 'Cloudmanager — starting…',
      head: ['Open Cloudmanager [open] disabled', 'Flash a board… [flash] disabled', '---', '(Starting…)', 'Start service [start-service] disabled', '---'],
    },
    {
      state: 'stopping (the busy icon, like starting)',
      input: { phase: 'stopping', online: 2, total: 2 },
      icon: 'starting',
      tooltip: 'Cloudmanager — stopping…',
      head: ['Open Cloudmanager [open] disabled', 'Flash a board… [flash] disabled', '---', '(Stopping…)', 'Stop service [stop-service] disabled', '---'],
    },
    {
      state: 'stopped',
      input: { phase: 'stopped', online: 2, total: 5 },
      icon: 'stopped',
      tooltip: 'Cloudmanager — service stopped',
      head: ['Open Cloudmanager [open] disabled', 'Flash a board… [flash] disabled', '---', '(Service stopped)', 'Start service [start-service]', '---'],
    },
    {
      state: 'error',
      input: { phase: 'error', error: 'redis-server did not start: port 18266 is in use' },
      icon: 'error',
      tooltip: 'Cloudmanager — error: redis-server did not start: port 18266 is in use',
      head: [
        'Open Cloudmanager [open] disabled',
        'Flash a board… [flash] disabled',
        '---',
        '(Error: redis-server did not start: port 18266 is in use)',
        'Start service [start-service]',
        '---',
      ],
    },
    {
      state: 'running, a board suspended (the others online)',
      input: { online: 3, total: 4, alarms: trayAlarms([suspended('kitchen')]) },
      icon: 'offline',
      tooltip: 'Cloudmanager — 1 board suspended: kitchen',
      head: [
        '(1 board suspended: kitchen)',
        '---',
        'Open Cloudmanager [open]',
        'Flash a board… [flash]',
        '---',
        '(3 of 4 boards online)',
        'Stop service [stop-service]',
        '---',
      ],
    },
    {
      state: 'running, Redis refusing connections (every board still online)',
      input: { online: 4, total: 4, alarms: trayAlarms([refused(1234)]) },
      icon: 'error',
      tooltip: 'Cloudmanager — Redis refused 1,234 connections',
      head: [
        '(Redis refused 1,234 connections)',
        '---',
        'Open Cloudmanager [open]',
        'Flash a board… [flash]',
        '---',
        '(4 of 4 boards online)',
        'Stop service [stop-service]',
        '---',
      ],
    },
    {
      state: 'running, both alarms: refused connections win the icon',
      input: { online: 2, total: 4, alarms: trayAlarms([suspended('kitchen'), suspended('garage'), refused(20000)]) },
      icon: 'error',
      tooltip: 'Cloudmanager — 2 boards suspended: kitchen and garage; Redis refused 20,000 connections',
      head: [
        '(2 boards suspended: kitchen and garage)',
        '(Redis refused 20,000 connections)',
        '---',
        'Open Cloudmanager [open]',
        'Flash a board… [flash]',
        '---',
        '(2 of 4 boards online)',
        'Stop service [stop-service]',
        '---',
      ],
    },
    {
      state: "stopped with an alarm left from before (not shown: it was the stopped service's)",
      input: { phase: 'stopped', online: 3, total: 4, alarms: trayAlarms([suspended('kitchen')]) },
      icon: 'stopped',
      tooltip: 'Cloudmanager — service stopped',
      head: ['Open Cloudmanager [open] disabled', 'Flash a board… [flash] disabled', '---', '(Service stopped)', 'Start service [start-service]', '---'],
    },
  ];

  it.each(table)('$state → $icon icon, "$tooltip"', ({ input, icon, tooltip, head }) => {
    const view = trayView({ ...base, ...input });
    expect(view.icon).toBe(icon);
    expect(view.tooltip).toBe(tooltip);
    expect(lines(view.menu)).toEqual([...head, ...tail]);
  });

  it('a long or multi-line error is one line of at most ~100 characters, in the tooltip and the menu', () => {
    const error = `${'x'.repeat(150)}\n    at Manager.start (manager.ts:1:1)`;
    const view = trayView({ ...base, phase: 'error', error });
    const line = `${'x'.repeat(99)}…`;
    expect(view.tooltip).toBe(`Cloudmanager — error: ${line}`);
    expect(view.menu.find((item) => item.kind === 'status')?.label).toBe(`Error: ${line}`);
    expect(view.tooltip).not.toContain('\n');
  });

  it('many suspended boards: three named, the rest counted; the tooltip stays within what Windows shows', () => {
    const names = ['kitchen-sensor-0001', 'garage-door-controller', 'greenhouse-east-valve', 'attic', 'porch'];
    const alarms = trayAlarms([...names.map(suspended), refused(1_234_567)]);
    expect(alarms[0]).toEqual({
      kind: 'board-suspended',
      text: '5 boards suspended: kitchen-sensor-0001, garage-door-controller, greenhouse-east-valve and 2 more',
    });
    const view = trayView({ ...base, online: 0, total: 5, alarms });
    expect(view.tooltip.length).toBeLessThanOrEqual(127);
    expect(view.tooltip).toMatch(/^Cloudmanager — 5 boards suspended: kitchen-sensor-0001, .*…$/);
  });

  it('an error with no reason still says what happened', () => {
    expect(trayView({ ...base, phase: 'error' }).tooltip).toBe('Cloudmanager — error: unknown error');
  });
});

describe('tray settings and updates', () => {
  it('"Check for updates" shows only when automatic checks are on, with the status under it', () => {
    const off = lines(trayView({ ...base, updateStatus: 'Cloudmanager is up to date' }).menu);
    expect(off.some((line) => line.startsWith('Check for updates ['))).toBe(false);
    expect(off).not.toContain('(Cloudmanager is up to date)');

    const on = lines(trayView({ ...base, updatesEnabled: true, startAtLogin: true, updateStatus: 'Cloudmanager 0.2.0 will be installed when you quit' }).menu);
    expect(on.slice(-6)).toEqual([
      'Check for updates [check-updates]',
      '(Cloudmanager 0.2.0 will be installed when you quit)',
      'Start at login [toggle-start-at-login] ☑',
      'Check for updates automatically [toggle-updates] ☑',
      '---',
      'Quit Cloudmanager [quit]',
    ]);
  });

  it('with checks on and no status yet, no empty line under "Check for updates"', () => {
    const menu = trayView({ ...base, updatesEnabled: true }).menu;
    const check = menu.findIndex((item) => item.action === 'check-updates');
    expect(menu[check + 1]).toMatchObject({ kind: 'checkbox', action: 'toggle-start-at-login' });
  });

  it('status lines are never clickable, and every clickable item has an action', () => {
    for (const phase of ['stopped', 'starting', 'running', 'stopping', 'error'] as const) {
      for (const item of trayView({ ...base, phase, updatesEnabled: true, updateStatus: 'Checking for updates…' }).menu) {
        if (item.kind === 'status' || item.kind === 'separator') expect(item.enabled).toBe(false);
        else expect(item.action).toBeDefined();
      }
    }
  });
});

describe('tray icon files', () => {
  const icons = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'icons');
  it.each(['stopped', 'starting', 'online', 'offline', 'error'] as const)('%s has its file and a @2x beside it under build/icons', (icon) => {
    const file = trayIconFile(icon);
    expect(file).toBe(`tray-${icon}.png`);
    expect(existsSync(path.join(icons, file))).toBe(true);
    expect(existsSync(path.join(icons, file.replace(/\.png$/, '@2x.png')))).toBe(true);
  });
});

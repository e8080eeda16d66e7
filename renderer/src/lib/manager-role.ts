/**
 * What the UI says when its service stands by (several managers on one Redis: the one
 * holding the lease runs the fleet; docs/ARCHITECTURE.md "Several managers"). A standby
 * passes the fleet's routes on to the active manager (an upload's files go along), but this
 * computer's USB ports are its own: flashing works on the active computer only.
 * Texts come as parts so the page can set the computer's name apart (a host name like "vm"
 * or "pi" reads as a word otherwise). Pure functions.
 */
import type { ManagerRoleStatus } from '../../../electron/manager/api/contract.js';

/** A piece of a sentence; `name`: a computer's name, shown set apart. */
export interface TextPart {
  text: string;
  name?: boolean;
}

export interface Notice {
  title: string;
  parts: TextPart[];
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "14:05" for a time today, "1 Dec 14:05" for another day (local time). */
export function formatClock(time: number, now: number): string {
  const date = new Date(time);
  const clock = `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
  return date.toDateString() === new Date(now).toDateString() ? clock : `${date.getDate()} ${MONTHS[date.getMonth()]} ${clock}`;
}

/** The parts as one string (tests, titles). */
export function plainText(parts: readonly TextPart[]): string {
  return parts.map((part) => part.text).join('');
}

/** The active computer's name as the lease gives it (a lease written without one: "another computer"). */
export function activeHostName(manager: ManagerRoleStatus | null | undefined): string | null {
  if (!manager?.active) return null;
  return manager.active.host.trim() || 'another computer';
}

/**
 * Whether the fleet runs in another Cloudmanager service on this same computer (two data
 * folders, or `mbm server-start` beside the app): naming the computer would say "vm runs the
 * fleet" on vm itself.
 */
export function activeOnThisComputer(manager: ManagerRoleStatus | null | undefined): boolean {
  return !!manager?.active && manager.active.id !== manager.id && !!manager.host && manager.active.host.trim() === manager.host.trim();
}

/** The banner while this service stands by; null while it runs the fleet (or nothing is known yet). */
export function standbyBanner(manager: ManagerRoleStatus | null | undefined, now: number): TextPart[] | null {
  if (manager?.role !== 'standby') return null;
  const host = activeHostName(manager);
  if (!host || !manager.active)
    return [{ text: 'This computer stands by and no computer runs the fleet right now; this one takes over within a few seconds.' }];
  if (activeOnThisComputer(manager))
    return [
      {
        text:
          `This service stands by: another Cloudmanager service on this computer (process ${manager.active.pid}) runs the fleet ` +
          `(since ${formatClock(manager.active.since, now)}). Boards, code, files and jobs work from here; flashing boards over USB works through that service.`,
      },
    ];
  return [
    { text: 'This computer stands by: ' },
    { text: host, name: true },
    {
      text: ` runs the fleet (since ${formatClock(manager.active.since, now)}). Boards, code, files and jobs work from here; flashing boards over USB works on `,
    },
    { text: host, name: true },
    { text: '.' },
  ];
}

/**
 * Why USB is not offered here, in place of the port list (`flash`) or the serial terminal
 * (`console`). `serviceMessage`: what the service answered the port list with, for when the
 * role is not known.
 */
export function usbElsewhere(what: 'flash' | 'console', manager: ManagerRoleStatus | null | undefined, serviceMessage: string | null): Notice {
  const doing = what === 'flash' ? 'Flashing' : 'The USB console';
  if (manager?.role !== 'standby') {
    return {
      title: 'USB is not available here',
      parts: [{ text: `${doing} is not available here: ${serviceMessage ?? 'the service does not offer its serial ports'}.` }],
    };
  }
  const host = activeHostName(manager);
  if (!host) {
    return {
      title: 'No computer runs the fleet right now',
      parts: [{ text: `${doing} works on the computer that runs the fleet. This computer takes over within a few seconds; then it works from here.` }],
    };
  }
  const task = what === 'flash' ? 'flash it' : 'open its console';
  if (activeOnThisComputer(manager)) {
    return {
      title: `${doing} works through the other Cloudmanager service`,
      parts: [
        {
          text:
            `Only the service that runs the fleet uses the USB ports, and that is another Cloudmanager service on this computer ` +
            `(process ${manager!.active!.pid}): ${task} from that service's window or its mbm.`,
        },
        ...(what === 'flash' ? [{ text: ' A board flashed there shows up here too.' }] : []),
      ],
    };
  }
  return {
    title: `${doing} works on ${host}`,
    parts: [
      { text: `Only the computer that runs the fleet uses its USB ports, and that is ` },
      { text: host, name: true },
      { text: `: plug the board into ${host} and ${task} from Cloudmanager there.` },
      ...(what === 'flash' ? [{ text: ' A board flashed there shows up here too.' }] : []),
    ],
  };
}

/** The banner lines for the service's alarms (pure; the App shows them): the boards' port, suspended boards. */
import type { ServiceAlarm } from '../../../electron/manager/api/contract.js';
import { formatAgo } from './format.js';

/** "Redis refused 1,234 connections (since 3 min ago): …", or null when there is no such alarm. */
export function connectionsRefusedText(alarms: ServiceAlarm[] | undefined, now: number): string | null {
  const alarm = alarms?.find((item) => item.kind === 'connections-refused');
  if (!alarm || alarm.kind !== 'connections-refused') return null;
  return (
    `The boards' port refused ${alarm.count.toLocaleString('en-US')} connections (since ${formatAgo(alarm.since, now)}, the last ${formatAgo(alarm.at, now)}): ` +
    `all ${alarm.maxClients.toLocaleString('en-US')} connection slots were taken. Someone may be flooding it; connections that do not log in are closed, so boards get back in.`
  );
}

/** "kitchen was suspended …" (a link to its page, where Enable is), or null when no board is suspended. */
export function suspendedBoardsText(alarms: ServiceAlarm[] | undefined): { text: string; board: string } | null {
  const names = (alarms ?? []).flatMap((alarm) => (alarm.kind === 'board-suspended' ? [alarm.board] : []));
  if (names.length === 0) return null;
  if (names.length === 1) return { text: `${names[0]} was suspended for going over its budget: open it to see why and enable it.`, board: names[0]! };
  const listed =
    names.length <= 3 ? `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}` : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
  return { text: `${names.length} boards were suspended for going over their budget: ${listed}. Open each to see why and enable it.`, board: names[0]! };
}

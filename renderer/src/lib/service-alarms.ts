/** The banner line for the service's alarms about the boards' port (pure; the App shows it). */
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

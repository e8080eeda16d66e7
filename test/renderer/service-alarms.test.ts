import { describe, expect, it } from 'vitest';
import { connectionsRefusedText } from '../../renderer/src/lib/service-alarms.js';
import type { ServiceAlarm } from '../../electron/manager/api/contract.js';

describe('the connections-refused banner', () => {
  const now = 1_800_000_000_000;
  it('says how many connections were refused, since when, and how many slots there are', () => {
    const alarms: ServiceAlarm[] = [{ kind: 'connections-refused', count: 12345, since: now - 180_000, at: now - 5_000, maxClients: 1000 }];
    expect(connectionsRefusedText(alarms, now)).toBe(
      "The boards' port refused 12,345 connections (since 3 min ago, the last 5 s ago): all 1,000 connection slots were taken. " +
        'Someone may be flooding it; connections that do not log in are closed, so boards get back in.',
    );
  });
  it('is null without that alarm', () => {
    expect(connectionsRefusedText([], now)).toBeNull();
    expect(connectionsRefusedText(undefined, now)).toBeNull();
  });
});

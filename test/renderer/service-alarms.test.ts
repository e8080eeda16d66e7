import { describe, expect, it } from 'vitest';
import { connectionsRefusedText, suspendedBoardsText } from '../../renderer/src/lib/service-alarms.js';
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

describe('the suspended boards banner', () => {
  const suspended = (board: string): ServiceAlarm => ({ kind: 'board-suspended', boardId: `id-${board}`, board, reason: 'x', at: 1 });
  it('names the board and links to its page, where Enable is', () => {
    expect(suspendedBoardsText([suspended('kitchen')])).toEqual({
      text: 'kitchen was suspended for going over its budget: open it to see why and enable it.',
      board: 'kitchen',
    });
  });
  it('several boards: three named, the rest counted', () => {
    expect(suspendedBoardsText(['a', 'b'].map(suspended))?.text).toBe(
      '2 boards were suspended for going over their budget: a and b. Open each to see why and enable it.',
    );
    expect(suspendedBoardsText(['a', 'b', 'c', 'd', 'e'].map(suspended))?.text).toBe(
      '5 boards were suspended for going over their budget: a, b, c and 2 more. Open each to see why and enable it.',
    );
  });
  it('is null without a suspended board (refused connections have their own banner)', () => {
    expect(suspendedBoardsText([{ kind: 'connections-refused', count: 1, since: 1, at: 1, maxClients: 1000 }])).toBeNull();
    expect(suspendedBoardsText(undefined)).toBeNull();
  });
});

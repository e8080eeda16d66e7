import { describe, expect, it } from 'vitest';
import { accessBadge, accessNotice } from '../../renderer/src/lib/board-access.js';

describe('a revoked or suspended board in the UI', () => {
  const now = 1_800_000_000_000;
  const suspended = { name: 'kitchen', disabled: { kind: 'suspended' as const, reason: 'its uplink holds 2001 entries (budget 2000)', at: now - 120_000 } };
  const revoked = { name: 'garage', disabled: { kind: 'revoked' as const, reason: 'revoked by the user', at: now - 5_000 } };

  it('a board that may log in has no badge and no notice', () => {
    expect(accessBadge({ disabled: null }, now)).toBeNull();
    expect(accessNotice({ name: 'shed', disabled: null }, now)).toBeNull();
  });

  it('the fleet row: "suspended" with why and since when as the tooltip', () => {
    expect(accessBadge(suspended, now)).toEqual({
      label: 'suspended',
      title: 'Suspended 2 min ago: its uplink holds 2001 entries (budget 2000). Open the board to enable it.',
    });
  });

  it('the fleet row: "revoked"', () => {
    expect(accessBadge(revoked, now)).toEqual({ label: 'revoked', title: 'Revoked 5 s ago: it cannot log in. Open the board to enable it.' });
  });

  it('the board page: what happened, why, and what Enable does', () => {
    expect(accessNotice(suspended, now)).toEqual({
      heading: 'kitchen was suspended 2 min ago',
      text:
        'The service cut it off because its uplink holds 2001 entries (budget 2000). It cannot log in until you enable it; ' +
        'if it does the same again, it is suspended again. Check the program running on it first.',
    });
    expect(accessNotice(revoked, now)).toEqual({
      heading: 'garage was revoked 5 s ago',
      text: 'It cannot log in. Enable it to let it back in with the credentials it has: nothing needs setting up again.',
    });
  });
});

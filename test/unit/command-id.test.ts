import { describe, expect, it } from 'vitest';
import { newCommandId } from '../../electron/manager/fleet/command-id.js';

describe('command ids', () => {
  it('are unique across more ids than one draw of random bytes holds, and keep their form', () => {
    const ids = Array.from({ length: 5_000 }, () => newCommandId());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^c[0-9a-z]+[A-Za-z0-9_-]{8}$/);
  });
});

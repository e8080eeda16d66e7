/**
 * The manager keeps board names unique, so its name wins (PROTOCOL.md §7.5): a board whose
 * own config names it otherwise is renamed back, and the name cannot be set as a setting.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';

describe('the board name belongs to the manager', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await startLab({ boards: 1, prefix: 'named', heartbeatS: 1 });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('a board that comes back calling itself otherwise is renamed back', async () => {
    const board = lab.fleet.byName('named-1')!;
    await board.powerOff();
    board.config.name = 'impostor'; // its flash restored from another board's backup, say
    board.start();
    await waitFor(() => board.config.name === 'named-1', 15_000, 'the board renamed back');
    expect((await lab.api.call('boards.get', { board: 'named-1' })).online).toBe(true);
    await expect(lab.api.call('boards.get', { board: 'impostor' })).rejects.toThrow();
    expect(lab.logs.some((entry) => entry.message.includes('calls itself "impostor"; renaming it back to named-1'))).toBe(true);
  });

  it('refuses the name as a setting, pointing to rename', async () => {
    await expect(lab.api.call('commands.send', { boards: 'named-1', request: { op: 'cfg_set', key: 'name', value: 'x' } })).rejects.toThrow(/use rename/);
  });
});

/**
 * Manager-side behaviour of commands that does not depend on the kind of board (the board
 * behaviours themselves are in the conformance suite, helpers/board-conformance.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';

describe('command expiry and cancellation', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ boards: 1, heartbeatS: 1 });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('expires a command that waits too long for an offline board; it never runs', async () => {
    const board = lab.fleet.byName('sim-1')!;
    await board.powerOff();
    const { commands } = await lab.api.call('commands.send', { boards: 'sim-1', request: { op: 'exec', code: 'print("too late")' }, expireMs: 1_000 });
    const [done] = await lab.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 5_000 });
    expect(done!.status).toBe('expired');
    board.start();
    await waitFor(async () => (await lab.api.call('boards.get', { board: 'sim-1' })).online, 5_000, 'online');
    const probe = await lab.api.call('commands.send', { boards: 'sim-1', request: { op: 'exec', code: 'pass' } });
    await lab.api.call('commands.wait', { cids: [probe.commands[0]!.cid], timeoutMs: 5_000 });
    expect(board.executed).not.toContain(commands[0]!.cid);
  });

  it('cancels a queued command before the board takes it', async () => {
    const board = lab.fleet.byName('sim-1')!;
    await board.powerOff();
    const { commands } = await lab.api.call('commands.send', { boards: 'sim-1', request: { op: 'exec', code: 'print("never")' } });
    const cancelled = await lab.api.call('commands.cancel', { cid: commands[0]!.cid });
    expect(cancelled.status).toBe('cancelled');
    board.start();
    await waitFor(async () => (await lab.api.call('boards.get', { board: 'sim-1' })).online, 5_000, 'online');
    const probe = await lab.api.call('commands.send', { boards: 'sim-1', request: { op: 'exec', code: 'pass' } });
    await lab.api.call('commands.wait', { cids: [probe.commands[0]!.cid], timeoutMs: 5_000 });
    expect(board.executed).not.toContain(commands[0]!.cid);
  });
});

/**
 * Stop (PROTOCOL.md §4.4): a running command stops when its user asks, and is reported as
 * cancelled; the board keeps working. Against the reference board.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';

describe('stopping a running command', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await startLab({ boards: 1, prefix: 'stop', heartbeatS: 1 });
  });
  afterAll(async () => {
    await lab?.close();
  });

  async function runUntilRunning(code: string) {
    const { commands } = await lab.api.call('commands.send', { boards: 'stop-1', request: { op: 'exec', code, timeoutMs: 60_000 } });
    const cid = commands[0]!.cid;
    await waitFor(async () => (await lab.api.call('commands.get', { cid })).status === 'running', 10_000, 'the command to run');
    return cid;
  }

  it('a loop that prints stops on request and is reported as cancelled', async () => {
    const cid = await runUntilRunning('import time\nwhile True:\n    print("tick")\n    time.sleep(0.05)\n');
    const asked = await lab.api.call('commands.cancel', { cid });
    expect(asked.stopRequested).toBe(true);
    const [done] = await lab.api.call('commands.wait', { cids: [cid], timeoutMs: 15_000 });
    expect(done).toMatchObject({ status: 'cancelled', error: 'stopped', errorCode: 'EINTR' });
    expect(done!.output.map((chunk) => chunk.text).join('')).toContain('tick');
    // The board carries on, its globals intact.
    const { commands } = await lab.api.call('commands.send', { boards: 'stop-1', request: { op: 'exec', code: 'print(1 + 1)' } });
    const [next] = await lab.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 10_000 });
    expect(next).toMatchObject({ status: 'ok', output: [{ stream: 'stdout', text: '2\n' }] });
  });

  it('a silent loop stops too (its interpreter is restarted)', async () => {
    const cid = await runUntilRunning('while True:\n    pass\n');
    await lab.api.call('commands.cancel', { cid });
    const [done] = await lab.api.call('commands.wait', { cids: [cid], timeoutMs: 15_000 });
    expect(done).toMatchObject({ status: 'cancelled' });
  });

  it('a command that has not started is cancelled without reaching the board', async () => {
    const board = lab.fleet.byName('stop-1')!;
    await board.stop();
    await waitFor(async () => !(await lab.api.call('boards.get', { board: 'stop-1' })).online, 10_000, 'board offline');
    const { commands } = await lab.api.call('commands.send', { boards: 'stop-1', request: { op: 'exec', code: 'print("never")' } });
    const cancelled = await lab.api.call('commands.cancel', { cid: commands[0]!.cid });
    expect(cancelled).toMatchObject({ status: 'cancelled', stopRequested: false });
    board.start();
    await waitFor(async () => (await lab.api.call('boards.get', { board: 'stop-1' })).online, 10_000, 'board online');
    expect(board.executed).not.toContain(commands[0]!.cid);
  });
});

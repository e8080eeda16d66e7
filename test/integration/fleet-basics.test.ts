import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab, type Lab } from '../helpers/lab.js';

describe('fleet basics with virtual boards', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await startLab({ boards: 2 });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('lists the boards online with their platform', async () => {
    const boards = await lab.api.call('boards.list', {});
    expect(boards.map((board) => [board.name, board.online, board.platform])).toEqual([
      ['sim-1', true, 'virtual'],
      ['sim-2', true, 'virtual'],
    ]);
  });

  it('runs print(6*7) and returns 42', async () => {
    const { commands } = await lab.api.call('commands.send', { boards: 'sim-1', request: { op: 'exec', code: 'print(6*7)' } });
    const [done] = await lab.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 5000 });
    expect(done!.status).toBe('ok');
    expect(done!.output).toEqual([{ stream: 'stdout', text: '42\n' }]);
  });
});

/** `mbm board-revoke` and `mbm board-enable`: turning a board's access off and on again. */
import { write, type VerbSpec } from './cli-framework.js';
import { connectService } from './service-control.js';

export const boardRevoke: VerbSpec = {
  name: 'board-revoke',
  summary: 'shut a board out now: its login is refused and its open connections closed; its record stays',
  args: ['BOARD'],
  options: {},
  details: 'Undo with `mbm board-enable BOARD`, or issue new credentials with `mbm board-enroll BOARD --rotate`.',
  async run({ values, positionals, out }) {
    const { board, closed } = await (await connectService(values)).call('boards.revoke', { board: positionals[0]! });
    write(
      out,
      `Revoked ${board.name}: ${closed} open connection${closed === 1 ? '' : 's'} closed; it cannot log in until \`mbm board-enable ${board.name}\`.\n`,
    );
    return 0;
  },
};

export const boardEnable: VerbSpec = {
  name: 'board-enable',
  summary: 'let a revoked or suspended board log in again with the credentials it has',
  args: ['BOARD'],
  options: {},
  details: 'A board is suspended when it goes over its budget (`mbm server-status` lists it with the reason).',
  async run({ values, positionals, out }) {
    const board = await (await connectService(values)).call('boards.enable', { board: positionals[0]! });
    write(out, `Enabled ${board.name}; it can log in again.\n`);
    return 0;
  },
};

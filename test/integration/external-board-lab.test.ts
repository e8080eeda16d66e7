/**
 * The lab of `npm run conformance`: board processes started from a command line, here the
 * lab's own board CLI (compiled, dist/test/lab/cli/board.js) of both kinds.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../electron/manager/api/contract.js';
import { splitCommand, startExternalBoardLab, type ExternalBoardLab } from '../helpers/external-board-lab.js';
import { waitFor } from '../helpers/lab.js';

const BOARD_CLI = fileURLToPath(new URL('../../dist/test/lab/cli/board.js', import.meta.url));

describe('splitCommand', () => {
  it('splits words like a shell: quotes keep spaces, backslashes escape, placeholders stay', () => {
    expect(splitCommand(`node  'my dir/board.js' --kind "a \\"b\\" c" x\\ y {creds} {fs}`)).toEqual([
      'node',
      'my dir/board.js',
      '--kind',
      'a "b" c',
      'x y',
      '{creds}',
      '{fs}',
    ]);
    expect(splitCommand(`run '' ""`)).toEqual(['run', '', '']);
    expect(() => splitCommand(`run 'open`)).toThrow(/unclosed ' quote/);
  });
});

describe.each(['reference', 'micropython'])('a %s board process from the lab CLI', (kind) => {
  let lab: ExternalBoardLab | undefined;
  afterEach(async () => {
    await lab?.close();
    lab = undefined;
  });

  it('keeps its settings across a power cut and says bye when shut down', async () => {
    lab = await startExternalBoardLab({ command: `node '${BOARD_CLI}' --kind ${kind} {creds} {fs}` });
    const events: ApiEvent[] = [];
    const subscription = await lab.api.events((event) => events.push(event));
    try {
      const [name] = lab.names as [string];
      const send = async (request: { op: 'cfg_set'; key: string; value: string } | { op: 'cfg_get' }) => {
        const [command] = (await lab!.api.call('commands.send', { boards: name, request })).commands;
        return (await lab!.api.call('commands.wait', { cids: [command!.cid], timeoutMs: 20_000 }))[0]!;
      };
      expect((await send({ op: 'cfg_set', key: 'note', value: 'kept' })).status).toBe('ok');
      await lab.powerOff(name);
      await lab.powerOn(name);
      await waitFor(async () => (await lab!.api.call('boards.get', { board: name })).online, 30_000, 'online again');
      expect((await send({ op: 'cfg_get' })).result).toMatchObject({ name, note: 'kept' });
      const before = events.length;
      await lab.shutDown(name);
      const offline = await waitFor(() => events.slice(before).find((event) => event.type === 'board.offline' && event.board.name === name), 10_000, 'offline');
      expect(offline).toMatchObject({ reason: 'board said bye (shutdown)' });
      const log = await readFile(lab.logFile(name), 'utf8');
      expect(log).toMatch(/--- exited \(SIGKILL\)\n[\s\S]*bye\n--- exited \(code 0\)\n$/);
    } finally {
      subscription.close();
    }
  });
});

describe('a board command that does not run', () => {
  it('fails the lab with the end of its output', async () => {
    await expect(startExternalBoardLab({ command: `node -e "console.error('no board here'); process.exit(3)" {creds} {fs}` })).rejects.toThrow(
      /exited before it came online[\s\S]*no board here[\s\S]*exited \(code 3\)/,
    );
  });
});

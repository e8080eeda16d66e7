import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runOnBoards } from '../../electron/cli/board-runner.js';
import type { ApiClient } from '../../electron/manager/api/client.js';
import type { ApiEvent, CommandView } from '../../electron/manager/api/contract.js';

function view(status: CommandView['status'], text: string): CommandView {
  return {
    cid: 'c1',
    boardId: 'b1',
    board: 'kitchen',
    op: 'exec',
    summary: 'exec',
    status,
    createdAt: 1,
    startedAt: 2,
    finishedAt: status === 'ok' ? 3 : null,
    expiresAt: Date.now() + 60_000,
    timeoutMs: 30_000,
    output: text === '' ? [] : [{ stream: 'stdout', text }],
    outputTruncated: false,
    stopRequested: false,
    transferredBytes: 0,
    error: null,
    errorCode: null,
    result: null,
  } as CommandView;
}

/** An API that streams output events, then a resync marker (events dropped), then the rest. */
function apiWithDroppedEvents(): ApiClient {
  let emit: (event: ApiEvent) => void = () => {};
  const output = (text: string) => emit({ type: 'output', cid: 'c1', boardId: 'b1', board: 'kitchen', stream: 'stdout', text } as ApiEvent);
  return {
    events: async (onEvent: (event: ApiEvent) => void) => {
      emit = onEvent;
      return { close() {} };
    },
    call: async (route: string) => {
      if (route === 'commands.send') {
        queueMicrotask(() => {
          output('one\n');
          emit({ type: 'resync' } as ApiEvent); // 'two\n' was dropped for this slow client
          output('three\n');
        });
        return { commands: [{ cid: 'c1', board: 'kitchen', boardOnline: true, status: 'queued', expiresAt: Date.now() + 60_000, timeoutMs: 30_000 }] };
      }
      if (route === 'commands.wait') {
        await new Promise((resolve) => setTimeout(resolve, 10));
        return [view('ok', 'one\ntwo\nthree\n')];
      }
      throw new Error(`unexpected route ${route}`);
    },
  } as unknown as ApiClient;
}

describe('board-execute streaming output', () => {
  it('after the service dropped events for it (resync), prints the whole output once, in order', async () => {
    const out = new PassThrough();
    let printed = '';
    out.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    const outcome = await runOnBoards(apiWithDroppedEvents(), 'kitchen', { op: 'exec', code: 'x' }, { streamOutput: true, out, err: new PassThrough() });
    expect(outcome.finished.map((command) => command.status)).toEqual(['ok']);
    expect(printed).toBe('## kitchen\none\ntwo\nthree\n');
  });
});

/**
 * A lab board asks whether its command should stop (the state hash's `stop`, PROTOCOL.md
 * §4.4) while its code runs, not while the code waits for the process's shared interpreter:
 * a real board, with a CPU of its own, never waits there, and 10,000 lab boards polling
 * while queued slowed a lab broadcast down tenfold. A Stop still ends running code.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runOperation, type OperationContext } from '../../electron/manager/virtual/board-operations.js';
import type { ExecOptions, ExecResult } from '../../electron/manager/virtual/micropython-interpreter.js';

/** An interpreter busy with others for `queuedMs`, then running this code for `runMs` (or until stopped). */
function boardWithBusyInterpreter(queuedMs: number, runMs: number, stopAsked: () => boolean) {
  let polls = 0;
  const interpreter = {
    exec: (_context: string, _code: string, options: ExecOptions) =>
      new Promise<ExecResult>((resolve) => {
        setTimeout(() => {
          options.onStart?.();
          const done = setTimeout(() => resolve({ status: 'ok' } as ExecResult), runMs);
          options.signal?.addEventListener('abort', () => {
            clearTimeout(done);
            resolve({ status: 'stopped' } as ExecResult);
          });
        }, queuedMs);
      }),
  };
  const context = {
    contextId: 'b1',
    interpreter,
    send: () => undefined,
    onExec: () => undefined,
    stopRequested: async () => {
      polls++;
      return stopAsked();
    },
  } as unknown as OperationContext;
  return { context, polls: () => polls };
}

const execFields = new Map<string, Buffer>([
  ['o', Buffer.from('exec')],
  ['c', Buffer.from('print(1)')],
]);

describe('reference board: stop polling', () => {
  afterEach(() => vi.useRealTimers());

  it('does not ask while its code waits for the interpreter, and asks every 250 ms while it runs', async () => {
    vi.useFakeTimers();
    const board = boardWithBusyInterpreter(5_000, 600, () => false);
    const result = runOperation(board.context, 'c1', execFields);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(board.polls()).toBe(0);
    await vi.advanceTimersByTimeAsync(600);
    await result;
    expect(board.polls()).toBe(2);
  });

  it('a Stop asked while the code runs ends it', async () => {
    vi.useFakeTimers();
    const board = boardWithBusyInterpreter(1_000, 60_000, () => true);
    const result = runOperation(board.context, 'c1', execFields);
    await vi.advanceTimersByTimeAsync(1_300);
    const fields = await result;
    expect(fields.map(String)).toContain('EINTR');
  });
});

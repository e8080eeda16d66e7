import { describe, expect, it } from 'vitest';
import { ReplInput, consoleCode, CONTINUATION, PROMPT } from '../../renderer/src/lib/repl-input.js';

const runs = (input: ReplInput, data: string) => input.feed(data).filter((action) => action.kind === 'run');

describe('console line discipline', () => {
  it('runs a typed line, and waits for a block to end with an empty line', () => {
    const input = new ReplInput();
    expect(runs(input, 'x = 6 * 7\r')).toEqual([{ kind: 'run', code: 'x = 6 * 7', single: true }]);
    expect(runs(input, 'for i in range(2):\r')).toEqual([]);
    expect(input.prompt).toBe(CONTINUATION);
    expect(runs(input, '    print(i)\r')).toEqual([]);
    expect(runs(input, '\r')).toEqual([{ kind: 'run', code: 'for i in range(2):\n    print(i)', single: true }]);
    expect(input.prompt).toBe(PROMPT);
  });

  it('edits with backspace and arrows, recalls history, and Ctrl-C clears the line', () => {
    const input = new ReplInput();
    input.feed('prnt\x1b[D\x1b[Di');
    expect(input.line).toBe('print');
    input.feed('\x7f');
    expect(input.line).toBe('prnt');
    expect(input.feed('\x03').map((action) => action.kind)).toEqual(['echo', 'interrupt', 'echo']);
    expect(input.line).toBe('');
    runs(input, 'a = 1\r');
    runs(input, 'b = 2\r');
    input.feed('\x1b[A');
    expect(input.line).toBe('b = 2');
    input.feed('\x1b[A');
    expect(input.line).toBe('a = 1');
    expect(runs(input, '\r')).toEqual([{ kind: 'run', code: 'a = 1', single: true }]);
  });

  it('runs a multi-line paste as one block, as written', () => {
    const input = new ReplInput();
    expect(runs(input, 'def f():\r\n    return 3\r\nprint(f())\r\n')).toEqual([{ kind: 'run', code: 'def f():\n    return 3\nprint(f())', single: false }]);
  });

  it('sends typed lines in "single" mode (expression values print), pastes as they are', () => {
    expect(consoleCode('x', true)).toContain(`compile("x", '<stdin>', 'single')`);
    expect(consoleCode('print("a\\nb")', true)).toContain(JSON.stringify('print("a\\nb")'));
    expect(consoleCode('a = 1\nb = 2', false)).toBe('a = 1\nb = 2');
  });
});

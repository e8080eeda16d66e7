/**
 * The line discipline of the network console: what a keystroke or a paste does to the
 * input line, the block being typed (a `for …:` waits for its body and an empty line, like
 * Python's REPL), and the history. Pure: the terminal only draws what this decides.
 */
export type ReplAction = { kind: 'echo'; text: string } | { kind: 'run'; code: string; single: boolean } | { kind: 'interrupt' };

export const PROMPT = '>>> ';
export const CONTINUATION = '... ';

export class ReplInput {
  line = '';
  cursor = 0;
  private block: string[] = [];
  private readonly history: string[] = [];
  private historyIndex = 0;

  constructor(private readonly maxHistory = 200) {}

  get prompt(): string {
    return this.block.length > 0 ? CONTINUATION : PROMPT;
  }

  /** Feeds terminal input (keys or pasted text); returns what to draw and what to run. */
  feed(data: string): ReplAction[] {
    // A paste of several lines runs as one block, as it was written.
    if (data.length > 1 && /[\r\n]/.test(data.replace(/[\r\n]+$/, '')) && !data.startsWith('\x1b')) return this.paste(data);
    const actions: ReplAction[] = [];
    let index = 0;
    while (index < data.length) {
      const escape = /^\x1b\[[A-D]/.exec(data.slice(index));
      if (escape) {
        actions.push(...this.arrow(escape[0]));
        index += escape[0].length;
        continue;
      }
      const char = data[index]!;
      index++;
      if (char === '\r' || char === '\n') actions.push(...this.enter());
      else if (char === '\x7f' || char === '\b') actions.push(...this.backspace());
      else if (char === '\x03') {
        this.line = '';
        this.cursor = 0;
        this.block = [];
        actions.push({ kind: 'echo', text: '^C\r\n' }, { kind: 'interrupt' }, { kind: 'echo', text: PROMPT });
      } else if (char >= ' ' || char === '\t') {
        const text = char === '\t' ? '    ' : char;
        this.line = this.line.slice(0, this.cursor) + text + this.line.slice(this.cursor);
        this.cursor += text.length;
        const rest = this.line.slice(this.cursor);
        actions.push({ kind: 'echo', text: text + rest + (rest ? `\x1b[${rest.length}D` : '') });
      }
    }
    return actions;
  }

  private enter(): ReplAction[] {
    const line = this.line;
    this.line = '';
    this.cursor = 0;
    const echo: ReplAction = { kind: 'echo', text: '\r\n' };
    if (this.block.length > 0) {
      if (line.trim() !== '') {
        this.block.push(line);
        return [echo, { kind: 'echo', text: CONTINUATION }];
      }
      const code = this.block.join('\n');
      this.block = [];
      this.remember(code);
      return [echo, { kind: 'run', code, single: true }];
    }
    if (line.trim() === '') return [echo, { kind: 'echo', text: PROMPT }];
    if (/:\s*(#.*)?$/.test(line) || /\\$/.test(line)) {
      this.block.push(line);
      return [echo, { kind: 'echo', text: CONTINUATION }];
    }
    this.remember(line);
    return [echo, { kind: 'run', code: line, single: true }];
  }

  private paste(data: string): ReplAction[] {
    const lines = data.replace(/\r\n?/g, '\n').replace(/\n+$/, '').split('\n');
    const code = [...this.block, this.line.slice(0, this.cursor) + lines[0], ...lines.slice(1)].join('\n');
    this.block = [];
    this.line = '';
    this.cursor = 0;
    this.remember(code);
    return [
      { kind: 'echo', text: lines.join('\r\n... ') + '\r\n' },
      { kind: 'run', code, single: false },
    ];
  }

  private backspace(): ReplAction[] {
    if (this.cursor === 0) return [];
    this.line = this.line.slice(0, this.cursor - 1) + this.line.slice(this.cursor);
    this.cursor--;
    const rest = this.line.slice(this.cursor);
    return [{ kind: 'echo', text: `\b${rest} \x1b[${rest.length + 1}D` }];
  }

  private arrow(sequence: string): ReplAction[] {
    const key = sequence[2];
    if (key === 'D' && this.cursor > 0) {
      this.cursor--;
      return [{ kind: 'echo', text: '\x1b[D' }];
    }
    if (key === 'C' && this.cursor < this.line.length) {
      this.cursor++;
      return [{ kind: 'echo', text: '\x1b[C' }];
    }
    if (key === 'A' || key === 'B') {
      if (this.history.length === 0) return [];
      this.historyIndex = Math.max(0, Math.min(this.history.length, this.historyIndex + (key === 'A' ? -1 : 1)));
      const next = this.history[this.historyIndex] ?? '';
      const erase = `\r\x1b[K${this.prompt}`;
      this.line = next;
      this.cursor = next.length;
      return [{ kind: 'echo', text: erase + next }];
    }
    return [];
  }

  /** Single lines only: the console edits one line at a time. */
  private remember(code: string): void {
    if (code.includes('\n')) return;
    if (this.history[this.history.length - 1] !== code) this.history.push(code);
    if (this.history.length > this.maxHistory) this.history.shift();
    this.historyIndex = this.history.length;
  }
}

/**
 * The code sent to the board for a console entry. A typed statement is compiled in the
 * REPL's "single" mode, so an expression's value is printed as at a `>>>` prompt; boards
 * whose MicroPython lacks compile() run it plainly. A pasted block runs as written.
 */
export function consoleCode(code: string, single: boolean): string {
  if (!single) return code;
  const literal = JSON.stringify(code);
  return `try:\n    __cm_c = compile(${literal}, '<stdin>', 'single')\nexcept NameError:\n    __cm_c = ${literal}\nexec(__cm_c)\n`;
}

/**
 * The line editor of the simulated board's friendly REPL (MicroPython's readline as an
 * ESP8266 build has it), fed one byte at a time.
 *
 * Behaviour kept: echo of printable characters, backspace (`\b \b`), Enter (`\r\n`),
 * control characters on an empty line handed to the REPL (Ctrl-A/B/C/D/E), Ctrl-C on a
 * non-empty line cancels it, continuation lines (`... `) for compound statements, open
 * brackets, triple quotes and backslashes, with auto-indent (4 spaces after a `:`; Enter
 * straight after an auto-indent removes it, ending the block).
 * Left out (a simulator shortcut): cursor movement and history (escape sequences are
 * swallowed), emacs keys, tab completion (a tab on a blank line inserts 4 spaces, else
 * nothing).
 */

export type ReadlineEvent =
  /** The statement is complete: execute `source`. */
  | { kind: 'execute'; source: string }
  /** Ctrl-C: input cancelled (`\r\n` and a new prompt). */
  | { kind: 'cancel' }
  /** Enter on an empty line: just a new prompt. */
  | { kind: 'empty' }
  /** A control character on an empty first line: the REPL decides (A raw, B banner, D reset, E paste). */
  | { kind: 'control'; char: number };

export interface ReadlineResult {
  /** What the board echoes. */
  echo: string;
  event?: ReadlineEvent;
}

const CTRL_A = 0x01;
const CTRL_C = 0x03;
const CTRL_D = 0x04;
const CTRL_E = 0x05;
const ESC = 0x1b;
const COMPOUND = /^(@|(if|while|for|try|with|def|class|async)\b)/;

export const PS1 = '>>> ';
export const PS2 = '... ';

export class FriendlyReadline {
  /** Previous lines of a statement being continued, joined by '\n' (empty: first line). */
  private previous = '';
  private line = '';
  /** Spaces auto-indent just added to this line (undone by Enter or a backspace). */
  private autoIndent = 0;
  private escape: 'none' | 'esc' | 'csi' = 'none';
  /** Bytes of a UTF-8 character not yet complete. */
  private pending: number[] = [];

  /** Starts a new statement (after a prompt was printed). */
  reset(): void {
    this.previous = '';
    this.line = '';
    this.autoIndent = 0;
    this.escape = 'none';
    this.pending = [];
  }

  get continuing(): boolean {
    return this.previous !== '';
  }

  feed(c: number): ReadlineResult {
    if (this.escape !== 'none') return this.swallowEscape(c);
    if (c === ESC) {
      this.escape = 'esc';
      return { echo: '' };
    }
    const empty = this.line.length === this.autoIndent && this.line.trim() === '';
    if (c >= CTRL_A && c <= CTRL_E && this.line === '' && !this.continuing) return { echo: '', event: { kind: 'control', char: c } };
    if (c === CTRL_C) return { echo: '', event: { kind: 'cancel' } };
    if (c === CTRL_D && this.continuing && empty) return { echo: '', event: { kind: 'execute', source: this.previous } };
    if (c === 0x0d) return this.enter();
    if (c === 0x08 || c === 0x7f) return this.backspace();
    if (c === 0x09) {
      if (this.line.trim() !== '') return { echo: '' };
      this.line += '    ';
      return { echo: '    ' };
    }
    if (c >= 0x20 && c <= 0x7e) {
      this.line += String.fromCharCode(c);
      this.autoIndent = 0;
      return { echo: String.fromCharCode(c) };
    }
    if (c >= 0x80) return this.utf8(c);
    return { echo: '' };
  }

  private enter(): ReadlineResult {
    if (this.autoIndent > 0 && this.line.trim() === '') this.line = ''; // Enter right after an auto-indent ends the block
    this.autoIndent = 0;
    const source = this.continuing ? `${this.previous}\n${this.line}` : this.line;
    if (!this.continuing && this.line === '') return { echo: '\r\n', event: { kind: 'empty' } };
    if (!continueWithInput(source)) return { echo: '\r\n', event: { kind: 'execute', source } };
    const indent = autoIndentFor(this.line);
    this.previous = source;
    this.line = ' '.repeat(indent);
    this.autoIndent = indent;
    return { echo: `\r\n${PS2}${this.line}` };
  }

  private backspace(): ReadlineResult {
    if (this.line === '') return { echo: '' };
    // A backspace right after an auto-indent takes back a whole indent level.
    const n = this.autoIndent > 0 && this.line.trim() === '' ? Math.min(4, this.line.length) : 1;
    const chars = [...this.line];
    this.line = chars.slice(0, chars.length - n).join('');
    this.autoIndent = Math.max(0, this.autoIndent - n);
    return { echo: '\b \b'.repeat(n) };
  }

  private utf8(c: number): ReadlineResult {
    this.pending.push(c);
    const first = this.pending[0] ?? 0;
    const need = first >= 0xf0 ? 4 : first >= 0xe0 ? 3 : first >= 0xc0 ? 2 : 1;
    if (this.pending.length < need) return { echo: '' };
    const text = Buffer.from(this.pending).toString('utf8');
    this.pending = [];
    this.line += text;
    this.autoIndent = 0;
    return { echo: text };
  }

  private swallowEscape(c: number): ReadlineResult {
    if (this.escape === 'esc') this.escape = c === 0x5b || c === 0x4f ? 'csi' : 'none';
    else if (c >= 0x40 && c <= 0x7e) this.escape = 'none';
    return { echo: '' };
  }
}

/**
 * Whether the friendly REPL asks for another line (MicroPython's rule): unclosed triple
 * quotes; unclosed brackets outside a string; a trailing backslash; or a compound
 * statement (or decorator) whose last line is not empty.
 */
export function continueWithInput(source: string): boolean {
  if (source === '') return false;
  let depth = 0;
  let quote: '' | "'" | '"' | "'''" | '"""' = '';
  for (let i = 0; i < source.length; i++) {
    const ch = source[i]!;
    if (quote) {
      if (ch === '\\') i++;
      else if (quote.length === 3 ? source.startsWith(quote, i) : ch === quote) {
        i += quote.length - 1;
        quote = '';
      }
    } else if (ch === '#') {
      while (i + 1 < source.length && source[i + 1] !== '\n') i++;
    } else if (ch === "'" || ch === '"') {
      const triple = source.startsWith(ch.repeat(3), i);
      quote = triple ? (ch === "'" ? "'''" : '"""') : ch;
      if (triple) i += 2;
    } else if ('([{'.includes(ch)) {
      depth++;
    } else if (')]}'.includes(ch)) {
      depth--;
    }
  }
  if (quote.length === 3) return true;
  if (depth > 0 && quote === '') return true;
  if (source.endsWith('\\')) return true;
  return COMPOUND.test(source) && !source.endsWith('\n');
}

/** Indent of the next continuation line: the last line's, plus 4 after a ':'. */
function autoIndentFor(lastLine: string): number {
  const indent = lastLine.length - lastLine.trimStart().length;
  return lastLine.trimEnd().endsWith(':') ? indent + 4 : indent;
}

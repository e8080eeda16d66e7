/**
 * What a board's compiler finds in raw-paste code while it streams in. MicroPython
 * compiles raw-paste code as it reads it (shared/runtime/pyexec.c: the lexer reads from
 * the UART); at the first token that cannot continue a program the parser raises
 * SyntaxError, the reader is closed — the board sends `\x04` and drops what arrives until
 * the host's `\x04` — and the traceback follows as the exec's error output.
 *
 * The lab cannot stop a compiler in the middle, so it compiles what has arrived (with a
 * second, shared MicroPython 1.27 WebAssembly instance) and calls an error *definite* when
 * no more input could mend it: the prefix is cut after the last complete logical line (no
 * string, bracket or backslash continuation open), and the error lies on a line before
 * that prefix's last one. Errors a later line could still mend ("try:" waiting for its
 * "except", a block waiting for its body, an unclosed bracket or triple-quoted string) sit
 * on or after the last line, so valid code is never cut short.
 */
import { loadMicroPython, type MicroPython } from '@micropython/micropython-webassembly-pyscript';

const CHECK = `import io, sys
def _cm_check(src):
    try:
        compile(src, '<stdin>', 'exec')
        return ''
    except SyntaxError as e:
        buf = io.StringIO()
        sys.print_exception(e, buf)
        return buf.getvalue()
`;

let shared: Promise<SyntaxChecker> | undefined;

export interface SyntaxFinding {
  /** The error's line (1-based). */
  line: number;
  /** What the board prints for it (\n line ends): "Traceback …\n  File "<stdin>", line 2\nSyntaxError: invalid syntax\n". */
  traceback: string;
}

export class SyntaxChecker {
  private constructor(private readonly mp: MicroPython) {
    mp.runPython(CHECK);
  }

  /** One instance per process, loaded on first use. */
  static load(): Promise<SyntaxChecker> {
    shared ??= loadMicroPython({ heapsize: 512 * 1024, stdout: () => undefined, stderr: () => undefined }).then((mp) => new SyntaxChecker(mp));
    return shared;
  }

  /** The syntax error in `source`, or null when it compiles. */
  check(source: string): SyntaxFinding | null {
    this.mp.globals.set('_cm_src', source);
    this.mp.runPython('_cm_result = _cm_check(_cm_src)\n_cm_src = None');
    const text = String(this.mp.globals.get('_cm_result') ?? '');
    if (!text) return null;
    // Drop the checker's own frame: the board's traceback has only the code's.
    const traceback = text
      .split('\n')
      .filter((line) => !line.includes('in _cm_check'))
      .join('\n');
    const lines = [...traceback.matchAll(/line (\d+)/g)];
    return { line: Number(lines.at(-1)?.[1] ?? 0), traceback };
  }

  /** A syntax error no further input can mend, in code received so far (see the file comment); null otherwise. */
  definiteError(received: string): SyntaxFinding | null {
    const prefix = received.slice(0, cleanPrefixEnd(received));
    const lines = prefix.split('\n').length - 1;
    if (lines < 2) return null;
    const finding = this.check(prefix);
    return finding && finding.line > 0 && finding.line < lines ? finding : null;
  }
}

/** Offset just past the last newline where no string, bracket or backslash continuation is open. */
export function cleanPrefixEnd(source: string): number {
  let depth = 0;
  let quote: string | null = null;
  let clean = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (source.startsWith(quote, i)) {
        i += quote.length - 1;
        quote = null;
      } else if (c === '\n' && quote.length === 1) quote = null; // an unterminated string: an error on this line
      continue;
    }
    if (c === '#') {
      while (i + 1 < source.length && source[i + 1] !== '\n') i++;
    } else if (c === '"' || c === "'") {
      quote = source.startsWith(c.repeat(3), i) ? c.repeat(3) : c;
      i += quote.length - 1;
    } else if (c === '(' || c === '[' || c === '{') {
      depth++;
    } else if (c === ')' || c === ']' || c === '}') {
      depth = Math.max(0, depth - 1);
    } else if (c === '\\' && (source[i + 1] === '\n' || (source[i + 1] === '\r' && source[i + 2] === '\n'))) {
      i += source[i + 1] === '\r' ? 2 : 1; // a continued line: this newline ends nothing
    } else if (c === '\n' && depth === 0) {
      clean = i + 1;
    }
  }
  return clean;
}

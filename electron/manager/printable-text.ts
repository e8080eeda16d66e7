/**
 * Text that came from outside (a board's hello, a file name on a board, an error a board
 * reported) is data: printed raw, an escape sequence in it would clear the user's
 * terminal, recolour it, ring its bell or rewrite what was printed before. Here is the one
 * definition of the characters that can do that, and the one way they are made visible.
 */

/**
 * C0 controls, DEL, C1 controls (U+0080–U+009F: 0x9B is a one-character CSI for terminals
 * that read C1), and the bidirectional overrides and isolates, which reorder what a reader
 * sees without any escape sequence.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const CONTROL_ALL = new RegExp(CONTROL.source, 'g');
/** The same, except the line breaks and tabs of multi-line text (a lone CR is still escaped: it rewrites the line). */
const CONTROL_BUT_LINES = /\r(?!\n)|[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Whether `text` holds any control character (line breaks and tabs included). */
export function hasControlCharacters(text: string): boolean {
  return CONTROL.test(text);
}

/**
 * `text` with every control character written as a visible `\uXXXX`. With `keepLines`,
 * line breaks (LF, CRLF) and tabs stay as they are. The `\uXXXX` form is also a valid
 * JSON escape, so JSON text stays valid JSON meaning the same after this.
 */
export function escapeControlCharacters(text: string, options: { keepLines?: boolean } = {}): string {
  const pattern = options.keepLines ? CONTROL_BUT_LINES : CONTROL_ALL;
  return text.replace(pattern, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

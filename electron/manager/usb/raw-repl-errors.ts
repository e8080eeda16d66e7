/** The errors of MicroPython's raw REPL from the host (raw-repl.ts). */

/** The board did not answer in time. */
export class RawReplTimeoutError extends Error {
  override readonly name = 'RawReplTimeoutError';
}

/** The board answered something the protocol does not allow. */
export class RawReplProtocolError extends Error {
  override readonly name = 'RawReplProtocolError';
}

/** The serial port closed (or a write failed) during an operation. */
export class RawReplClosedError extends Error {
  override readonly name = 'RawReplClosedError';
}

/** The code raised on the board; `traceback` is what it printed to stderr. */
export class RawReplError extends Error {
  override readonly name = 'RawReplError';
  constructor(
    readonly traceback: string,
    readonly stdout: string,
  ) {
    super(lastLine(traceback) || 'the code failed on the board');
  }
}

function lastLine(text: string): string {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  return lines[lines.length - 1] ?? '';
}

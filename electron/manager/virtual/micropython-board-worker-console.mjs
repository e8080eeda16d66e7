// @ts-check
// The board's console output, for the board lab's worker (micropython-board-worker.mjs):
// batched per line to the parent as 'console' messages; captured instead while run()
// (for its result) or the lab itself (its own output: no console, no dupterm) listens.

const STREAMS = /** @type {const} */ (['stdout', 'stderr']);

export class BoardConsole {
  /** @param {import('node:worker_threads').MessagePort} port */
  constructor(port) {
    this.port = port;
    this.buf = new Uint8Array(512);
    this.len = 0;
    this.stream = 0;
    /** [stdout, stderr, both in the order written] while captured. @type {number[][] | null} */
    this.capture = null;
    /** > 0 while the lab captures output for itself (not the board's: no console, no dupterm). */
    this.internal = 0;
    /** os.dupterm's JavaScript half, once the interpreter is loaded. @type {{ consoles(): number, toSlots(bytes: Uint8Array): void } | null} */
    this.dupterm = null;
  }

  flush() {
    if (this.len === 0) return;
    const data = this.buf.slice(0, this.len);
    this.len = 0;
    this.port.postMessage({ type: 'console', stream: STREAMS[this.stream], data }, [data.buffer]);
  }

  /** What reaches UART(0): to the parent, or into the capture. @param {number} stream @param {Uint8Array} bytes */
  write(stream, bytes) {
    const capture = this.capture;
    if (capture) {
      for (const byte of bytes) {
        capture[stream]?.push(byte);
        capture[2]?.push(byte);
      }
      return;
    }
    if (stream !== this.stream) {
      this.flush();
      this.stream = stream;
    }
    for (const byte of bytes) {
      this.buf[this.len++] = byte;
      if (byte === 10 || this.len === this.buf.length) this.flush();
    }
  }

  /**
   * What the board's REPL prints (mp_hal_stdout_tx_strn on a board): the console (UART(0),
   * once per dupterm slot holding it), then the dupterm slots holding Python streams.
   * @param {number} stream @param {Uint8Array} bytes
   */
  output(stream, bytes) {
    if (this.internal || !this.dupterm) return this.write(stream, bytes);
    for (let n = this.dupterm.consoles(); n > 0; n--) this.write(stream, bytes);
    this.dupterm.toSlots(bytes);
  }

  /**
   * Runs `fn` with the output captured for the lab (not the board's); returns [stdout, stderr].
   * @param {() => void} fn
   * @returns {[number[], number[]]}
   */
  internally(fn) {
    const outer = this.capture;
    /** @type {[number[], number[]]} */
    const capture = [[], []];
    this.capture = capture;
    this.internal++;
    try {
      fn();
    } finally {
      this.internal--;
      this.capture = outer;
    }
    return capture;
  }
}

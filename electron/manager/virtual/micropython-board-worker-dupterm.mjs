// @ts-check
// os.dupterm for the board lab's worker (micropython-board-worker.mjs): the JavaScript
// half of lab-python/_cm_dupterm.py, registered as `_cm_lab_term`.
//
// On an ESP8266, mp_hal_stdout_tx_strn() (everything the REPL prints: print(),
// sys.stdout/sys.stderr writes, tracebacks) calls mp_os_dupterm_tx_strn(), which hands
// the piece to each of the 2 slots; slot 1 holds UART(0), the USB console. Here the
// interpreter's stdout and stderr file descriptors are patched so that each write()
// syscall (one mp_hal_stdout_tx_strn piece) arrives whole; the worker writes it to its
// console once per slot holding UART(0), then tx() gives it to the slots holding Python
// streams, in a borrowed buffer outside the GC heap that is zeroed after the call.
//
// Where the lab is simpler than MicroPython 1.27 on an ESP8266:
// - stdout and stderr are the console's two streams here and are not "cooked": a board
//   sends "\n" as "\r\n" (mp_hal_stdout_tx_strn_cooked) to every slot, so a real
//   board's captured output has "\r\n" where the lab's has "\n".
// - UART(0) in a slot is the lab's console as a whole: detaching it silences the console
//   events and the REPL output of run(), but the console's input (run() requests, Ctrl-C)
//   still reaches the REPL; a board would hand it to UART(0)'s own buffer instead.
//   UART(1) in a slot shows nothing. The console gets each piece before the slots do (a
//   board goes by slot number), and a UART's write() is never called from a slot (the C
//   code writes a built-in stream without Python either).
// - A piece is passed whole unless it does not fit in what is left of the 16 KB borrowed
//   buffer (nested writes share it): then it takes several write() calls, and output
//   nested deeper than the buffer is dropped (logged). Each write() call leaves a 16-byte
//   bytearray object as garbage (on a board it lives on the C stack).
// - A write() that prints recurses until the C stack runs out on a board, and whichever
//   slot's call is running then gets the RuntimeError; here a slot whose write() is
//   8 deep gets it, and only that slot is deactivated.
// - The traceback in "dupterm: Exception in ... deactivating: " leaves out the lab's own
//   frames (a board has no Python frames there: its dupterm is C).
// - `os` is the port's frozen Python package with dupterm added (C on a board), and
//   os.dupterm is a Python function: a keyword argument raises TypeError with another
//   message; whether an object is a stream (mp_get_stream_raise) is judged from Python:
//   an io.IOBase instance, or a built-in object with readinto() and write(); a write()
//   returning more than it was given counts as done (undefined in C).
// - Input: as on the ESP8266 (modos.c), the slots' readinto() is only called after
//   os.dupterm_notify(); the lab serves that between two firmware steps (a board runs the
//   task when the SDK loop next runs: in a sleep, a socket wait, at the REPL), not while
//   main.py runs or the board is idle. Bytes go to a 256-byte buffer that sys.stdin
//   reads without blocking (the port's own stdin when it is empty); byte 3 is always
//   Ctrl-C (micropython.kbd_intr() is not seen) and stops the program as interrupt()
//   does.
import { heapU8 } from './micropython-board-worker-memory.mjs';

/** Room for the borrowed buffers given to the slots' write(), nested calls included. */
const BORROWED_BYTES = 16 * 1024;
/** The ESP8266's stdin ring buffer (esp_mphal.c); a ring keeps one byte free. */
const STDIN_BYTES = 256;
/** What poll() returns when Ctrl-C came in. */
const POLL_INTERRUPT = 3;

/**
 * @param {{
 *   module: { _malloc(n: number): number },
 *   FS: any,
 *   console: (stream: number, bytes: Uint8Array) => void,
 *   log: (level: string, message: string) => void,
 * }} options
 */
export function createTerm(options) {
  const { module, FS, log } = options;
  const borrowed = module._malloc(BORROWED_BYTES);
  const rxByte = module._malloc(4);
  if (!borrowed || !rxByte) throw new Error('no room for the dupterm buffers');
  let top = 0;
  /** Slots holding Python streams, and slots holding UART(0) (the console). */
  let slots = 0;
  let consoles = 1;
  let notified = false;
  /** @type {number[]} */
  const stdin = [];
  /** @type {{ tx: (addr: number, n: number) => unknown, poll: () => number } | null} */
  let py = null;

  /** Registered as `_cm_lab_term`: what _cm_dupterm.py and machine.UART call. */
  const jsModule = {
    slots(/** @type {number} */ n, /** @type {number} */ c) {
      slots = n;
      consoles = c;
    },
    rx_buffer() {
      return rxByte;
    },
    notify() {
      notified = true;
    },
    stdin_put(/** @type {number} */ c) {
      if (stdin.length < STDIN_BYTES - 1) stdin.push(c);
    },
    /** UART(0).write(): straight to the console, not through the slots. */
    console(/** @type {number} */ addr, /** @type {number} */ n) {
      options.console(0, heapU8().slice(addr, addr + n));
    },
  };

  return {
    module: jsModule,

    /**
     * Routes the interpreter's fd 1 and 2 to `output` one write() syscall at a time, and
     * serves fd 0 from the dupterm input first.
     * @param {(stream: number, bytes: Uint8Array) => void} output
     */
    install(output) {
      for (const [fd, stream] of [
        [1, 0],
        [2, 1],
      ]) {
        const s = FS.getStream(fd);
        s.stream_ops = {
          ...s.stream_ops,
          write: (/** @type {unknown} */ _s, /** @type {Int8Array} */ buffer, /** @type {number} */ offset, /** @type {number} */ length) => {
            output(/** @type {number} */ (stream), new Uint8Array(buffer.buffer, buffer.byteOffset + offset, length));
            return length;
          },
        };
      }
      const input = FS.getStream(0);
      const ops = input.stream_ops;
      input.stream_ops = {
        ...ops,
        read: (
          /** @type {unknown} */ s,
          /** @type {Int8Array} */ buffer,
          /** @type {number} */ offset,
          /** @type {number} */ length,
          /** @type {number} */ pos,
        ) => {
          if (stdin.length === 0) return ops.read(s, buffer, offset, length, pos);
          let n = 0;
          while (n < length && stdin.length > 0) buffer[offset + n++] = /** @type {number} */ (stdin.shift());
          return n;
        },
      };
    },

    /** After the shims were imported: the Python half (lab-python/_cm_dupterm.py). */
    bind(/** @type {any} */ dupterm) {
      py = { tx: dupterm.tx, poll: dupterm.poll };
    },

    /** How many times the console shows each piece of output (slots holding UART(0)). */
    consoles() {
      return consoles;
    },

    /** Hands a piece of output to the slots holding Python streams. */
    toSlots(/** @type {Uint8Array} */ bytes) {
      if (slots === 0 || !py) return;
      const data = bytes.slice(); // the original may move while Python runs
      for (let off = 0; off < data.length;) {
        const n = Math.min(BORROWED_BYTES - top, data.length - off);
        if (n <= 0) {
          log('warn', `dupterm: ${data.length - off} B of output nested too deep for the borrowed buffer, dropped`);
          return;
        }
        const addr = borrowed + top;
        heapU8().set(data.subarray(off, off + n), addr);
        top += n;
        try {
          py.tx(addr, n);
        } catch (error) {
          log('error', `dupterm: ${error instanceof Error ? error.message : String(error)}`);
        } finally {
          heapU8().fill(0, addr, addr + n); // borrowed: a write() that kept it sees zeros
          top -= n;
        }
        off += n;
      }
    },

    /**
     * Serves an os.dupterm_notify(): reads the slots' input through `call` (which runs
     * Python). Returns true if Ctrl-C came in.
     * @param {(fn: () => number) => number | undefined} call
     */
    serveInput(call) {
      if (!notified) return false;
      notified = false;
      if (slots === 0 || !py) return false;
      const poll = py.poll;
      return call(() => poll()) === POLL_INTERRUPT;
    },
  };
}

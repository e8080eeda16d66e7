// @ts-check
// Worker-thread entry of the shared MicroPython interpreter (see micropython-interpreter.ts).
//
// Plain JavaScript because Node 20 cannot load TypeScript in a worker, type-checked all the
// same (JSDoc types; tsconfig.json has checkJs); the build copies this file next to the
// compiled interpreter module.
//
// Protocol (parent -> worker), one request at a time, answered in order:
//   { type: 'exec',  id, context, code }  -> 'output'* then { type: 'done', id, status, error?, interrupted }
//   { type: 'reset', id, context }        -> { type: 'done', id, status: 'ok' }
//   { type: 'info',  id }                 -> { type: 'done', id, status: 'ok', info }
// Worker -> parent, unsolicited: { type: 'ready' } once the interpreter is loaded,
//   { type: 'output', id, stream: 'stdout'|'stderr', data: Uint8Array } while code runs, and
//   { type: 'log', level, message } for diagnostics the Emscripten runtime writes.
//
// Why the output hook matters: runPython is synchronous, so this thread's event loop is
// blocked while user code runs. The per-byte stdout/stderr callbacks are the only JS that
// runs meanwhile, so they (a) post output to the parent, which the parent receives at once
// (postMessage does not need this thread's event loop), and (b) poll the interrupt flag
// the parent sets with Atomics, turning it into a KeyboardInterrupt.
import { parentPort, workerData } from 'node:worker_threads';
import { loadMicroPython } from '@micropython/micropython-webassembly-pyscript';
import { FlashMirror } from './micropython-board-worker-flash.mjs';
import { removeTree, routeConsoleToLog } from './micropython-board-worker-boot.mjs';
import { raiseEsp8266Errnos } from './micropython-board-worker-errno.mjs';

/**
 * @typedef {{ heapBytes: number, interruptBuffer: SharedArrayBuffer, filesDir?: string }} WorkerData
 * @typedef {{ type: 'exec', id: number, context: string, code: string }
 *   | { type: 'reset', id: number, context: string }
 *   | { type: 'info', id: number }} Request
 */

if (!parentPort) throw new Error('micropython-worker.mjs must run as a worker thread');
const port = parentPort;
const { heapBytes, interruptBuffer, filesDir } = /** @type {WorkerData} */ (workerData);

// Emscripten reports problems (e.g. "Aborted(...)") with console.*, bound when the module
// is created, so replace console first and hand those lines to the parent's onLog.
// (Capturing the worker's stdio streams instead would keep the parent process alive:
// a Worker's stdout/stderr stream that is being read holds a ref even after unref().)
routeConsoleToLog((message) => port.postMessage(message));

// Slot 0 holds the id of the exec the parent wants interrupted (0: none). Comparing ids,
// not a boolean, means a late request for an exec that already finished cannot hit the
// next one.
const interruptFlag = new Int32Array(interruptBuffer);

// Output batching: one buffer for both streams, flushed at each newline, when full, when
// the stream changes (so stdout/stderr keep their relative order) and at the end of exec.
const FLUSH_BYTES = 256;
const STREAMS = /** @type {const} */ (['stdout', 'stderr']);
const outBuf = new Uint8Array(FLUSH_BYTES);
let outLen = 0;
let outStream = 0;
let currentId = 0;
let interruptScheduled = false;
/** @type {any} */
let mpModule;

function flush() {
  if (outLen === 0) return;
  const data = outBuf.slice(0, outLen);
  outLen = 0;
  port.postMessage({ type: 'output', id: currentId, stream: STREAMS[outStream], data }, [data.buffer]);
}

/** @param {number} stream @param {Uint8Array} bytes */
function write(stream, bytes) {
  if (currentId !== 0 && !interruptScheduled && Atomics.load(interruptFlag, 0) === currentId) {
    // Raised by the VM at its next pending-exception check (loop jumps, sleeps).
    interruptScheduled = true;
    mpModule._mp_sched_keyboard_interrupt();
  }
  if (stream !== outStream) {
    flush();
    outStream = stream;
  }
  for (let i = 0; i < bytes.length; i++) {
    const byte = /** @type {number} */ (bytes[i]);
    outBuf[outLen++] = byte;
    if (byte === 10 || outLen === FLUSH_BYTES) flush();
  }
}

const mp = await loadMicroPython({
  heapsize: heapBytes,
  linebuffer: false,
  stdout: (/** @type {Uint8Array} */ b) => write(0, b),
  stderr: (/** @type {Uint8Array} */ b) => write(1, b),
});
// `_module` is the Emscripten module; it exports the C function the REPL's Ctrl-C uses.
mpModule = mp._module;
raiseEsp8266Errnos(mp.FS); // OSError(2) for a missing file, as on a board, not Emscripten's 44

// With `filesDir` the interpreter's `/` is that host folder (see the option in
// micropython-interpreter.ts). Others write to the folder between execs (the board's file
// operations), so it is read again before each exec; what the code changed is written back
// after it. Emscripten's own /tmp, /home, /dev and /proc go, as on the board lab's.
/** @type {FlashMirror | undefined} */
let files;
if (filesDir) {
  mp.FS.rmdir('/proc/self/fd'); // a mount point: remove it first, non-recursively
  for (const dir of ['tmp', 'home', 'proc', 'dev']) removeTree(mp.FS, `/${dir}`);
  files = new FlashMirror(mp.FS, filesDir, (level, message) => port.postMessage({ type: 'log', level, message }));
}

function loadFiles() {
  if (!files) return;
  for (const name of mp.FS.readdir('/')) if (name !== '.' && name !== '..') removeTree(mp.FS, `/${name}`);
  files.load();
}

// The helper is compiled under its own file name so its frame in tracebacks can be told
// apart from the user's code (which is compiled as "<string>") and dropped.
const HELPER_FILE = '<cloudmanager>';
const HELPER = `
import sys, io

_cm_contexts = {}

def _cm_globals(ctx):
    g = _cm_contexts.get(ctx)
    if g is None:
        g = {'__name__': '__main__'}
        _cm_contexts[ctx] = g
    return g

def _cm_report(e):
    # Returns [kind, last line]; kind 2 is KeyboardInterrupt, 1 anything else.
    buf = io.StringIO()
    sys.print_exception(e, buf)
    keep = [l for l in buf.getvalue().split('\\n') if not l.startswith('  File "${HELPER_FILE}"')]
    sys.stderr.write('\\n'.join(keep))
    last = ''
    for l in keep:
        if l:
            last = l
    return [2 if isinstance(e, KeyboardInterrupt) else 1, last]

def _cm_exec(ctx, code):
    try:
        exec(compile(code, '<string>', 'exec'), _cm_globals(ctx))
    except SystemExit:
        # sys.exit() ends the program; on a board it is not reported as an error either.
        return None
    except BaseException as e:
        return _cm_report(e)
    return None

def _cm_reset(ctx):
    _cm_contexts.pop(ctx, None)

def _cm_drain():
    # Consumes a KeyboardInterrupt that was scheduled but not raised before the code
    # ended; it would otherwise hit the next exec at its first loop.
    try:
        for _ in (0, 1):
            pass
    except KeyboardInterrupt:
        pass

def _cm_info():
    v = sys.implementation.version
    s = '%d.%d.%d' % (v[0], v[1], v[2])
    if len(v) > 3 and v[3]:
        s += '-' + v[3]
    return [s, sys.implementation.name, sys.implementation._mpy]
`;
// Run the helper in a dict of its own, so __main__ (which `import __main__` would reach)
// stays clean; the JS proxies of its functions keep them alive.
mp.globals.set('_cm_src', HELPER);
mp.runPython(`_cm_ns = {}\nexec(compile(_cm_src, '${HELPER_FILE}', 'exec'), _cm_ns)`);
const helpers =
  /** @type {{ _cm_exec: (context: string, code: string) => unknown, _cm_reset: (context: string) => void, _cm_drain: () => void, _cm_info: () => unknown }} */ (
    mp.globals.get('_cm_ns')
  );
const pyExec = helpers._cm_exec;
const pyReset = helpers._cm_reset;
const pyDrain = helpers._cm_drain;
const pyInfo = helpers._cm_info;
mp.globals.delete('_cm_ns');
mp.globals.delete('_cm_src');

/** @param {unknown} error */
function isKeyboardInterrupt(error) {
  return error instanceof Error && error.name === 'PythonError' && /** @type {any} */ (error).type === 'KeyboardInterrupt';
}

/** @param {number} id @param {string} context @param {string} code */
function runExec(id, context, code) {
  currentId = id;
  interruptScheduled = false;
  /** @type {'ok' | 'error'} */
  let status = 'ok';
  let error;
  let interrupted = false;
  try {
    const result = pyExec(context, code);
    if (result != null) {
      const [kind, last] = /** @type {[number, string]} */ (mp.PyProxy.toJs(result));
      status = 'error';
      error = last;
      interrupted = kind === 2 && interruptScheduled;
    }
  } catch (e) {
    // Only a KeyboardInterrupt landing inside the helper itself (after the user's code
    // returned, while reporting its error) gets here; anything else is a broken
    // interpreter: rethrow so the worker dies and the parent starts a fresh one.
    if (!isKeyboardInterrupt(e)) throw e;
    write(1, new TextEncoder().encode('Traceback (most recent call last):\nKeyboardInterrupt: \n'));
    status = 'error';
    error = 'KeyboardInterrupt: ';
    interrupted = interruptScheduled;
  }
  if (interruptScheduled && !interrupted) {
    try {
      pyDrain();
    } catch (e) {
      if (!isKeyboardInterrupt(e)) throw e;
    }
  }
  flush();
  currentId = 0;
  return { status, error, interrupted };
}

port.on('message', (/** @type {Request} */ msg) => {
  switch (msg.type) {
    case 'exec': {
      loadFiles();
      const result = runExec(msg.id, msg.context, msg.code);
      files?.sync();
      port.postMessage({ type: 'done', id: msg.id, ...result });
      break;
    }
    case 'reset':
      pyReset(msg.context);
      port.postMessage({ type: 'done', id: msg.id, status: 'ok' });
      break;
    case 'info': {
      const [version, implementation, mpyAbi] = /** @type {[string, string, number]} */ (mp.PyProxy.toJs(pyInfo()));
      port.postMessage({ type: 'done', id: msg.id, status: 'ok', info: { version, implementation, mpyAbi } });
      break;
    }
    default:
      throw new Error(`unknown request ${JSON.stringify(msg)}`);
  }
});

port.postMessage({ type: 'ready' });

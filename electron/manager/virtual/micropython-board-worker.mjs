// @ts-check
// Worker-thread entry of one simulated board (see micropython-board.ts): one MicroPython
// WebAssembly interpreter = one whole device, booted from the board's flash folder.
//
// Plain JavaScript because Node 20 cannot load TypeScript in a worker, type-checked all the
// same (JSDoc types; tsconfig.json has checkJs); the build copies this file, its sibling
// .mjs modules and lab-python/*.py next to the compiled JS.
//
// Boot: load the interpreter with the board's heap (plus room for the lab's own Python,
// hidden from the budget), route its stdout/stderr through os.dupterm
// (micropython-board-worker-dupterm.mjs), import the lab's shims (os.dupterm among
// them) from a directory the board never sees, set the heap budget up
// (micropython-board-worker-heap.mjs): lock the RAM (heapLimit 'memory-error') or not
// ('live-check': the live heap is checked after each step instead), set gc.threshold() and
// mount the filesystem as _boot.py does (micropython-board-worker-boot.mjs: copy the
// flash folder to `/`, or a first boot's initial setup, or the corrupt-filesystem loop),
// run boot.py, then (unless runMain is false: a soft reset into the raw REPL) either
// `import <firmware>; client = <firmware>.start()` and call client.step(wait) from the
// event loop, or run main.py as is.
//
// Ctrl-C (CTL_INTERRUPT in the shared buffer, then an 'interrupt' request): taken while
// Python runs, in a blocking network call (KeyboardInterrupt raised there) or a sleep (a
// KeyboardInterrupt scheduled with the port's mp_sched_keyboard_interrupt); between two
// firmware steps, the 'interrupt' request raises it in one last step. The program stops
// and the board stays at its REPL ('halted', reason 'interrupted').
//
// Parent -> worker: { type: 'run', id, code, single } | { type: 'heap', id } | { type: 'sync', id }
//   | { type: 'interrupt', id } (served between steps) | { type: 'power-cut', id, path, count }
//   -> { type: 'reply', id, ... }.
// Worker -> parent: 'log', 'console' (board output), 'call' / 'net' (the socket bridge,
//   see micropython-board-worker-host.mjs), 'booted', 'halted' (the program ended or
//   raised; the board sits at its REPL), 'fault' (out of memory, crash or power cut: reset me),
//   'machine-reset'.
import { parentPort, workerData } from 'node:worker_threads';
import { CTL_IN_STEP, CTL_FEED, CTL_INTERRUPT, CTL_PARK, sharedViews } from './micropython-board-protocol.mjs';
import { installMemoryHooks, setNapHook, setWakeCheck, wasmBytes } from './micropython-board-worker-memory.mjs';
import { BoardHeap } from './micropython-board-worker-heap.mjs';
import { FlashMirror } from './micropython-board-worker-flash.mjs';
import { raiseEsp8266Errnos } from './micropython-board-worker-errno.mjs';
import { watchFileChanges } from './micropython-board-worker-fat.mjs';
import { createHost } from './micropython-board-worker-host.mjs';
import { createTerm } from './micropython-board-worker-dupterm.mjs';
import { bootFilesystem, removeTree, routeConsoleToLog } from './micropython-board-worker-boot.mjs';
import { BoardConsole } from './micropython-board-worker-console.mjs';
import { importLabShims, labFunctions, labPython, LAB_DIR } from './micropython-board-worker-lab.mjs';

if (!parentPort) throw new Error('micropython-board-worker.mjs must run as a worker thread');
const port = parentPort;
/**
 * @type {{
 *   folder: string, heapBytes: number, heapLimit: 'memory-error' | 'live-check', stepWaitMs: number, maxIdleMs: number,
 *   wifi: { ssid: string, password: string }, uniqueId: string, resetCause: number, firmwareModule: string, runMain: boolean,
 *   shared: SharedArrayBuffer,
 *   timing: { initialSetupMs: number, corruptRepeatMs: number, wifiJoinMs: number, wifiWrongPasswordMs: number, wifiNoApMs: number },
 *   filesystem: { state: 'mounted' | 'blank' | 'corrupt' | 'none', format: 'littlefs' | 'fat' | null, startSector: number, blocks: number },
 *   wifiSettings: import('./micropython-board-worker-boot.mjs').WifiSettings,
 *   setupWifi?: import('./micropython-board-worker-boot.mjs').WifiSettings,
 * }}
 */
const config = workerData;

/** Room for the lab's own Python (shims, runtime) on top of the board's heap. */
const LAB_ALLOWANCE = 28 * 1024;
/** Scratch buffer outside the GC heap where received bytes land before bytes_at(). */
const SCRATCH_BYTES = 64 * 1024;

// Emscripten reports through console.* (bound when the module is created): route it to the
// parent's log, except refused memory growth, which is expected once the RAM is locked.
routeConsoleToLog((message) => port.postMessage(message), /^(growMemory: Attempted|Failed to grow the heap)/);
const log = (/** @type {string} */ level, /** @type {string} */ message) => port.postMessage({ type: 'log', level, message });

// --- console output: batched per line; during run() captured for its result instead ----
const con = new BoardConsole(port);
const flushConsole = () => con.flush();
const output = (/** @type {number} */ stream, /** @type {Uint8Array} */ bytes) => con.output(stream, bytes);

// --- load -----------------------------------------------------------------------------
installMemoryHooks();
const { loadMicroPython } = await import('@micropython/micropython-webassembly-pyscript');
const mp = await loadMicroPython({
  heapsize: config.heapBytes + LAB_ALLOWANCE,
  linebuffer: false,
  stdout: (/** @type {Uint8Array} */ b) => output(0, b),
  stderr: (/** @type {Uint8Array} */ b) => output(1, b),
});
const module = mp._module;
const FS = mp.FS;
raiseEsp8266Errnos(FS); // OSError(2) for a missing file, as on the ESP8266, not Emscripten's 44
const term = createTerm({ module, FS, console: (stream, bytes) => con.write(stream, bytes), log });
term.install(output);
con.dupterm = term;

// The GC's "max new split" is added to gc.mem_free(); read it once from mem_info().
const [infoOut] = con.internally(() => {
  mp.runPython('import gc, micropython\ngc.collect()');
  mp.runPython('micropython.mem_info()\n_cm_u0 = gc.mem_alloc()');
});
const memInfo = Buffer.from(infoOut).toString('latin1');
const splitMatch = /max new split: (\d+)/.exec(memInfo);
// Without it every figure would be off by 128 MiB: better not to boot at all.
if (!splitMatch) throw new Error(`unexpected micropython.mem_info() output: ${memInfo}`);
const maxNewSplit = Number(splitMatch[1]);
const freshUsed = Number(mp.globals.get('_cm_u0'));

// An empty root: the board's `/` is its flash, nothing else (Emscripten's /dev, /proc,
// /tmp and /home go; open standard streams keep working without their nodes).
FS.rmdir('/proc/self/fd'); // a mount point: remove it first, non-recursively
for (const dir of ['tmp', 'home', 'proc', 'dev']) removeTree(FS, `/${dir}`);

const scratch = module._malloc(SCRATCH_BYTES);
const { ctl } = sharedViews(config.shared);
/** True while the board's own Python runs (boot.py, the program, run()): Ctrl-C may land. */
let interruptible = false;
/** A KeyboardInterrupt was scheduled during the current call and may still be pending. */
let kbdScheduled = false;
/** Takes a pending Ctrl-C if the board's Python is running (else it waits for the request). */
const takeInterrupt = () => interruptible && Atomics.exchange(ctl, CTL_INTERRUPT, 0) === 1;
setWakeCheck(() => {
  if (!takeInterrupt()) return false;
  scheduleInterrupt();
  return true;
});
const host = createHost({
  port,
  shared: config.shared,
  scratch,
  scratchBytes: SCRATCH_BYTES,
  wifi: config.wifi,
  timing: config.timing,
  accessPoint: config.wifiSettings,
  uniqueId: config.uniqueId,
  resetCause: config.resetCause,
  beforeWait: flushConsole,
  // Files reach the host before anything the board says next: whoever hears from the
  // board (a test, the manager) finds on the host what the board wrote before speaking.
  beforeSend: () => flash.sync(),
  beforeReset: () => {
    flushConsole();
    flash.sync();
  },
  takeInterrupt,
});
mp.registerJsModule('_cm_lab_host', host.module);
mp.registerJsModule('_cm_lab_term', term.module);

importLabShims(mp, FS);
mp.globals.delete('_cm_u0');
const lab = labPython(mp);
// The board's names get a qstr pool of their own, set aside now and so hidden with the lab's
// Python: what the firmware holds no longer depends on how many names the shims use.
lab.qstr_room();
term.bind(mp.pyimport('_cm_dupterm'));
const py = labFunctions(lab);

const heap = new BoardHeap({
  py,
  lastMem: host.lastMem,
  call: callPython,
  module,
  log,
  heapBytes: config.heapBytes,
  heapLimit: config.heapLimit,
  maxNewSplit,
  freshUsed,
});
mp.runPython(`gc.threshold(${heap.boardThreshold})`);

const flash = new FlashMirror(FS, config.folder, log);
const fileChanges = watchFileChanges(FS, { fat: config.filesystem.format === 'fat', powerCut });
// A program that never returns (main.py) still gets its output and files out while it sleeps.
setNapHook(() => {
  flushConsole();
  flash.sync();
});

// --- driving the board --------------------------------------------------------------------
/** @type {NodeJS.Timeout | NodeJS.Immediate | undefined} */
let timer;
let halted = false;
/** What booted: 'firmware' (stepped), 'main' (main.py, or _boot.py's corrupt-filesystem loop) or 'idle'. */
let bootMode = 'idle';
/** What _boot.py found in the filesystem area. @type {'mounted' | 'formatted' | 'corrupt' | 'none'} */
let filesystem = 'mounted';
/** The long-running program of mode 'main': main.py, or the corrupt-filesystem loop. */
let program = runMain;

function scheduleInterrupt() {
  module._mp_sched_keyboard_interrupt();
  kbdScheduled = true;
}

/** Runs the board's own Python, where a Ctrl-C may land; never leaves one pending. */
function callProgram(/** @type {() => number} */ fn) {
  interruptible = true;
  try {
    return callPython(fn);
  } finally {
    interruptible = false;
    if (kbdScheduled) {
      kbdScheduled = false;
      callPython(() => py.drain());
    }
  }
}

/**
 * Calls into Python; a wasm trap (not a Python exception) means the board crashed.
 * @template T
 * @param {() => T} fn
 * @returns {T | -2 | undefined} -2: a MemoryError reached JavaScript; undefined: a crash
 */
function callPython(fn) {
  try {
    return fn();
  } catch (error) {
    const e = /** @type {any} */ (error);
    if (e?.name === 'PythonError' && e.type === 'MemoryError') return -2;
    crash(e);
    return undefined;
  }
}

/** The lab's power cut (see micropython-board-worker-fat.mjs): the flash keeps what it held; never returns. */
function powerCut(/** @type {string} */ what) {
  halted = true;
  flash.sync();
  port.postMessage({ type: 'fault', kind: 'power-cut', message: what });
  for (;;) Atomics.wait(ctl, CTL_PARK, 0);
}

function crash(/** @type {any} */ error) {
  halted = true;
  flushConsole();
  try {
    flash.sync();
  } catch {
    /* the JS side of MEMFS survives a trap; if not, the files stay as last saved */
  }
  port.postMessage({ type: 'fault', kind: 'crash', message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
}

/**
 * Prints the exception of the last failed call (via _cm_lab.report()) without the lab's
 * own frames, to the console or, during run(), to the run's stderr.
 */
function reportError() {
  const [, err] = con.internally(() => callPython(() => py.report()));
  const text = Buffer.from(err)
    .toString('utf8')
    .split('\n')
    .filter((line) => !line.startsWith(`  File "${LAB_DIR}/`))
    .join('\n');
  output(1, Buffer.from(text, 'utf8'));
}

/**
 * After a Python call that returned `rc` < 0: print the error, then stop or reset. Only a
 * MemoryError out of a running firmware's step() resets the board (a watchdog's job);
 * anything out of start() or main.py leaves it at its REPL, as on a board (and a reset
 * there would only loop).
 */
function fail(/** @type {number} */ rc, /** @type {string} */ during) {
  halted = true;
  reportError();
  flushConsole();
  flash.sync();
  if (rc === -2 && during === 'step()') port.postMessage({ type: 'fault', kind: 'memory', message: `MemoryError in ${during}` });
  else port.postMessage({ type: 'halted', reason: rc === -4 ? 'interrupted' : 'exception', during, memory: rc === -2 });
}

/** After a step or run: a board out of memory is reset (see BoardHeap.check). */
function overBudget(/** @type {'step' | 'run'} */ after) {
  const problem = heap.check(after);
  if (!problem) return false;
  halted = true;
  port.postMessage({ type: 'fault', kind: 'memory', message: problem });
  return true;
}

function step() {
  timer = undefined;
  if (halted) return;
  Atomics.store(ctl, CTL_IN_STEP, 1);
  Atomics.add(ctl, CTL_FEED, 1);
  const rc = callProgram(() => py.step(config.stepWaitMs));
  Atomics.store(ctl, CTL_IN_STEP, 0);
  if (rc === undefined) return;
  flushConsole();
  flash.sync();
  if (rc < 0) return fail(rc, 'step()');
  if (overBudget('step')) return;
  // Input a dupterm stream announced (os.dupterm_notify()): read it now, between steps.
  if (term.serveInput((fn) => callProgram(fn))) return interruptFirmware();
  flushConsole();
  // Returned 0: call again at once; otherwise wait, but not long (requests are served and
  // the firmware may want to be early rather than late).
  timer = rc === 0 ? setImmediate(step) : setTimeout(step, Math.min(rc, config.maxIdleMs));
}

function exists(/** @type {string} */ path) {
  return FS.analyzePath(path).exists;
}

function boot() {
  filesystem = bootFilesystem({
    config,
    mp,
    FS,
    flash,
    host,
    print: (text) => output(0, Buffer.from(text, 'utf8')),
    post: (message) => port.postMessage(message),
  });
  flushConsole();
  if (filesystem === 'corrupt') {
    // _boot.py never returns: the message repeats until Ctrl-C (with or without runMain).
    bootMode = 'main';
    program = runCorrupt;
    port.postMessage({ type: 'booted', mode: 'main', ...bootFacts() });
    timer = setImmediate(runCorrupt);
    return;
  }
  if (exists('/boot.py')) {
    // As on a board, an error in boot.py is printed and booting goes on.
    const rc = callProgram(() => py.runFile('boot.py'));
    if (rc === undefined) return;
    if (rc < 0) reportError();
    else {
      heap.notePeak();
      heap.settle();
    }
    flushConsole();
    flash.sync();
  }
  const name = config.firmwareModule;
  if (!config.runMain) {
    port.postMessage({ type: 'booted', mode: 'idle', ...bootFacts() });
  } else if (['/', '/lib/'].some((dir) => exists(`${dir}${name}.py`) || exists(`${dir}${name}.mpy`))) {
    bootMode = 'firmware';
    const rc = callProgram(() => py.start(name));
    if (rc === undefined) return;
    flushConsole();
    flash.sync();
    if (rc < 0) return fail(rc, 'start()');
    heap.notePeak();
    heap.collectForStep(); // the first step follows
    port.postMessage({ type: 'booted', mode: 'firmware', ...bootFacts() });
    timer = setImmediate(step);
  } else if (exists('/main.py')) {
    bootMode = 'main';
    port.postMessage({ type: 'booted', mode: 'main', ...bootFacts() });
    // main.py may block forever; the parent's start() has resolved already.
    timer = setImmediate(runMain);
  } else {
    port.postMessage({ type: 'booted', mode: 'idle', ...bootFacts() });
  }
}

function runMain() {
  timer = undefined;
  const rc = callProgram(() => py.runFile('main.py'));
  if (rc === undefined) return;
  flushConsole();
  flash.sync();
  if (rc < 0) return fail(rc, 'main.py');
  halted = true;
  port.postMessage({ type: 'halted', reason: 'program-ended' });
}

/** _boot.py with a corrupt filesystem area: inisetup.fs_corrupted(), until Ctrl-C. */
function runCorrupt() {
  timer = undefined;
  const { startSector, blocks } = config.filesystem;
  const rc = callProgram(() => py.corrupt(startSector, blocks, config.timing.corruptRepeatMs));
  if (rc === undefined) return;
  flushConsole();
  fail(rc < 0 ? rc : -4, '_boot.py');
}

/**
 * The 'interrupt' request, served when no Python runs. A Ctrl-C that landed already
 * (the program stopped, or a run() got it) leaves nothing to do; one that did not is
 * raised in the program now: in one more firmware step, or at the start of main.py.
 */
function interruptProgram() {
  const pending = Atomics.exchange(ctl, CTL_INTERRUPT, 0) === 1;
  if (!pending || halted || timer === undefined) return;
  if (bootMode === 'firmware') {
    clearTimeout(/** @type {NodeJS.Timeout} */ (timer));
    clearImmediate(/** @type {NodeJS.Immediate} */ (timer));
    timer = undefined;
    interruptFirmware();
  } else if (bootMode === 'main') {
    clearImmediate(/** @type {NodeJS.Immediate} */ (timer));
    scheduleInterrupt();
    program();
  }
}

/** Ctrl-C between two firmware steps: one more step raises KeyboardInterrupt, and the program stops. */
function interruptFirmware() {
  Atomics.store(ctl, CTL_IN_STEP, 1);
  scheduleInterrupt();
  const rc = callProgram(() => py.interrupted(config.stepWaitMs));
  Atomics.store(ctl, CTL_IN_STEP, 0);
  if (rc === undefined) return;
  flushConsole();
  flash.sync();
  fail(rc < 0 ? rc : -4, 'step()');
}

function bootFacts() {
  return { filesystem, hiddenBytes: heap.hidden, labPythonBytes: heap.labPythonBytes, heldBytes: heap.heldBytes, wasmBytes: wasmBytes() };
}

// Requests are handled between steps (this thread is busy during one).
port.on('message', (/** @type {{ type: string, id: number, code?: string, single?: boolean, path?: string, count?: number }} */ msg) => {
  switch (msg.type) {
    case 'run': {
      host.setCode(msg.code ?? '');
      con.capture = [[], [], []];
      const rc = callProgram(() => py.run(msg.single ? 1 : 0));
      // What the code printed, both streams as they interleaved (a board's console), then
      // the traceback of an uncaught exception (a board's raw REPL sends it apart).
      const printed = con.capture[2]?.length ?? 0;
      const printedErr = con.capture[1]?.length ?? 0;
      if (rc !== undefined && rc < 0) reportError();
      const [out = [], err = [], both = []] = con.capture;
      con.capture = null;
      flash.sync();
      const text = (/** @type {number[]} */ bytes) => Buffer.from(bytes).toString('utf8');
      port.postMessage({
        type: 'reply',
        id: msg.id,
        stdout: text(out),
        stderr: text(err),
        console: text(both.slice(0, printed)),
        traceback: text(err.slice(printedErr)),
        failed: rc !== 0,
        systemExit: rc === -3,
        interrupted: rc === -4,
      });
      if (rc !== undefined) overBudget('run');
      break;
    }
    case 'interrupt':
      interruptProgram();
      port.postMessage({ type: 'reply', id: msg.id });
      break;
    case 'heap':
      port.postMessage({ type: 'reply', id: msg.id, heap: heap.report() });
      break;
    case 'power-cut':
      fileChanges.armPowerCut(String(msg.path), Number(msg.count));
      port.postMessage({ type: 'reply', id: msg.id });
      break;
    case 'sync':
      flushConsole();
      flash.sync();
      port.postMessage({ type: 'reply', id: msg.id });
      break;
    default:
      log('error', `unknown request ${JSON.stringify(msg)}`);
  }
});

boot();

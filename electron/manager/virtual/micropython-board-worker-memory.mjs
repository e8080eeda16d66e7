// @ts-check
// The board's RAM, for the board lab's worker (micropython-board-worker.mjs).
//
// Facts about @micropython/micropython-webassembly-pyscript 1.27 this relies on:
// - The GC heap is a "split heap": when an allocation does not fit, MicroPython mallocs a
//   new area (at least as large as the whole heap so far) instead of raising MemoryError.
//   A failing malloc makes gc_alloc give up, and MicroPython raises a real MemoryError.
// - malloc grows the wasm memory through emscripten_resize_heap -> wasmMemory.grow(),
//   called from JavaScript; when grow() throws, malloc returns NULL.
// - The package does not export its memory (Module.HEAPU8 aborts), but it instantiates
//   with WebAssembly.instantiate, whose result carries `exports.memory`.
// - time.sleep() busy-waits on the imported mp_js_ticks_ms(); nothing else calls it.
//
// So: hooks capture the memory, can forbid it to grow (one worker = one board, so patching
// this thread's WebAssembly globals touches no other interpreter), and slow the busy-wait.

// This thread's WebAssembly global, as far as it is used and patched here. (Its types come
// with TypeScript's DOM library, which this Node project does not load.)
/** @typedef {{ buffer: ArrayBuffer, grow(delta: number): number }} WasmMemory */
const wasm = /** @type {{ instantiate: (source: unknown, imports?: object) => Promise<unknown>, Memory: { prototype: WasmMemory } }} */ (
  /** @type {any} */ (globalThis).WebAssembly
);

/** @type {WasmMemory | undefined} */
let memory;
let locked = false;
/** @type {Uint8Array | undefined} */
let view;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Sleeps spin on ticks_ms; after this many calls within one millisecond, nap for 1 ms. */
const SPINS_PER_MS = 64;
/** Called at most this often while the board sleeps (see setNapHook). */
const NAP_HOOK_MS = 100;
let napHook = () => {};
let napHookAt = 0;
/** Returns true when a Ctrl-C was taken (see setWakeCheck). */
let wakeCheck = () => false;
/** Added to the port's clock after a Ctrl-C ended a sleep. */
let skew = 0;
/** How far the clock jumps to end a sleep at once (longer than any sleep a program does). */
const WAKE_SKEW_MS = 24 * 3600 * 1000;

/**
 * Work to do while the board sleeps in time.sleep(): the only JavaScript that runs during
 * a long Python call (main.py) that does not use the network.
 * @param {() => void} hook
 */
export function setNapHook(hook) {
  napHook = hook;
}

/**
 * Checked on every nap of a sleeping board: when it returns true (it has scheduled a
 * KeyboardInterrupt), the sleep must end now. time.sleep() busy-waits on ticks_ms() and
 * never looks at pending exceptions, so the port's clock jumps a day ahead; the
 * interrupt is raised as the sleep returns, as on a board, whose sleeps do check.
 * @param {() => boolean} check
 */
export function setWakeCheck(check) {
  wakeCheck = check;
}

/**
 * Installs the hooks; must run before the MicroPython module is loaded.
 */
export function installMemoryHooks() {
  const instantiate = wasm.instantiate;
  wasm.instantiate = async function (source, imports) {
    const env = /** @type {any} */ (imports)?.env;
    if (env && typeof env.mp_js_ticks_ms === 'function') env.mp_js_ticks_ms = napWhenSpinning(env.mp_js_ticks_ms);
    const result = await instantiate.call(wasm, source, imports);
    const instance = /** @type {any} */ (result).instance ?? result;
    memory ??= instance.exports.memory;
    return result;
  };
  const grow = wasm.Memory.prototype.grow;
  wasm.Memory.prototype.grow = function (/** @type {number} */ delta) {
    if (locked && this === memory) throw new RangeError('the board has no more RAM');
    return grow.call(this, delta);
  };
}

/**
 * Time stays the port's own (ticks_ms returns the real clock), but a sleeping board stops
 * burning a CPU core: the busy-wait of time.sleep() is the only thing that calls ticks_ms
 * in a tight loop (measured: ~600,000 calls in a 50 ms sleep, none in compute loops).
 * @param {() => number} ticks
 */
function napWhenSpinning(ticks) {
  let last = -1;
  let calls = 0;
  return () => {
    const now = ticks() + skew;
    if (now !== last) {
      last = now;
      calls = 0;
    } else if (++calls > SPINS_PER_MS) {
      Atomics.wait(sleepCell, 0, 0, 1);
      calls = 0;
      if (wakeCheck()) skew += WAKE_SKEW_MS;
      if (now - napHookAt >= NAP_HOOK_MS) {
        napHookAt = now;
        napHook();
      }
      return ticks() + skew;
    }
    return now;
  };
}

/** The wasm memory as bytes (a fresh view after the memory grew). */
export function heapU8() {
  if (!memory) throw new Error('the MicroPython memory was not captured');
  if (!view || view.buffer !== memory.buffer) view = new Uint8Array(memory.buffer);
  return view;
}

/** Bytes of wasm memory in use by this board (reserved, not necessarily touched). */
export function wasmBytes() {
  return memory ? memory.buffer.byteLength : 0;
}

/**
 * Freezes the board's RAM: the wasm memory may no longer grow, and the free malloc space is
 * taken, except `marginBytes` for the package's own glue (12-byte conversion slots, strings
 * passed between JS and Python). The margin must be smaller than the GC heap, because a new
 * GC area is requested at the heap's current size or larger: so the GC can never grow, and
 * an allocation beyond the heap raises MemoryError inside MicroPython, as on a board.
 * @param {{ _malloc(n: number): number, _free(p: number): void }} module
 * @param {number} marginBytes
 */
export function lockMemory(module, marginBytes) {
  const reserve = module._malloc(marginBytes);
  if (!reserve) throw new Error('no room for the glue margin');
  locked = true;
  let held = 0;
  // Never freed: this is the end of the board's RAM. Untouched pages cost no host memory.
  for (let size = 1 << 26; size >= 64;) {
    if (module._malloc(size)) held += size;
    else size >>= 1;
  }
  module._free(reserve);
  return held;
}

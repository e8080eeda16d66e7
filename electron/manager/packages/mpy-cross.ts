/**
 * Compiles MicroPython source to `.mpy` bytecode on the host (ABI 6, MicroPython 1.19
 * compiler) with `@pybricks/mpy-cross-v6`, the WebAssembly build of mpy-cross. This file is
 * the only importer of that package.
 *
 * How the package is driven, and why not through its `compile()` helper:
 * - Its Emscripten loader fetches the wasm by path when `fetch` exists (Node 18+), which
 *   crashes; we compile the wasm ourselves once and hand each run an `instantiateWasm` hook,
 *   so no loader path (fetch or fs) is ever taken.
 * - One Emscripten instance runs `main()` exactly once: the wrapper fixes the arguments and
 *   input file when the instance is created, and the runtime marks itself aborted after
 *   `exit`. So the reusable part is the compiled `WebAssembly.Module` (lazily, once); every
 *   compile gets a fresh, cheap instance with its own memory and file system.
 * - Each instance registers `uncaughtException`/`unhandledRejection` listeners on
 *   `process` (rethrowing everything) in its synchronous set-up. We remove exactly the
 *   listeners that set-up added: they would pile up per compile, keep every finished
 *   instance's 16 MiB memory reachable, and turn unhandled rejections of the host into
 *   crashes. Nothing needs them: the wrapper replaces Emscripten's `quit` with a no-op, so
 *   the `ExitStatus` they exist to swallow is never thrown.
 * - Compiles run one at a time through a queue so twenty concurrent callers do not hold
 *   twenty 16 MiB wasm memories at once (a compile takes a few milliseconds).
 */
import type { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** The ABI (`.mpy` major version) this compiler emits. */
export const MPY_ABI = 6;

/** The compiler reported a problem with the source (usually a SyntaxError). */
export class MpyCompileError extends Error {
  override name = 'MpyCompileError';
  constructor(
    /** The file name given to compileToMpy. */
    readonly fileName: string,
    /** The compiler's own message, e.g. `Traceback …\n  File "x.py", line 4\nSyntaxError: invalid syntax`. */
    readonly compilerMessage: string,
    /** The 1-based source line the compiler names, when it names one. */
    readonly line: number | undefined,
  ) {
    const last = compilerMessage.trim().split('\n').pop() ?? 'compilation failed';
    super(`cannot compile ${fileName}${line === undefined ? '' : ` (line ${line})`}: ${last}\n${compilerMessage}`);
  }
}

/** The compiler itself could not be loaded or stopped without a result (not the source's fault). */
export class MpyCrossUnavailableError extends Error {
  override name = 'MpyCrossUnavailableError';
}

export interface CompileOptions {
  /**
   * mpy-cross `-O` level. 0 (default) keeps `assert` statements and line numbers, so
   * tracebacks on a board point at source lines; higher levels drop asserts.
   */
  optimize?: 0 | 1 | 2 | 3;
}

// Our lib settings (ES2023, no DOM) carry no WebAssembly types: declare the little we use.
type WasmModule = { readonly __brand: 'WebAssembly.Module' };
type WasmInstance = { readonly __brand: 'WebAssembly.Instance' };
interface WasmApi {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  instantiate(module: WasmModule, imports: object): Promise<WasmInstance>;
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The part of the Emscripten module options that the pybricks wrapper reads. */
interface MpyCrossModuleOptions {
  arguments: string[];
  inputFileContents: string;
  callback: (status: number, mpy: Uint8Array | undefined, out: string[], err: string[]) => void;
  instantiateWasm: (imports: object, receive: (instance: WasmInstance) => void) => object;
  onAbort: (what: unknown) => void;
}
type MpyCrossFactory = (options: MpyCrossModuleOptions) => Promise<unknown>;

const EMSCRIPTEN_PROCESS_EVENTS = ['uncaughtException', 'unhandledRejection'];
/** `process` as a plain emitter: its typed overloads do not accept a union of event names. */
const processEvents: EventEmitter = process;
/** Name of the output inside the instance's in-memory file system. */
const OUTPUT_NAME = 'out.mpy';
const SAFE_INPUT_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*\.py$/;
const LINE_OF_ERROR = /File "[^"]*", line (\d+)/;

let compiler: Promise<{ factory: MpyCrossFactory; wasm: WasmModule }> | undefined;
let queueTail: Promise<unknown> = Promise.resolve();

function loadCompiler(): Promise<{ factory: MpyCrossFactory; wasm: WasmModule }> {
  compiler ??= (async () => {
    try {
      const factory = require('@pybricks/mpy-cross-v6/build/mpy-cross-v6.js') as MpyCrossFactory;
      const wasmPath = require.resolve('@pybricks/mpy-cross-v6/build/mpy-cross-v6.wasm');
      const wasm = await wasmApi.compile(await readFile(wasmPath));
      return { factory, wasm };
    } catch (error) {
      compiler = undefined; // let a later call retry (e.g. after a reinstall)
      throw new MpyCrossUnavailableError(`cannot load mpy-cross: ${(error as Error).message}`, { cause: error });
    }
  })();
  return compiler;
}

/**
 * Compiles one module to `.mpy` (ABI 6, 31-bit small ints: loads on ESP8266, ESP32 and
 * every other MicroPython ≥ 1.19 port). `fileName` is embedded in the bytecode and shows in
 * tracebacks on the board (e.g. `cm_boot.py`). Throws MpyCompileError with the compiler's
 * message and line on a syntax error.
 */
export function compileToMpy(fileName: string, source: string, options: CompileOptions = {}): Promise<Buffer> {
  // Argument errors reject like compile errors do, so callers handle one failure path.
  if (typeof fileName !== 'string' || fileName.length === 0 || fileName.includes('\0')) {
    return Promise.reject(new TypeError('compileToMpy: fileName must be a non-empty string'));
  }
  if (typeof source !== 'string') return Promise.reject(new TypeError('compileToMpy: source must be a string'));
  const optimize = options.optimize ?? 0;
  if (![0, 1, 2, 3].includes(optimize)) return Promise.reject(new RangeError('compileToMpy: optimize must be 0, 1, 2 or 3'));
  // The same module is compiled again for every board provisioned (the client files):
  // successful results are kept, keyed by everything that goes into them.
  const key = `${optimize}\0${fileName}\0${source}`;
  const done = compiled.get(key);
  if (done) return Promise.resolve(Buffer.from(done));
  const run = queueTail.then(() => compileNow(fileName, source, optimize));
  queueTail = run.catch(() => undefined); // one failed compile must not block the queue
  return run.then((mpy) => {
    compiled.set(key, mpy);
    if (compiled.size > COMPILED_CACHE_ENTRIES) compiled.delete(compiled.keys().next().value!);
    return Buffer.from(mpy);
  });
}

/** Successful compiles (oldest first); failures are never kept, so errors always show. */
const compiled = new Map<string, Buffer>();
const COMPILED_CACHE_ENTRIES = 64;

async function compileNow(fileName: string, source: string, optimize: number): Promise<Buffer> {
  const { factory, wasm } = await loadCompiler();
  // The wrapper writes the source under the last argument's name, and the compiler names
  // that file in error messages: use the caller's base name when it is a plain file name.
  const base = path.posix.basename(fileName.replaceAll('\\', '/'));
  const inputName = SAFE_INPUT_NAME.test(base) && base !== OUTPUT_NAME ? base : 'module.py';
  const args = [`-O${optimize}`, '-msmall-int-bits=31', '-s', fileName, '-o', OUTPUT_NAME, inputName];

  return new Promise<Buffer>((resolve, reject) => {
    let finished = false;
    let abortReason: unknown;
    const finish = (status: number, mpy: Uint8Array | undefined, out: string[], err: string[]) => {
      if (finished) return;
      finished = true;
      if (status === 0 && mpy && mpy.length > 0) {
        resolve(Buffer.from(mpy));
        return;
      }
      const message = [...err, ...out].join('\n') || `mpy-cross exited with status ${status}`;
      const line = LINE_OF_ERROR.exec(message)?.[1];
      reject(new MpyCompileError(fileName, message, line === undefined ? undefined : Number(line)));
    };
    const fail = (error: unknown) => {
      if (finished) return;
      finished = true;
      reject(error instanceof MpyCrossUnavailableError ? error : new MpyCrossUnavailableError(`mpy-cross failed: ${String(error)}`, { cause: error }));
    };

    const before = EMSCRIPTEN_PROCESS_EVENTS.map((event) => new Set(processEvents.listeners(event)));
    let ready: Promise<unknown>;
    try {
      ready = factory({
        arguments: args,
        inputFileContents: source,
        callback: finish,
        instantiateWasm: (imports, receive) => {
          wasmApi.instantiate(wasm, imports).then(receive, fail);
          return {}; // Emscripten's signal that instantiation is asynchronous
        },
        onAbort: (what) => {
          abortReason = what;
        },
      });
    } catch (error) {
      fail(error);
      return;
    } finally {
      EMSCRIPTEN_PROCESS_EVENTS.forEach((event, i) => {
        for (const listener of processEvents.listeners(event)) {
          if (!before[i]!.has(listener)) processEvents.removeListener(event, listener as (...a: unknown[]) => void);
        }
      });
    }
    // `ready` resolves just before main() runs, in the same synchronous stretch, so by the
    // time this handler runs main() has finished. No callback then means main() trapped
    // (the wrapper's no-op `quit` swallows the error): report instead of hanging the queue.
    ready.then(() => {
      if (!finished) fail(new MpyCrossUnavailableError(`mpy-cross stopped without a result${abortReason === undefined ? '' : `: ${String(abortReason)}`}`));
    }, fail);
  });
}

/** The `.mpy` ABI version of a board: the low byte of `sys.implementation._mpy` (774 → 6). */
export function mpyAbiOf(sysImplementationMpy: number): number {
  if (!Number.isSafeInteger(sysImplementationMpy) || sysImplementationMpy < 0) {
    throw new RangeError(`sys.implementation._mpy must be a non-negative integer, got ${String(sysImplementationMpy)}`);
  }
  // Bits 8-9 hold the sub-version and bits 10+ the native architecture; both only matter
  // for native code, and we only emit bytecode (header arch 0), which any 6.x loader takes.
  return sysImplementationMpy & 0xff;
}

/** Whether a board with this `sys.implementation._mpy` loads our ABI-6 bytecode (unknown: no). */
export function canLoadMpyV6(sysImplementationMpy: number | null | undefined): boolean {
  if (sysImplementationMpy === null || sysImplementationMpy === undefined) return false;
  if (!Number.isSafeInteger(sysImplementationMpy) || sysImplementationMpy < 0) return false;
  return mpyAbiOf(sysImplementationMpy) === MPY_ABI;
}

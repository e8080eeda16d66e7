// The npm package ships no type declarations; these cover what this project uses.
declare module '@micropython/micropython-webassembly-pyscript' {
  /** Emscripten's file system, as far as the project uses it. */
  export interface EmscriptenFS {
    mkdir(path: string): void;
    rmdir(path: string): void;
    unlink(path: string): void;
    rename(from: string, to: string): void;
    readdir(path: string): string[];
    writeFile(path: string, data: string | Uint8Array): void;
    readFile(path: string, options?: { encoding?: 'binary' | 'utf8' }): Uint8Array;
    analyzePath(path: string): { exists: boolean };
    lstat(path: string): { mode: number; size: number };
    isDir(mode: number): boolean;
    isFile(mode: number): boolean;
    [name: string]: unknown;
  }
  /** The Emscripten module (the package's `_module`): exported C functions and memory helpers. */
  export interface EmscriptenModule {
    _malloc(bytes: number): number;
    _free(pointer: number): void;
    /** What the REPL's Ctrl-C calls: a KeyboardInterrupt raised at the next check. */
    _mp_sched_keyboard_interrupt(): void;
    [name: string]: unknown;
  }
  export interface MicroPython {
    runPython(code: string): unknown;
    runPythonAsync(code: string): Promise<unknown>;
    registerJsModule(name: string, module: object): void;
    pyimport(name: string): unknown;
    globals: { get(key: string): unknown; set(key: string, value: unknown): void; delete(key: string): void };
    PyProxy: { toJs(value: unknown): unknown };
    FS: EmscriptenFS;
    _module: EmscriptenModule;
  }
  interface CommonOptions {
    heapsize?: number;
    pystack?: number;
    url?: string;
  }
  /** Output by lines (the package's default). */
  export interface LoadOptions extends CommonOptions {
    linebuffer?: true;
    stdout?: (line: string) => void;
    stderr?: (line: string) => void;
  }
  /** Output as the interpreter writes it, in byte chunks. */
  export interface ByteOutputLoadOptions extends CommonOptions {
    linebuffer: false;
    stdout?: (data: Uint8Array) => void;
    stderr?: (data: Uint8Array) => void;
  }
  export function loadMicroPython(options: ByteOutputLoadOptions): Promise<MicroPython>;
  export function loadMicroPython(options?: LoadOptions): Promise<MicroPython>;
}

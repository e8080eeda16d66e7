// The npm package ships no type declarations; these cover what this project uses.
declare module '@micropython/micropython-webassembly-pyscript' {
  export interface MicroPython {
    runPython(code: string): unknown;
    runPythonAsync(code: string): Promise<unknown>;
    registerJsModule(name: string, module: object): void;
    pyimport(name: string): unknown;
    globals: { get(key: string): unknown; set(key: string, value: unknown): void; delete(key: string): void };
    PyProxy: { toJs(value: unknown): unknown };
    // Emscripten's FS and module objects.
    FS: {
      mkdir(path: string): void;
      writeFile(path: string, data: string | Uint8Array): void;
      readFile(path: string, options?: { encoding?: 'binary' | 'utf8' }): Uint8Array;
      [name: string]: unknown;
    };
    _module: Record<string, unknown>;
  }
  export interface LoadOptions {
    heapsize?: number;
    pystack?: number;
    linebuffer?: boolean;
    url?: string;
    stdout?: (data: Uint8Array | string) => void;
    stderr?: (data: Uint8Array | string) => void;
  }
  export function loadMicroPython(options?: LoadOptions): Promise<MicroPython>;
}

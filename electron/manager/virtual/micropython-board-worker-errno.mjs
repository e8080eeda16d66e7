// @ts-check
// The board lab's file errors with an ESP8266's numbers, for the worker (micropython-board-worker.mjs).
//
// MicroPython raises a failed file operation as OSError(errno of the C library). The
// WebAssembly port's C library (Emscripten's) numbers errors as WASI does, ENOENT being 44,
// while the port's own `errno` module (and the compiler, which folds `errno.ENOENT` into a
// constant) says 2, as on an ESP8266. So a missing file would read `OSError: 44` and code
// comparing `e.errno == errno.ENOENT` would be wrong on the lab only. Emscripten's system
// calls return `-error.errno` of the FS error that escapes the FS call they made: every FS
// function is wrapped, and an error leaving the outermost call gets the ESP8266's number
// (errors inside nested calls keep theirs: Emscripten's own code compares them).

/** WASI errno (Emscripten) -> MicroPython's (py/mperrno.h, the ESP8266's), for what a file system raises. */
export const WASI_TO_ESP8266_ERRNO = Object.freeze({
  63: 1, // EPERM
  44: 2, // ENOENT
  29: 5, // EIO
  8: 9, // EBADF
  48: 12, // ENOMEM
  2: 13, // EACCES
  10: 16, // EBUSY
  20: 17, // EEXIST
  75: 18, // EXDEV
  54: 20, // ENOTDIR
  31: 21, // EISDIR
  28: 22, // EINVAL
  51: 28, // ENOSPC
  69: 30, // EROFS
  37: 36, // ENAMETOOLONG
  55: 39, // ENOTEMPTY
});

/** @param {any} FS Emscripten's FS object */
export function raiseEsp8266Errnos(FS) {
  let depth = 0;
  for (const name of Object.keys(FS)) {
    const original = FS[name];
    // Classes (ErrnoError, FSNode, FSStream) and values are left alone.
    if (typeof original !== 'function' || /^[A-Z]/.test(name)) continue;
    FS[name] = function (/** @type {unknown[]} */ ...args) {
      depth++;
      try {
        return original.apply(this ?? FS, args);
      } catch (error) {
        const e = /** @type {{ name?: string, errno?: number } | undefined} */ (error);
        const mapped = depth === 1 && e?.name === 'ErrnoError' ? WASI_TO_ESP8266_ERRNO[/** @type {keyof typeof WASI_TO_ESP8266_ERRNO} */ (e.errno)] : undefined;
        // A new error: Emscripten throws shared instances for some errors.
        throw mapped === undefined ? error : new FS.ErrnoError(mapped);
      } finally {
        depth--;
      }
    };
  }
}

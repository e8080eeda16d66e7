// @ts-check
// How the board lab's file system changes files, for the worker (micropython-board-worker.mjs):
// FAT's rename, and the lab's power cut in the middle of a change.
//
// MEMFS renames as POSIX (and LittleFS v2) do: onto an existing file, atomically. A board
// whose filesystem area holds FAT (formatted by an older MicroPython release) does not:
// MicroPython's vfs_fat.c answers f_rename's FR_EXIST by removing the destination
// (f_unlink) and renaming again, two steps a reset can fall between. With `fat`, the lab
// does the same (a rename of a file onto itself is left alone, as FatFs does).
//
// A power cut (armPowerCut) lands right after the board's `count`-th change (a rename or a
// removal of a file, FAT's hidden removal included) naming a path that begins with `path`:
// what the flash held at that moment is all the next boot finds.

/**
 * Wraps FS.rename and FS.unlink (on top of the flash mirror's wrappers, which must be
 * installed first so that what happens here reaches the host folder).
 * @param {any} FS Emscripten's FS object
 * @param {{ fat: boolean, powerCut: (what: string) => void }} options
 *   powerCut: saves the files and stops the board; never returns
 */
export function watchFileChanges(FS, { fat, powerCut }) {
  /** @type {{ path: string, left: number } | null} */
  let armed = null;
  const changed = (/** @type {string} */ op, /** @type {string[]} */ paths) => {
    if (!armed || !paths.some((p) => p.startsWith(/** @type {{ path: string }} */ (armed).path))) return;
    if (--armed.left > 0) return;
    const what = `power cut after ${op} ${paths.join(' -> ')}`;
    armed = null;
    powerCut(what);
  };
  const isFile = (/** @type {string} */ p) => {
    const found = FS.analyzePath(p);
    return found.exists && FS.isFile(found.object.mode);
  };
  const unlink = FS.unlink;
  const rename = FS.rename;
  FS.unlink = (/** @type {string} */ p) => {
    unlink.call(FS, p);
    changed('remove', [p]);
  };
  FS.rename = (/** @type {string} */ from, /** @type {string} */ to) => {
    if (fat && from !== to && isFile(from) && isFile(to)) FS.unlink(to);
    rename.call(FS, from, to);
    changed('rename', [from, to]);
  };
  return {
    /** The power goes right after the `count`-th change naming a path that begins with `path`. */
    armPowerCut(/** @type {string} */ path, /** @type {number} */ count) {
      armed = { path, left: Math.max(1, count) };
    },
  };
}

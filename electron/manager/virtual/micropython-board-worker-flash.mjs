// @ts-check
// The board's flash file system, for the board lab's worker (micropython-board-worker.mjs).
//
// This build of MicroPython only has Emscripten's MEMFS (no NODEFS), so the host folder
// is copied in at boot and changes are written back after every step or run call (and
// before a reset): only when something was written, and then only what differs from the
// last write-back (new and changed files, deletions, renames, directories).
//
// Change detection: the FS functions that modify anything are wrapped to raise a `dirty`
// flag; a write-back compares the tree against a snapshot only when the flag is up, so a
// board that writes nothing costs nothing per step.
//
// Names come from code running on the board, so each goes through the rule the reference
// board's host folder uses (board-host-path.mjs): one the host would read as a path of its
// own (a backslash, a drive, a device on Windows) is not written back (logged once), so it
// can never land outside the board's folder.
import fs from 'node:fs';
import path from 'node:path';
import { boardHostPath } from './board-host-path.mjs';

const TEMP_SUFFIX = '.cmlab-tmp';
// A board's flash holds its config (cm_config.json: its Redis and wifi passwords), so its
// host folder is the user's alone, whatever the umask: folders 0700, files 0600.
const PRIVATE_DIR = { recursive: true, mode: 0o700 };
const PRIVATE_FILE = 0o600;
const MODIFYING = ['mknod', 'mkdir', 'unlink', 'rmdir', 'rename', 'truncate', 'ftruncate', 'symlink'];

/** @typedef {Map<string, Uint8Array | null>} Tree  relative path -> file bytes, or null for a directory */

export class FlashMirror {
  /**
   * @param {any} FS Emscripten's FS object
   * @param {string} hostDir absolute host folder (the board's flash)
   * @param {(level: 'warn', message: string) => void} log
   */
  constructor(FS, hostDir, log) {
    this.FS = FS;
    this.hostDir = hostDir;
    this.log = log;
    /** Board paths not written back, each logged once. @type {Set<string>} */
    this.refused = new Set();
    this.dirty = false;
    /** @type {Tree} */
    this.snapshot = new Map();
    this.watch();
  }

  watch() {
    const FS = this.FS;
    const write = FS.write;
    FS.write = (/** @type {any} */ stream, /** @type {unknown[]} */ ...rest) => {
      // Console output may also go through FS.write (device nodes): only files count.
      if (FS.isFile(stream.node.mode)) this.dirty = true;
      return write.call(FS, stream, ...rest);
    };
    for (const name of MODIFYING) {
      const original = FS[name];
      FS[name] = (/** @type {unknown[]} */ ...args) => {
        this.dirty = true;
        return original.apply(FS, args);
      };
    }
  }

  /** Copies the host folder to the interpreter's `/` (which must be empty). */
  load() {
    fs.mkdirSync(this.hostDir, PRIVATE_DIR);
    fs.chmodSync(this.hostDir, PRIVATE_DIR.mode); // made by an older version, or by hand
    const walk = (/** @type {string} */ rel) => {
      for (const entry of fs.readdirSync(path.join(this.hostDir, rel), { withFileTypes: true })) {
        if (entry.name.endsWith(TEMP_SUFFIX)) continue; // left over by an interrupted write-back
        const child = rel ? `${rel}/${entry.name}` : entry.name;
        const host = path.join(this.hostDir, child);
        const stat = fs.statSync(host);
        if (stat.isDirectory()) {
          this.FS.mkdir(`/${child}`);
          walk(child);
        } else if (stat.isFile()) {
          this.FS.writeFile(`/${child}`, fs.readFileSync(host));
        }
      }
    };
    walk('');
    this.snapshot = this.scan();
    this.dirty = false;
  }

  /**
   * A new, empty file system (a first boot's mkfs): the host folder is emptied, and `/`
   * (nothing was loaded into it) starts from nothing.
   */
  format() {
    fs.mkdirSync(this.hostDir, PRIVATE_DIR);
    for (const name of fs.readdirSync(this.hostDir)) fs.rmSync(path.join(this.hostDir, name), { recursive: true, force: true });
    this.snapshot = new Map();
    this.dirty = false;
  }

  /** Writes what changed since the last call back to the host folder. */
  sync() {
    if (!this.dirty) return;
    this.dirty = false;
    const current = this.scan();
    try {
      this.apply(this.snapshot, current);
      this.snapshot = current;
    } catch (error) {
      this.dirty = true; // try again after the next step
      this.log('warn', `writing the board's files to ${this.hostDir} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** @returns {Tree} */
  scan() {
    const FS = this.FS;
    /** @type {Tree} */
    const tree = new Map();
    const walk = (/** @type {string} */ rel) => {
      for (const name of FS.readdir(`/${rel}`)) {
        if (name === '.' || name === '..') continue;
        const child = rel ? `${rel}/${name}` : name;
        const node = FS.lookupPath(`/${child}`).node;
        if (FS.isDir(node.mode)) {
          tree.set(child, null);
          walk(child);
        } else if (FS.isFile(node.mode)) {
          // MEMFS keeps a growable typed array; `usedBytes` is the file size. The view is
          // copied only if it differs from the snapshot (see apply()).
          const contents = node.contents;
          tree.set(child, contents instanceof Uint8Array ? contents.subarray(0, node.usedBytes) : FS.readFile(`/${child}`));
        }
      }
    };
    walk('');
    return tree;
  }

  /**
   * @param {Tree} before
   * @param {Tree} after  its file views are replaced by copies where they changed
   */
  apply(before, after) {
    /** @type {Map<string, string>} */
    const hostPaths = new Map();
    const host = (/** @type {string} */ rel) => /** @type {string} */ (hostPaths.get(rel));
    for (const rel of new Set([...before.keys(), ...after.keys()])) {
      const result = boardHostPath(this.hostDir, `/${rel}`);
      if (result.problem === undefined) hostPaths.set(rel, result.host);
      else if (!this.refused.has(rel)) {
        this.refused.add(rel);
        this.log('warn', `not writing a file of the board to ${this.hostDir}: ${result.problem}`); // the name JSON-quoted: no terminal control
      }
    }
    /** @type {string[]} */
    const changed = [];
    for (const [rel, bytes] of after) {
      if (!hostPaths.has(rel)) continue; // kept in the snapshot as it is, so it is not tried again until it changes
      const old = before.get(rel);
      if (bytes === null) {
        if (old !== null) {
          if (old !== undefined) fs.rmSync(host(rel), { force: true });
          fs.mkdirSync(host(rel), PRIVATE_DIR);
        }
      } else if (!old || !sameBytes(old, bytes)) {
        changed.push(rel);
      } else {
        after.set(rel, old); // unchanged: keep the snapshot's copy
      }
    }
    const removed = [...before.keys()].filter((rel) => !after.has(rel) && hostPaths.has(rel));
    // A removed file whose bytes reappear under a new name was renamed: rename it on the
    // host too instead of deleting and rewriting it.
    for (const rel of removed) {
      const old = before.get(rel);
      if (!old) continue;
      const index = changed.findIndex((to) => !before.has(to) && sameBytes(old, /** @type {Uint8Array} */ (after.get(to))));
      if (index < 0) continue;
      const to = /** @type {string} */ (changed[index]);
      changed.splice(index, 1);
      fs.renameSync(host(rel), host(to));
      after.set(to, old);
    }
    for (const rel of changed) {
      const target = host(rel);
      const copy = Uint8Array.from(/** @type {Uint8Array} */ (after.get(rel)));
      after.set(rel, copy);
      // Write then rename, so a reader never sees half a file.
      const temp = path.join(path.dirname(target), `.${path.basename(target)}${TEMP_SUFFIX}`);
      fs.writeFileSync(temp, copy, { mode: PRIVATE_FILE });
      fs.chmodSync(temp, PRIVATE_FILE); // a leftover temp file keeps its old mode otherwise
      if (before.get(rel) === null) fs.rmSync(target, { recursive: true, force: true });
      fs.renameSync(temp, target);
    }
    // Deepest first, so a directory is empty (of our files) when its turn comes.
    for (const rel of removed.sort((a, b) => b.length - a.length)) {
      const target = host(rel);
      if (before.get(rel) === null) fs.rmSync(target, { recursive: true, force: true });
      else if (!fs.existsSync(target) || !fs.statSync(target).isDirectory()) fs.rmSync(target, { force: true });
    }
  }
}

/** @param {Uint8Array} a @param {Uint8Array} b */
function sameBytes(a, b) {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

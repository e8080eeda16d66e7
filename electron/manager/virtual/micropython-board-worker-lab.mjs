// @ts-check
// The lab's own Python inside a board's interpreter, for the board lab's worker
// (micropython-board-worker.mjs): the shims (lab-python/*.py: socket, network, machine,
// os.dupterm among them) imported from a directory the board never sees, and the functions
// of lab-python/_cm_lab.py the worker calls.
import { readFileSync, readdirSync } from 'node:fs';
import { removeTree } from './micropython-board-worker-boot.mjs';

/** Where the shims are imported from (gone once they are): frames there are the lab's, not the board's. */
export const LAB_DIR = '/.cmlab';
const LAB_PYTHON = new URL('./lab-python/', import.meta.url);

/**
 * Imports the lab's shims (`gc` must be imported already).
 * @param {any} mp the loaded interpreter @param {any} FS Emscripten's FS object
 */
export function importLabShims(mp, FS) {
  // The shims are imported from a directory that is deleted afterwards: the modules stay
  // in sys.modules, the board's file system never shows them.
  FS.mkdir(LAB_DIR);
  for (const name of readdirSync(LAB_PYTHON)) {
    if (name.endsWith('.py')) FS.writeFile(`${LAB_DIR}/${name}`, readFileSync(new URL(name, LAB_PYTHON)));
  }
  // One at a time, with a collection in between (it runs as each call returns), so that
  // little of the compilers' garbage is left between them to fragment the board's heap.
  mp.runPython(`import sys\nsys.path.insert(0, '${LAB_DIR}')`);
  for (const shim of ['_cm_lab', 'socket', 'network', 'machine', 'binascii', '_cm_dupterm', '_cm_sys', '_cm_gc']) mp.runPython(`import ${shim}\ngc.collect()`);
  mp.runPython('sys.path.pop(0)\ndel sys');
  removeTree(FS, LAB_DIR);
}

/**
 * What the worker calls in lab-python/_cm_lab.py; return codes are listed there.
 * @typedef {{
 *   start(module: string): number, step(waitMs: number): number, run(single: number): number, run_file(name: string): number,
 *   interrupted(waitMs: number): number, corrupt(startSector: number, blocks: number, repeatMs: number): number,
 *   report(): number, collect(): void, mem(): void, drain(): void, ballast(bytes: number): void, qstr_room(): number,
 *   heap_figures(hidden: number, split: number, total: number): void,
 * }} LabPython
 */

/** @param {any} mp the loaded interpreter, its shims imported */
export function labPython(mp) {
  return /** @type {LabPython} */ (mp.pyimport('_cm_lab'));
}

/** The worker's names for the functions of _cm_lab.py. @param {LabPython} lab */
export function labFunctions(lab) {
  return {
    start: lab.start,
    step: lab.step,
    run: lab.run,
    runFile: lab.run_file,
    report: lab.report,
    collect: lab.collect,
    mem: lab.mem,
    ballast: lab.ballast,
    interrupted: lab.interrupted,
    drain: lab.drain,
    corrupt: lab.corrupt,
    heapFigures: lab.heap_figures,
  };
}

// @ts-check
// The board's heap, for the board lab's worker (micropython-board-worker.mjs): the budget
// the board sees, what the lab's own Python holds (hidden from it), the RAM lock, and the
// garbage collections the lab runs between calls because this port cannot collect in the
// middle of one.
import { lockMemory } from './micropython-board-worker-memory.mjs';
import { gcTotalFor } from './micropython-board-worker-boot.mjs';

/**
 * @typedef {{
 *   py: { collect(): void, mem(): void, ballast(bytes: number): void, heapFigures(hidden: number, split: number, total: number): void },
 *   lastMem: () => [alloc: number, free: number, threshold: number],
 *   call: (fn: () => void) => unknown,
 *   module: import('@micropython/micropython-webassembly-pyscript').EmscriptenModule,
 *   heapBytes: number, heapLimit: 'memory-error' | 'live-check', maxNewSplit: number, freshUsed: number,
 *   log: (level: string, message: string) => void,
 * }} HeapOptions
 */

export class BoardHeap {
  /**
   * Sets the budget up, right after the lab's Python is loaded: a ballast makes what the
   * lab holds plus the ballast exactly the extra room, so the board sees the free heap a
   * fresh interpreter with `heapBytes` would have; then the RAM is locked ('memory-error').
   * @param {HeapOptions} options
   */
  constructor(options) {
    this.options = options;
    const { py, heapBytes, heapLimit, maxNewSplit, freshUsed } = options;
    /** The board's heap: what gc.mem_free() + gc.mem_alloc() make on a board of heapBytes. */
    this.budgetTotal = gcTotalFor(heapBytes);
    let raw = this.raw();
    this.labPythonBytes = raw.used - freshUsed;
    py.ballast(raw.total - this.budgetTotal - (raw.used - freshUsed) - 16);
    raw = this.raw();
    /** Heap the lab's own Python holds; subtracted from what the board is told. */
    this.hidden = raw.used - freshUsed;
    if (raw.total - this.hidden !== this.budgetTotal) {
      options.log('debug', `heap budget ${this.budgetTotal} B, lab overhead ${this.hidden} B of ${raw.total - this.budgetTotal} B allowed`);
    }
    // The board's gc.mem_free() and gc.mem_alloc() (lab-python/_cm_gc.py) count its heap as report() does.
    py.heapFigures(this.hidden, maxNewSplit, heapLimit === 'live-check' ? this.budgetTotal : 0);
    this.lockedTotal = raw.total;
    /** malloc space left free for the package's glue once the RAM is locked (see lockMemory). */
    const glueMargin = Math.min(16 * 1024, heapBytes >> 1);
    this.heldBytes = heapLimit === 'memory-error' ? lockMemory(options.module, glueMargin) : 0;
    /** _boot.py: gc.threshold((gc.mem_free() + gc.mem_alloc()) // 4), of the board's heap. */
    this.boardThreshold = Math.floor(this.budgetTotal / 4);
    /** Highest heap use (garbage included) seen at the end of a step or run since report(). */
    this.peakUsed = 0;
  }

  /** Raw GC figures after a collection (two calls: the collection runs between them). */
  raw() {
    const { py, lastMem, maxNewSplit } = this.options;
    py.collect();
    py.mem();
    const [alloc, free] = lastMem();
    return { used: alloc, free: free - maxNewSplit, total: alloc + free - maxNewSplit };
  }

  /**
   * Takes the figures the last Python entry point reported before its collection.
   * @returns {[alloc: number, free: number]}
   */
  notePeak() {
    const [alloc, free] = this.options.lastMem();
    this.peakUsed = Math.max(this.peakUsed, alloc - this.hidden);
    return [alloc, free];
  }

  /**
   * After a step or run (whose figures were reported before any collection that ran as it
   * returned): is the board out of memory? Returns what is wrong, or ''. With the RAM
   * locked this is only a safety net (the GC heap can never have grown); in 'live-check'
   * mode it is the limit itself: what is still referenced once the garbage is gone must
   * fit in the budget. Then garbage is collected: after a firmware step always (see
   * collectForStep), after a run() if the board's heap runs low (see settle).
   * @param {'step' | 'run'} after
   */
  check(after) {
    const { py, call, lastMem, heapLimit, maxNewSplit } = this.options;
    const [alloc, free] = this.notePeak();
    if (heapLimit === 'memory-error') {
      const total = alloc + free - maxNewSplit;
      if (total > this.lockedTotal) return `the GC heap grew to ${total - this.hidden} B (budget ${this.budgetTotal} B)`;
      if (after === 'step') this.collectForStep();
      else this.settle();
      return '';
    }
    call(() => py.collect());
    call(() => py.mem());
    const live = lastMem()[0] - this.hidden;
    return live > this.budgetTotal ? `${live} B in use after a collection (budget ${this.budgetTotal} B)` : '';
  }

  /**
   * Between two calls: the port's own collection at gc.threshold() has run if it was due;
   * if less than the threshold is still free, collect now, as a board would once its heap
   * ran out in the middle of the next step (which the lab cannot).
   */
  settle() {
    const { py, call, lastMem, maxNewSplit } = this.options;
    call(() => py.mem());
    const [, free, threshold] = lastMem();
    // gc.threshold(-1) (no automatic collection) still leaves a board its collection when full.
    if (free - maxNewSplit < (threshold > 0 ? threshold : this.boardThreshold)) call(() => py.collect());
  }

  /**
   * After a firmware step (and start()): garbage is always collected. A board collects as
   * soon as an allocation does not fit, so each pass of its main loop has all of the heap
   * that nothing references; the lab cannot collect in the middle of a step, so it does
   * before the next one. (Collecting only below gc.threshold(), as after a run(), left a
   * step as little as a quarter of the heap: the first step of a file command, which reads
   * the command and imports cm_ops, needs about 16 KB, and raised MemoryError on a 36 KB
   * board whose free heap was garbage.) gc.mem_free() in a step thus counts that step's
   * garbage only; a board's also counts what earlier steps left (less than gc.threshold()).
   */
  collectForStep() {
    this.options.call(() => this.options.py.collect());
  }

  /** The board's heap now (after a collection), and the peak since the last report. */
  report() {
    const heap = this.raw();
    const used = heap.used - this.hidden;
    // In 'live-check' mode the GC heap may have grown past the budget (garbage of a
    // step); the board's heap is still the budget.
    const total = this.options.heapLimit === 'memory-error' ? heap.total - this.hidden : this.budgetTotal;
    const peakUsed = Math.max(this.peakUsed, used);
    this.peakUsed = 0;
    return { total, used, free: total - used, peakUsed };
  }
}

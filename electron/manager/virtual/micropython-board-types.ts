/**
 * Types of the MicroPython board lab (micropython-board.ts, which re-exports them): its
 * options, events and errors, and the messages of its worker.
 */
import type { LogLevel } from '../log.js';
import type { BridgeCall, BridgeNotice } from './micropython-board-network.js';

export interface MicroPythonBoardOptions {
  /** Host folder = the board's flash. Created if missing. */
  folder: string;
  /** The board's GC heap (default 36 KB, an ESP8266). */
  heapBytes?: number;
  /** How the heap budget is enforced (see the class comment). Default 'memory-error'. */
  heapLimit?: 'memory-error' | 'live-check';
  /** `wait_ms` passed to each firmware step (default 50). */
  stepWaitMs?: number;
  /** The lab's access point; connecting with another ssid/password never succeeds. */
  wifi?: { ssid: string; password: string };
  onLog?: (level: LogLevel, message: string) => void;
  /** Prefix of log lines (default: the folder's name). */
  label?: string;
  /** Module whose start() returns the client to step (default 'cm', our firmware). */
  firmwareModule?: string;
  /** Longest wait between steps, whatever step() returned (default 20 ms). */
  maxIdleMs?: number;
  /** A step busy (not waiting on the network) this long resets the board ('crash'). 0: off. Default 10 s. */
  watchdogMs?: number;
  /**
   * The chip itself restarts (machine.reset(), a watchdog, a crash): when given, the board
   * does not boot again by itself but hands the restart to this (the simulated ROM, which
   * boots in the latched boot mode). Ctrl-D soft resets and the reset button are unchanged.
   */
  onSystemReset?: (reason: BoardResetReason) => void;
}

/** 'soft-reset': Ctrl-D (softReset()), or an interrupt() the program could not see. */
export type BoardResetReason = 'machine.reset' | 'button' | 'out-of-memory' | 'crash' | 'soft-reset';
export type BoardMode = 'firmware' | 'main' | 'idle';

export interface BoardHeap {
  /** The GC heap (≈ heapBytes less the allocation tables), without the lab's own Python. */
  total: number;
  used: number;
  free: number;
  /** Highest use, garbage included, seen at the end of a step or run since the last heap(). */
  peakUsed: number;
}

export interface BoardRunResult {
  stdout: string;
  stderr: string;
  /** Last line of the traceback ("NameError: ..."), or why the run did not finish. */
  error?: string;
  /** The code raised SystemExit (sys.exit()): a board's REPL soft-resets then. */
  systemExit?: boolean;
  /** The code was stopped by interrupt() (KeyboardInterrupt). */
  interrupted?: boolean;
  /**
   * Present when the code wrote to sys.stderr: stdout and stderr in the order written, as
   * a board's console (one UART) shows them; the traceback is not part of it.
   */
  console?: string;
  /** The traceback of the uncaught exception (present when the code failed). */
  traceback?: string;
}

export interface BoardRunOptions {
  /**
   * Compile as one line typed at the friendly REPL ('single' mode: the value of an
   * expression statement is printed) instead of a module.
   */
  single?: boolean;
}

export interface BoardExit {
  /** 'interrupted': Ctrl-C (interrupt()) raised KeyboardInterrupt in the program. */
  reason: 'power-off' | 'program-ended' | 'exception' | 'interrupted';
  /** Where the exception was raised: 'start()', 'step()' or 'main.py'. */
  during?: string;
}

export interface BoardBoot {
  /** Boots since start(), 1 first. */
  count: number;
  mode: BoardMode;
  /** machine.reset_cause() of this boot. */
  cause: number;
  /**
   * Lab figures: heap added for the lab's own Python and hidden from the budget, what its
   * modules actually hold of it, malloc space taken to lock the RAM, wasm memory size.
   */
  labBytes: number;
  labPythonBytes: number;
  heldBytes: number;
  wasmBytes: number;
}

export interface MicroPythonBoardEvents {
  stdout: [text: string];
  stderr: [text: string];
  reset: [reason: BoardResetReason];
  outOfMemory: [message: string];
  exit: [info: BoardExit];
  boot: [info: BoardBoot];
}

/** The board's program failed while booting (its start() raised); see 'stderr'. */
export class MicroPythonBoardBootError extends Error {
  override readonly name = 'MicroPythonBoardBootError';
}

/** The board is off (never started, powered off, or it stopped while the request ran). */
export class MicroPythonBoardOffError extends Error {
  override readonly name = 'MicroPythonBoardOffError';
  constructor(what: string) {
    super(`the board is off: ${what}`);
  }
}

export type WorkerMessage =
  | { type: 'log'; level: LogLevel; message: string }
  | { type: 'console'; stream: 'stdout' | 'stderr'; data: Uint8Array }
  | ({ type: 'call' } & BridgeCall)
  | ({ type: 'net' } & BridgeNotice)
  | { type: 'booted'; mode: BoardMode; hiddenBytes: number; labPythonBytes: number; heldBytes: number; wasmBytes: number }
  | { type: 'halted'; reason: 'exception' | 'program-ended' | 'interrupted'; during?: string; memory?: boolean }
  | { type: 'fault'; kind: 'memory' | 'crash'; message: string }
  | { type: 'machine-reset' }
  | {
    type: 'reply'; id: number; stdout?: string; stderr?: string; failed?: boolean; heap?: BoardHeap;
    systemExit?: boolean; interrupted?: boolean; console?: string; traceback?: string;
  };

export type Reply = Extract<WorkerMessage, { type: 'reply' }>;

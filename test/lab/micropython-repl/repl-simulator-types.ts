/**
 * The types of the MicroPython REPL simulator (micropython-repl-simulator.ts): the line it
 * talks through, its options, its counters and its modes.
 */
import type { LogLevel } from '../../../electron/manager/log.js';
import type { MicroPythonBoard } from '../../../electron/manager/virtual/micropython-board.js';

/** The serial side the simulator talks through (a PtyLink, or anything shaped like it). */
export interface ReplLink {
  write(data: Buffer | string): void;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  off(event: 'data', listener: (chunk: Buffer) => void): unknown;
}

export interface MicroPythonReplOptions {
  link: ReplLink;
  board: MicroPythonBoard;
  /** Answer raw-paste requests (default true); false answers `R\x00`. */
  rawPaste?: boolean;
  /** The banner's version and date (default 'v1.27.0 on 2025-12-10', the WebAssembly build's). */
  bannerVersion?: string;
  /** Bytes the REPL's input buffer keeps while the board is not reading (default 255: see the file comment). */
  rxBufferBytes?: number;
  /** MICROPY_REPL_STDIN_BUFFER_MAX (default 256: a 128-byte raw-paste window). */
  stdinBufferMax?: number;
  onLog?: (level: LogLevel, message: string) => void;
}

export interface ReplStats {
  /** Bytes lost because the receive buffer was full while the board was busy. */
  overruns: number;
  /** Raw-paste bytes beyond the granted flow-control credit (lost). */
  creditViolations: number;
  /** Code executions (friendly lines, raw and raw-paste execs). */
  execs: number;
  rawPasteExecs: number;
  /** Raw pastes the board ended early (a syntax error found while the code streamed in). */
  rawPasteEarlyEnds: number;
}

/** `raw-paste-ended`: the board ended a paste early and drops input until the host's \x04. */
export type ReplMode = 'off' | 'program' | 'friendly' | 'paste-mode' | 'raw' | 'raw-paste' | 'raw-paste-ended';

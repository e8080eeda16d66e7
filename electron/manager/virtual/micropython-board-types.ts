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
  /**
   * The flash outside the filesystem's files: the filesystem area's first sector (which
   * decides each boot: mount, first boot or the corrupt-filesystem loop) and the SDK's
   * wifi settings. The simulated ESP8266 gives its flash image; without it the filesystem
   * always mounts and the wifi settings live as long as this object (see
   * micropython-board-flash.ts).
   */
  flash?: BoardFlash;
  /** How long the board takes to set up, join a wifi, ... (default 'realistic'). */
  timing?: 'realistic' | 'fast' | Partial<BoardTiming>;
}

/** Durations the lab imitates (ms), measured on the board's own clock (time.ticks_ms). */
export interface BoardTiming {
  /** A first boot's initial setup (creating LittleFS): about a second on a board. */
  initialSetupMs: number;
  /** How often the corrupt-filesystem message repeats (3 s: inisetup's time.sleep(3)). */
  corruptRepeatMs: number;
  /** connect() to the right network until isconnected() (an IP): typically 2-5 s on a board. */
  wifiJoinMs: number;
  /** A wrong password until status() is STAT_WRONG_PASSWORD: about 10-15 s on a board. */
  wifiWrongPasswordMs: number;
  /** A network that is not there until status() is STAT_NO_AP_FOUND (assumed: one scan, a few seconds). */
  wifiNoApMs: number;
}

export const REALISTIC_TIMING: Readonly<BoardTiming> = {
  initialSetupMs: 1000,
  corruptRepeatMs: 3000,
  wifiJoinMs: 3000,
  wifiWrongPasswordMs: 12_000,
  wifiNoApMs: 5000,
};
/** For tests that are not about timing. */
export const FAST_TIMING: Readonly<BoardTiming> = {
  initialSetupMs: 20,
  corruptRepeatMs: 300,
  wifiJoinMs: 50,
  wifiWrongPasswordMs: 200,
  wifiNoApMs: 200,
};

/** What the ESP8266 SDK keeps of the board's own access point (in its flash, across resets). */
export interface BoardWifiSettings {
  /** WLAN(AP_IF).active(): the SDK saves the operating mode. */
  apActive: boolean;
  apSsid: string;
  /** The AP's password ('' for an open network): the SDK keeps it, config() cannot read it. */
  apKey: string;
  /** network.AUTH_* (0 open, 4 WPA/WPA2-PSK). */
  apAuthmode: number;
}

/**
 * What a boot finds in the filesystem area: 'mounted' (LittleFS or FAT), 'formatted' (it
 * was blank: this boot ran the initial setup), 'corrupt' (foreign data: the
 * corrupt-filesystem loop, nothing mounted), 'none' (flash under 1 MiB: no filesystem).
 */
export type BoardFilesystem = 'mounted' | 'formatted' | 'corrupt' | 'none';

/** The board's flash as the lab's MicroPython sees it outside its files (see micropython-board-flash.ts). */
export interface BoardFlash {
  /** The filesystem's block device (flashbdev.py): first sector and 4 KB blocks; null below 1 MiB. */
  readonly filesystem: { startSector: number; blocks: number } | null;
  /** Block 0 of the filesystem area as it is now (4096 bytes). */
  readFirstBlock(): Uint8Array;
  /** The initial setup created LittleFS: block 0 gets its superblock (the host folder holds the files). */
  formatFilesystem(): void;
  /** The SDK's wifi settings; null when that part of the flash is blank (SDK defaults). */
  readWifi(): BoardWifiSettings | null;
  writeWifi(settings: BoardWifiSettings): void;
}

/** 'soft-reset': Ctrl-D (softReset()), or an interrupt() the program could not see; 'power-cut': see cutPowerAfter(). */
export type BoardResetReason = 'machine.reset' | 'button' | 'out-of-memory' | 'crash' | 'soft-reset' | 'power-cut';
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
  /** Where the exception was raised: 'start()', 'step()', 'main.py' or '_boot.py' (the corrupt-filesystem loop). */
  during?: string;
}

export interface BoardBoot {
  /** Boots since start(), 1 first. */
  count: number;
  mode: BoardMode;
  /** machine.reset_cause() of this boot. */
  cause: number;
  /** What the boot found in the filesystem area. */
  filesystem: BoardFilesystem;
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
  | { type: 'booted'; mode: BoardMode; filesystem: BoardFilesystem; hiddenBytes: number; labPythonBytes: number; heldBytes: number; wasmBytes: number }
  | { type: 'flash'; op: 'format' }
  | { type: 'flash'; op: 'wifi'; settings: BoardWifiSettings }
  | { type: 'halted'; reason: 'exception' | 'program-ended' | 'interrupted'; during?: string; memory?: boolean }
  | { type: 'fault'; kind: 'memory' | 'crash' | 'power-cut'; message: string }
  | { type: 'machine-reset' }
  | {
      type: 'reply';
      id: number;
      stdout?: string;
      stderr?: string;
      failed?: boolean;
      heap?: BoardHeap;
      systemExit?: boolean;
      interrupted?: boolean;
      console?: string;
      traceback?: string;
    };

export type Reply = Extract<WorkerMessage, { type: 'reply' }>;

/**
 * The types of the simulated ESP8266 (esp8266-simulator.ts): its options, events, states,
 * and what a firmware that boots gets to talk to the host.
 */
import type { SerialLink } from '../pty-link.js';
import type { BootImage, FlashMode } from './boot-console.js';
import type { SimulatedChip } from './chip-registers.js';
import type { FlashTiming } from './flash-chip.js';
import type { AdapterModel } from './reset-circuit.js';

/** `reset`: held in reset by the adapter (EN low): silent until released. */
export type SimulatorState = 'off' | 'reset' | 'download' | 'running';
export type BootMode = 'download' | 'flash';

export interface BootedFirmware {
  image: { flashMode: FlashMode; entry: number; segments: number };
  readFlash(offset: number, length: number): Buffer;
  /** Sends to the host at the chip's rate (115200 after boot). */
  write(data: string | Uint8Array): void;
  /** Receives what the host sends while this firmware runs. */
  onInput(listener: (data: Buffer) => void): void;
  readonly link: SerialLink;
  /** The firmware restarts the chip (machine.reset(), a watchdog): a software reset. */
  restart(): void;
}

export interface Esp8266SimulatorOptions {
  /** A link to use (a PtyLink, or one with modem lines), or where to link a pty (default: a temp path). */
  link?: string | SerialLink;
  /** File holding the flash; created erased (0xFF) if missing. */
  flashImagePath: string;
  /** Default 4 MB (1 MB for an ESP8285). */
  flashSizeBytes?: number;
  flashJedecId?: number;
  /** The flash mode this board's wiring needs ('dio'/'dout' boards crash on qio images; default dout for an ESP8285). */
  needsMode?: FlashMode;
  corruptBlock?: number;
  failAfterBytes?: number;
  chip?: SimulatedChip;
  mac?: string;
  /** How long the flash takes (default W25Q32_TIMING; FAST_FLASH_TIMING for tests not about time). */
  flashTiming?: Partial<FlashTiming>;
  /** Shorthands for flashTiming.sectorEraseMs / flashTiming.sectorWriteMs. */
  sectorEraseMs?: number;
  sectorWriteMs?: number;
  /** Period of the crash loop of a wrong-flash-mode image (default 300 ms). */
  crashIntervalMs?: number;
  /** Runs the firmware after a successful boot; may return a cleanup for the next reset. */
  onBoot?: (firmware: BootedFirmware) => void | (() => void);
  /** How the adapter's DTR/RTS reach EN/IO0 (default `none`: no modem lines). */
  adapter?: AdapterModel;
  /**
   * Fault: the first this many starts of a valid image after power-on hang without a word
   * once the ROM's load log is out (a board that browns out in its first start's RF
   * calibration on a weak USB supply, say): only the next reset starts it. Default 0.
   */
  silentBoots?: number;
}

export interface CommandLogEntry {
  loader: 'rom' | 'stub';
  op: number;
  name: string;
}

export type BootOutcome =
  { mode: 'download' } | { mode: 'flash'; result: 'firmware' | 'wrong-flash-mode' | 'no-image' | 'bad-checksum' | 'hung'; image: BootImage };

export interface SimulatorEvents {
  state: [state: SimulatorState];
  command: [entry: CommandLogEntry];
  boot: [outcome: BootOutcome];
  /** What the chip printed, in clear text, and at which rate. */
  output: [text: string, baud: number];
  baud: [baud: number];
  'stub-started': [];
  disconnect: [];
  /** A bug in the simulator itself (kept in `internalErrors` too). */
  fault: [error: unknown];
}

/**
 * After flashing: what the board prints while it boots, read at the rates it prints at,
 * tells whether the new firmware runs.
 *
 * An ESP8266 talks at two rates. After a reset its ROM prints its boot lines at 74880 baud
 * (" ets Jan  8 2013,rst cause:2, boot mode:(3,6)", then the load log ending in "csum 0x…");
 * a firmware that dies before it sets up its UART prints at 74880 too ("Fatal exception
 * (0)" / "Fatal exception 0(IllegalInstructionCause)" and the register dump — a qio image
 * on a board wired for dio or dout). MicroPython then switches the UART to 115200 and
 * prints "Performing initial setup" (first boot: its file system area was blank), the
 * banner and `>>> `, or — when the area holds something else — its inisetup.fs_corrupted()
 * message every 3 s. A host at the wrong rate reads garbage (mostly NULs: framing errors).
 *
 * So the watch follows the board: it reads at 74880 from the reset until the ROM's lines
 * are over (the load log has ended and the board went quiet for EARLY_CRASH_MS, in which an
 * early crash would print, or the firmware's 115200 output shows up as garbage), then at
 * 115200; garbage at 115200 means the ROM talks again (the board reset): back to 74880.
 * A board that says nothing at 115200 for a while gets one carriage return (MicroPython's
 * REPL answers with a prompt; the ROM loader and a crashed chip do not). Every part is
 * kept with the rate it was read at.
 *
 * On a busy computer the watch looks late and the board's output reaches it late, in
 * bursts. So the watch is timed by what it reads, not by the clock alone: bytes already
 * there at its first look after a rate change count as sent for the old rate, and a board
 * is `silent` only once `watchMs` has passed *and* it has said nothing for
 * SILENT_AFTER_QUIET_MS — after a poke too, the answer may come late (at most 2 × watchMs
 * for a board that keeps talking without a verdict).
 *
 * Verdicts:
 * - `ok`: MicroPython's banner, a `>>> ` prompt, or "Performing initial setup";
 * - `fs-corrupt`: "The filesystem starting at sector N with size M sectors looks corrupt."
 *   (MicroPython 1.27 ports/esp8266/modules/inisetup.py): MicroPython runs but mounted
 *   nothing — another firmware's data is where its file system goes (erase the flash);
 * - `crash`: "Fatal exception", the ROM complaining about the image it read ("ets_main.c",
 *   a checksum that does not match), the board restarting into its bootloader, or — read
 *   when the watch would otherwise end silent — garbage at 115200 after the ROM loaded the
 *   image (the board talked at the ROM's rate again; a busy computer read its words late);
 * - `boot-loop`: the ROM's boot lines repeating — two or more resets nobody asked for;
 * - `silent`: none of these (nothing, only the ROM's lines, or garbage before the image loaded).
 */

import { corruptFilesystemRegion, FILESYSTEM_SECTOR_BYTES, type FilesystemRegion } from './filesystem-area.js';

export type BootVerdict = 'ok' | 'crash' | 'boot-loop' | 'fs-corrupt' | 'silent';

/** The rate the ESP8266 ROM prints at (26 MHz crystal, UART not configured yet). */
export const ROM_BAUD = 74_880;
/** The rate MicroPython sets its UART to. */
export const FIRMWARE_BAUD = 115_200;

/** What arrived while the host's port was set to `baud`. */
export interface BootReading {
  baud: number;
  bytes: Uint8Array;
}

export interface BootJudgement {
  verdict: BootVerdict;
  /** What it was told from, in words ("Fatal exception (0) at 74880 baud"). */
  evidence: string;
  /** `fs-corrupt`: the file system region MicroPython's message names. */
  filesystem?: FilesystemRegion;
}

export interface JudgeOptions {
  /**
   * ROM boot banners our own start of the board produces: 1 when it was reset through EN
   * (the ROM prints "rst cause:2"), 0 when the stub's "run user code" jumped to the flash
   * (the ROM prints only its load log).
   */
  expectedResets?: number;
}

const ROM_BANNER = /ets Jan {1,2}8 2013,rst cause:(\d+), boot mode:\((\d+),(\d+)\)/g;
/**
 * The ROM's boot banners in `bytes` (read at 74880): why the chip reset ("rst cause:2" is
 * the EN pin, i.e. RESET pressed or pulsed) and the boot mode it latched: its first number
 * is 3 for "boot from flash", 1 for "download" (GPIO0 held low), as the ROM prints them.
 */
export function romBanners(bytes: Uint8Array): { cause: number; bootMode: number }[] {
  return [...text(bytes).matchAll(ROM_BANNER)].map((match) => ({ cause: Number(match[1]), bootMode: Number(match[2]) }));
}

const FATAL = /Fatal exception \(?(\d+)\)?/;
const ROM_NO_IMAGE = /ets_main\.c/;
const MICROPYTHON = /MicroPython v\d[^\r\n]*|Performing initial setup|(?:^|[\r\n])>>> /;

const text = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');

/**
 * Judges what a board printed (each part with the rate it was read at); null while nothing
 * conclusive arrived (the caller decides when that means `silent`).
 */
export function judgeBoot(readings: readonly BootReading[], options: JudgeOptions = {}): BootJudgement | null {
  const parts = readings.map((reading) => ({ baud: reading.baud, text: text(reading.bytes) }));
  const at = (pattern: RegExp) => parts.find((part) => pattern.test(part.text));
  const fatal = at(FATAL);
  if (fatal) return { verdict: 'crash', evidence: `${FATAL.exec(fatal.text)![0]} at ${fatal.baud} baud` };
  const noImage = at(ROM_NO_IMAGE);
  if (noImage) return { verdict: 'crash', evidence: `the ROM found no image it could read ("ets_main.c" at ${noImage.baud} baud)` };
  const badSum = parts.find((part) => checksumMismatch(part.text));
  if (badSum) return { verdict: 'crash', evidence: `the ROM read the image with a wrong checksum (${checksumMismatch(badSum.text)} at ${badSum.baud} baud)` };
  const corrupt = parts.map((part) => corruptFilesystemRegion(part.text)).find((region) => region !== null);
  if (corrupt) {
    const sectors = (bytes: number) => bytes / FILESYSTEM_SECTOR_BYTES;
    return {
      verdict: 'fs-corrupt',
      filesystem: corrupt,
      evidence: `the filesystem starting at sector ${sectors(corrupt.offset)} with size ${sectors(corrupt.length)} sectors looks corrupt`,
    };
  }
  const banners = parts.flatMap((part) => [...part.text.matchAll(ROM_BANNER)].map((match) => ({ baud: part.baud, cause: match[1]!, mode: match[2]! })));
  // Boots seen: each prints a load log, each reset a banner (a host that came back to
  // 74880 late may have missed one or the other).
  const loadLogs = parts.reduce((sum, part) => sum + [...part.text.matchAll(LOAD_LOG_ENDS)].length, 0);
  const expected = options.expectedResets ?? 0;
  const unexpected = Math.max(banners.length - expected, loadLogs - 1);
  if (unexpected >= 2) {
    const causes = banners.slice(expected).map((banner) => banner.cause);
    return {
      verdict: 'boot-loop',
      evidence: `the ROM's boot lines repeat: ${unexpected} resets nobody asked for${causes.length ? ` (rst cause:${causes.join(',')})` : ''}`,
    };
  }
  const micropython = at(MICROPYTHON);
  if (micropython) return { verdict: 'ok', evidence: `${JSON.stringify(MICROPYTHON.exec(micropython.text)![0].trim())} at ${micropython.baud} baud` };
  if (banners.slice(expected).some((banner) => banner.mode === '1')) {
    return { verdict: 'crash', evidence: 'the board restarted into its bootloader (boot mode 1) instead of running the firmware' };
  }
  return null;
}

/**
 * The ROM's load log ends with "csum 0xNN", the checksum stored in the image; the "chksum"
 * just before it is what the ROM computed. Compared per load log: a boot loop prints
 * several, and the last may be cut short (its first segment's chksum is not the image's).
 */
function checksumMismatch(part: string): string | null {
  let from = 0;
  for (const end of part.matchAll(/(?:^|[\r\n])csum (0x[0-9a-f]{2})/g)) {
    const computed = [...part.slice(from, end.index).matchAll(/chksum (0x[0-9a-f]{2})/g)].at(-1)?.[1];
    if (computed && computed !== end[1]) return `chksum ${computed}, csum ${end[1]}`;
    from = end.index + end[0].length;
  }
  return null;
}

/** The end of the ROM's load log: after it, the ROM jumps to the firmware. */
const LOAD_LOG_END = /(?:^|[\r\n])csum 0x[0-9a-f]{2}\r?\n/;
const LOAD_LOG_ENDS = new RegExp(LOAD_LOG_END.source, 'g');

/** Bytes a UART delivers for text sent at another rate: NULs (framing errors) and high bytes. */
export function looksLikeGarbage(bytes: Uint8Array): boolean {
  let odd = 0;
  for (const b of bytes) if (!(b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127))) odd++;
  return odd >= 4 && odd * 4 >= bytes.length;
}

/** The host's end of the serial line during the watch. */
export interface BootLine {
  /** Everything received since the watch began (a buffer that only grows). */
  received(): Uint8Array;
  setBaud(baud: number): Promise<void>;
  write(data: Uint8Array): Promise<void>;
}

export interface WatchBootOptions extends JudgeOptions {
  /** How long to watch before a quiet board counts as silent (see the file comment). */
  watchMs: number;
  /** Start at 74880 to read the ROM (the port is switched now); false: 115200 only. */
  readRom?: boolean;
  /**
   * With readRom: the caller already set the port to 74880 before starting the board, when
   * received() held this many bytes. The watch reads from there, so output that came before
   * the watch itself started (late, on a busy computer) is not lost.
   */
  romFrom?: number;
  /** Send one CR when the board stays quiet at 115200 (default true). */
  poke?: boolean;
  /** Poll interval (default 20 ms). */
  pollMs?: number;
}

export interface BootWatch extends BootJudgement {
  readings: BootReading[];
}

/** After the ROM's load log: how long an early crash may take to print at 74880. */
export const EARLY_CRASH_MS = 60;
/** Back at 74880 because the board reset: stay until it has been quiet this long (read the whole next boot). */
export const AFTER_RESET_QUIET_MS = 600;
/** At 74880 without a load log (the ROM's lines never came, or came garbled): go to 115200 after this. */
export const ROM_PHASE_MAX_MS = 1_500;
/** Quiet at 115200 for this long: poke the REPL with a carriage return. */
export const POKE_AFTER_MS = 800;
/** Bytes arriving this soon after a rate change (or before the watch's first look after it) were sent for the old rate. */
const SETTLE_MS = 40;
/** A board is silent only after saying nothing (nor answering the poke) for this long, once watchMs has passed. */
export const SILENT_AFTER_QUIET_MS = 1_000;
/** Rate switches at most (a board that keeps resetting is judged by what was read). */
const MAX_SWITCHES = 8;

/**
 * Watches a board start (see the file comment); resolves with the verdict, `silent` when
 * `watchMs` passed without one. Leaves the port at 115200.
 */
export async function watchBoot(line: BootLine, options: WatchBootOptions): Promise<BootWatch> {
  const pollMs = options.pollMs ?? 20;
  const started = Date.now();
  const watchEnd = started + options.watchMs;
  const hardEnd = started + 2 * options.watchMs;
  // `looked`: the watch has polled since this rate was set (what came before is the old rate's).
  const marks: { baud: number; from: number; settled: number; looked: boolean }[] = [];
  let phaseStart = Date.now();
  let quietSince = Date.now();
  let lastOutputAt = started;
  let lastLength = 0;
  let loadLogEndAt: number | null = null;
  let poked = false;
  let pokedAt = 0;
  let romQuietMs = EARLY_CRASH_MS;
  const readings = (): BootReading[] => {
    const all = line.received();
    return marks.map((mark, i) => ({ baud: mark.baud, bytes: all.subarray(mark.from, marks[i + 1]?.from ?? all.length) }));
  };
  const switchTo = async (baud: number) => {
    await line.setBaud(baud);
    const from = line.received().length;
    marks.push({ baud, from, settled: from, looked: false });
    phaseStart = quietSince = Date.now();
    loadLogEndAt = null;
  };
  if (options.readRom && options.romFrom !== undefined) marks.push({ baud: ROM_BAUD, from: options.romFrom, settled: options.romFrom, looked: true });
  else if (options.readRom) await switchTo(ROM_BAUD);
  else marks.push({ baud: FIRMWARE_BAUD, from: 0, settled: 0, looked: true });
  const finish = async (judgement: BootJudgement): Promise<BootWatch> => {
    const result = { ...judgement, readings: readings() };
    if (marks.at(-1)!.baud !== FIRMWARE_BAUD) await line.setBaud(FIRMWARE_BAUD);
    return result;
  };
  for (;;) {
    const judgement = judgeBoot(readings(), options);
    if (judgement) return finish(judgement);
    const now = Date.now();
    const length = line.received().length;
    if (length !== lastLength) {
      lastLength = length;
      quietSince = lastOutputAt = now;
    }
    const quietFor = now - Math.max(lastOutputAt, pokedAt);
    if ((now >= watchEnd && quietFor >= SILENT_AFTER_QUIET_MS) || now >= hardEnd) {
      const offRate = offRateAfterLoad(line.received(), marks);
      if (offRate > 0) {
        return finish({
          verdict: 'crash',
          evidence: `after the ROM loaded the image the board printed ${offRate} bytes at another rate than MicroPython's 115200, and MicroPython never spoke`,
        });
      }
      return finish({ verdict: 'silent', evidence: silentEvidence(readings()) });
    }
    const mark = marks.at(-1)!;
    // Bytes already on their way when the rate changed were sent for the old rate.
    if (now - phaseStart < SETTLE_MS || !mark.looked) mark.settled = length;
    mark.looked = true;
    const current = line.received().subarray(mark.from);
    const canSwitch = options.readRom && marks.length < MAX_SWITCHES;
    if (mark.baud === ROM_BAUD) {
      const end = LOAD_LOG_END.exec(text(current));
      if (end && loadLogEndAt === null) loadLogEndAt = now;
      // After the load log, garbage at 74880 is the firmware talking at 115200.
      const firmwareTalks = end !== null && looksLikeGarbage(current.subarray(end.index + end[0].length));
      const romDone = loadLogEndAt !== null && now - Math.max(loadLogEndAt, quietSince) >= romQuietMs;
      if (firmwareTalks || romDone || now - phaseStart >= ROM_PHASE_MAX_MS) await switchTo(FIRMWARE_BAUD);
    } else if (canSwitch && looksLikeGarbage(line.received().subarray(Math.max(mark.settled, length - 64)))) {
      await switchTo(ROM_BAUD); // the board reset: its ROM talks at 74880
      romQuietMs = AFTER_RESET_QUIET_MS;
    } else if ((options.poke ?? true) && !poked && now - Math.max(quietSince, phaseStart) >= POKE_AFTER_MS) {
      poked = true;
      pokedAt = now;
      await line.write(Uint8Array.from([0x0d]));
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/**
 * Bytes of garbage read at 115200 after a complete ROM load log (0: none): the board talked
 * at the ROM's rate after the image was loaded — an early crash or a restart — though a busy
 * computer may have come back to 74880 too late to read its words. A firmware that runs
 * talks at 115200 only, so this is never a good start. (Bytes that arrived before the watch
 * settled at 115200 were the ROM's tail and do not count.)
 */
function offRateAfterLoad(all: Uint8Array, marks: readonly { baud: number; from: number; settled: number }[]): number {
  let loaded = false;
  for (const [i, mark] of marks.entries()) {
    const end = marks[i + 1]?.from ?? all.length;
    if (mark.baud === ROM_BAUD) {
      loaded ||= LOAD_LOG_END.test(text(all.subarray(mark.from, end)));
      continue;
    }
    const bytes = all.subarray(Math.min(Math.max(mark.settled, mark.from), end), end);
    if (loaded && looksLikeGarbage(bytes)) return bytes.length;
  }
  return 0;
}

function silentEvidence(readings: readonly BootReading[]): string {
  const bytes = readings.reduce((sum, reading) => sum + reading.bytes.length, 0);
  if (bytes === 0) return 'the board printed nothing';
  const romLines = readings.some((reading) => /ets Jan/.test(text(reading.bytes)));
  return romLines ? "only the ROM's boot lines; no firmware output" : `${bytes} bytes, none of them MicroPython's`;
}

/**
 * Flashing an ESP8266 with esptool-js, with a progress event for every phase: connect,
 * chip and flash-size detection, optional erase, compressed write (460800 baud by
 * default, 115200 when that fails), MD5 verification, reset, and a check that the board
 * boots (boot-check.ts: its ROM read at 74880 baud, MicroPython at 115200) — re-flashing
 * in `dio`, then `dout`, when a `qio` flash crashes ("Fatal exception" at 74880) or
 * boot-loops, as some boards need. A board that says nothing is not taken as started: it
 * is restarted through its reset lines and watched again, or asked for RESET when it has
 * none, and the flash fails, saying what to do, when MicroPython is still not heard.
 *
 * Before a byte is written the image is checked against the board (firmware-image.ts): a
 * MicroPython build for more flash than the board has is refused, naming the build to use
 * instead; a build without a file system (FLASH_512K) is written, and FlashResult.variant
 * says so for whoever provisions the board. An ESP8285 (1 MB of flash inside the chip,
 * wired for dual output only) is written in `dout` from the start: MicroPython's ESP8285
 * instructions (issue #3508) and the vendors' say `--flash_mode dout`; esptool itself tells
 * the chip by its efuses (bit 4 or bit 80: "ESP8285…", "Embedded Flash") and writes the
 * mode it is given.
 *
 * Resets are ours (reset-sequences.ts), handed to esptool-js as its reset constructors:
 * the bootloader is entered with esptool's tight classic reset, and the new firmware is
 * started by pulsing EN (esptool-js 0.7's hard reset never pulls EN low).
 *
 * When the bootloader does not answer — a port without DTR/RTS (a pty, some adapters), or
 * an adapter that accepts them with nothing wired (an ESP-01 on a plain adapter) — the
 * flasher asks, through `onNeedBootloader`, for BOOT to be held while RESET is pressed,
 * and keeps trying for a minute. Such a board is started with the stub's "run user code",
 * which leaves the chip's boot mode latched at "download": its next software reset
 * (machine.reset(), a watchdog) would land in the bootloader. So the flasher then asks,
 * through `onNeedReset`, for one plain press of RESET and watches the board start again;
 * `FlashResult.bootModeLatch` says whether that happened.
 *
 * MicroPython's file system area (filesystem-area.ts) is left alone — updating MicroPython
 * keeps the board's files — unless it holds another firmware's data (a board that ran
 * NodeMCU or AT firmware): MicroPython would then print "looks corrupt" every 3 s instead
 * of starting, so the flasher erases the area's first sectors and the first boot formats
 * it. Should the board still say "looks corrupt" (a layout we did not foresee), the region
 * it names is erased and the board started again, once.
 */
import { silentLogger, type Logger } from '../log.js';
import { checkImageFitsBoard, FirmwareImageError, inspectFirmwareImage, variantNote, type FirmwareVariant, type FlashMode } from './firmware-image.js';
import { FIRMWARE_BAUD, ROM_BAUD, romBanners, watchBoot, type BootJudgement, type BootLine, type BootVerdict } from './boot-check.js';
import { hardReset } from './reset-sequences.js';
import { eraseRegion, writeImage } from './flash-write.js';
import {
  FILESYSTEM_SECTOR_BYTES,
  filesystemRegion,
  filesystemResetRange,
  inspectFilesystemArea,
  shouldEraseFilesystemArea,
  type FilesystemRegion,
} from './filesystem-area.js';
import { FlashError, FlashVerifyError, UnsupportedChipError } from './flash-errors.js';
import { connect, type Session } from './esp-connect.js';

/**
 * `bootloader`: the board must be put in download mode by hand (hold BOOT, press RESET).
 * `press-reset`: after such a flash, one plain RESET makes the board start by itself later.
 */
export type FlashPhase =
  'check-image' | 'connect' | 'bootloader' | 'detect' | 'erase' | 'write' | 'verify' | 'reset' | 'boot-check' | 'reflash' | 'press-reset' | 'done';

export interface FlashProgress {
  phase: FlashPhase;
  message: string;
  /** For `write`: bytes of the image written so far, of `total`. */
  done?: number;
  total?: number;
}

export interface FlashOptions {
  portPath: string;
  image: Buffer;
  /** USB ids of the adapter (esptool-js picks its reset sequence from them). */
  vendorId?: number;
  productId?: number;
  /** Rate for writing (default 460800; 115200 is used when it fails). */
  baud?: number;
  /** Erase the whole flash first (file system included). */
  erase?: boolean;
  /** Flash mode to write; default: the image's own (dout on an ESP8285), with automatic recovery via dio, dout. */
  flashMode?: FlashMode;
  /** How long to watch the board boot after flashing (default 5 s; 0 skips the check). */
  bootCheckMs?: number;
  /** Called when the board must be put in download mode by hand (the bootloader did not answer). */
  onNeedBootloader?: () => void | Promise<void>;
  /** Called when the board, flashed by hand, should get one plain RESET (see the file comment). */
  onNeedReset?: () => void | Promise<void>;
  /** How long to wait for that RESET (default 60 s; 0: do not ask). */
  resetWaitMs?: number;
  onProgress?: (progress: FlashProgress) => void;
  log?: Logger;
}

export interface FlashResult {
  chip: string;
  flashSizeBytes: number;
  flashMode: FlashMode;
  baud: number;
  imageBytes: number;
  seconds: number;
  /** How the board started (boot-check.ts); `silent` only when the start was not watched (bootCheckMs 0). */
  boot: BootVerdict;
  /** What the verdict was told from, in words. */
  bootEvidence: string;
  /**
   * The MicroPython build written (null: not one we recognise). `variant.filesystem` false
   * (FLASH_512K): the board has no file system to provision.
   */
  variant: FirmwareVariant | null;
  attempts: number;
  /** What the flasher did to MicroPython's file system area (see the file comment). */
  filesystem: 'kept' | 'cleared' | 'blank' | 'not-checked';
  /** How the new firmware was started: by the adapter's reset lines, or by the stub ("run user code"). */
  restartedBy: 'reset-lines' | 'stub';
  /**
   * The boot mode the chip has latched: `download` when it was flashed by hand and RESET
   * was not pressed since — its next software reset lands in the bootloader.
   */
  bootModeLatch: 'flash' | 'download';
}

const RECOVERY_MODES: readonly FlashMode[] = ['dio', 'dout'];
const DEFAULT_BOOT_CHECK_MS = 5_000;

export async function flashEsp8266(options: FlashOptions): Promise<FlashResult> {
  const progress = options.onProgress ?? (() => undefined);
  const log = options.log ?? silentLogger;
  progress({ phase: 'check-image', message: 'checking the firmware image' });
  const info = inspectFirmwareImage(options.image);
  let mode: FlashMode | undefined = options.flashMode;
  const started = Date.now();
  let attempts = 0;
  let baud = options.baud ?? 460_800;
  // 'not-checked' until the area was read (once; after an erase of the whole flash it is blank).
  let filesystem: FlashResult['filesystem'] = options.erase ? 'blank' : 'not-checked';
  // Set when the board said "looks corrupt": erase this, start it again, do not rewrite.
  let eraseBeforeStart: FilesystemRegion | null = null;
  let repairedOnce = false;
  for (;;) {
    attempts++;
    let session: Session | undefined;
    try {
      session = await connect(options, baud, log, progress);
      checkImageFitsBoard(info, { chip: session.chip, flashSizeBytes: session.flashSizeBytes });
      const note = attempts === 1 ? variantNote(info.variant, session.flashSizeBytes) : null;
      if (note) {
        log('info', note);
        progress({ phase: 'detect', message: note });
      }
      if (mode === undefined && /^ESP8285/.test(session.chip)) {
        mode = 'dout';
        progress({ phase: 'detect', message: `an ${session.chip}: its built-in flash works in dout mode only, so the image is written in dout` });
      }
      mode ??= info.flashMode;
      if (eraseBeforeStart) {
        await clearFilesystem(session, eraseBeforeStart, progress);
        eraseBeforeStart = null;
        filesystem = 'cleared';
      } else {
        if (filesystem === 'not-checked') filesystem = await prepareFilesystem(session, info.variant, progress, log);
        await writeImage({
          loader: session.loader,
          image: options.image,
          info,
          mode,
          flashSizeName: session.flashSizeName,
          baud,
          erase: options.erase,
          onProgress: progress,
          verifyError: (message) => new FlashVerifyError(message),
        });
      }
      const first = await startAndWatch(session, options, progress);
      const { restartedBy } = first;
      let boot = first.boot;
      let resetPressed = false;
      // Silence is "unknown", not a good boot: start the board again and listen (startAgain).
      if (boot.verdict === 'silent' && (options.bootCheckMs ?? DEFAULT_BOOT_CHECK_MS) > 0) {
        ({ boot, resetPressed } = await startAgain(session, restartedBy, options, progress, boot));
      }
      const crashed = boot.verdict === 'crash' || boot.verdict === 'boot-loop';
      const next = crashed && options.flashMode === undefined ? RECOVERY_MODES[RECOVERY_MODES.indexOf(mode) + 1] : undefined;
      if (next) {
        progress({ phase: 'reflash', message: `the board does not boot with flash mode ${mode} (${boot.evidence}): flashing again in ${next}` });
        mode = next;
        continue;
      }
      if (crashed) throw new FlashError(`the board does not boot after flashing (flash mode ${mode}: ${boot.evidence}); is this the right firmware for it?`);
      if (boot.filesystem && !repairedOnce) {
        progress({ phase: 'boot-check', message: `MicroPython runs, but ${boot.evidence}: clearing it and starting the board again` });
        repairedOnce = true;
        eraseBeforeStart = filesystemResetRange(boot.filesystem);
        continue;
      }
      if (boot.verdict === 'fs-corrupt') {
        progress({
          phase: 'boot-check',
          message: `MicroPython runs, but ${boot.evidence}: data from another firmware is where it keeps its files. Flash again with the flash erased first to start with an empty file system`,
        });
      }
      let bootModeLatch: 'flash' | 'download' = restartedBy === 'reset-lines' || resetPressed ? 'flash' : 'download';
      // Not asked when the start was not watched: the caller wanted the flash alone, and the
      // latch then stays "download" (what it certainly is).
      if (restartedBy === 'stub' && !resetPressed && options.bootCheckMs !== 0 && (options.resetWaitMs ?? 60_000) > 0) {
        bootModeLatch = await askForReset(session, options, progress);
      }
      progress({ phase: 'done', message: `flashed in ${((Date.now() - started) / 1000).toFixed(1)} s` });
      return {
        chip: session.chip,
        flashSizeBytes: session.flashSizeBytes,
        flashMode: mode,
        baud,
        imageBytes: info.size,
        seconds: (Date.now() - started) / 1000,
        boot: boot.verdict,
        bootEvidence: boot.evidence,
        variant: info.variant,
        attempts,
        filesystem,
        restartedBy,
        bootModeLatch,
      };
    } catch (error) {
      if (error instanceof UnsupportedChipError || error instanceof FlashError || error instanceof FirmwareImageError) throw error;
      // A fast rate some adapters cannot keep up with: fall back once to 115200.
      if (baud !== 115_200 && attempts < 3) {
        log('warn', `flashing at ${baud} baud failed (${(error as Error).message}); trying 115200`);
        progress({ phase: 'connect', message: `flashing at ${baud} baud failed; trying 115200 baud` });
        baud = 115_200;
        continue;
      }
      throw new FlashError(`flashing failed: ${(error as Error).message}`);
    } finally {
      // Every round ends with the port closed: the next one (or the provisioner) opens it again.
      await session?.transport.disconnect().catch(() => undefined);
    }
  }
}

/**
 * Starts the new firmware and watches it boot. Reset lines that proved to work pulse EN
 * (the boot mode latches "flash"); otherwise the stub's "run user code" starts the flash
 * without a reset. The port goes to 74880 for the ROM's lines (before the reset, or right
 * after "run user code", which the stub must still receive at its own rate), and ends at
 * 115200, where MicroPython talks, whatever the verdict.
 */
async function startAndWatch(
  session: Session,
  options: FlashOptions,
  progress: (p: FlashProgress) => void,
): Promise<{ restartedBy: FlashResult['restartedBy']; boot: BootJudgement }> {
  const restartedBy = session.linesWork ? ('reset-lines' as const) : ('stub' as const);
  const watchMs = options.bootCheckMs ?? DEFAULT_BOOT_CHECK_MS;
  progress({ phase: 'reset', message: session.linesWork ? 'restarting the board' : 'starting the new firmware' });
  session.transport.flushInput();
  if (restartedBy === 'reset-lines') {
    if (watchMs > 0) await session.port.setBaudRate(ROM_BAUD);
    await hardReset(session.port);
  } else {
    await session.loader.after('soft_reset');
    if (watchMs > 0) await session.port.setBaudRate(ROM_BAUD);
  }
  if (watchMs === 0) {
    await session.port.setBaudRate(FIRMWARE_BAUD);
    return { restartedBy, boot: { verdict: 'silent', evidence: 'the start was not watched' } };
  }
  progress({ phase: 'boot-check', message: 'watching the board start (its ROM at 74880 baud, MicroPython at 115200)' });
  // romFrom 0: the input was flushed before the start, and the port is at 74880 already —
  // what the board printed before the watch's first look (a busy computer) counts.
  const watch = await watchBoot(bootLine(session), { watchMs, readRom: true, romFrom: 0, expectedResets: restartedBy === 'reset-lines' ? 1 : 0 });
  // No SYNC is sent to find out whether a silent board sits in its bootloader: a board
  // that is only slow to start would take those 46-byte frames as console input. A crash
  // into the bootloader shows at 74880 anyway (the ROM's "boot mode:(1,…)").
  return { restartedBy, boot: watch };
}

/** Starts of a board that stays silent: the first, and this many minus one again through the reset lines. */
const SILENT_STARTS = 3;

/**
 * After a start in which the board said nothing MicroPython says: with working reset lines
 * it is restarted and watched again (SILENT_STARTS in all); without, the user is asked for
 * one plain RESET (which also latches "boot from flash") and the start after it is watched.
 * Resolves with the first verdict that is not `silent`; otherwise throws a FlashError that
 * says what to do — the board is never reported flashed on silence.
 */
async function startAgain(
  session: Session,
  restartedBy: FlashResult['restartedBy'],
  options: FlashOptions,
  progress: (p: FlashProgress) => void,
  first: BootJudgement,
): Promise<{ boot: BootJudgement; resetPressed: boolean }> {
  const watchMs = options.bootCheckMs ?? DEFAULT_BOOT_CHECK_MS;
  const written = 'the firmware is written and verified, but the board did not start';
  let boot = first;
  if (restartedBy === 'reset-lines') {
    for (let start = 2; start <= SILENT_STARTS; start++) {
      progress({ phase: 'reset', message: `the board said nothing after starting (${boot.evidence}): restarting it again (${start} of ${SILENT_STARTS})` });
      session.transport.flushInput();
      await session.port.setBaudRate(ROM_BAUD);
      await hardReset(session.port);
      boot = await watchBoot(bootLine(session), { watchMs, readRom: true, expectedResets: 1 });
      if (boot.verdict !== 'silent') return { boot, resetPressed: false };
    }
    throw new FlashError(
      `${written}: restarted ${SILENT_STARTS} times through the adapter's reset lines, ${boot.evidence}. ` +
        'Unplug the board, plug it in again and flash it again; if it stays silent, flash it in flash mode dout',
    );
  }
  if ((options.resetWaitMs ?? 60_000) <= 0) {
    throw new FlashError(`${written} (${boot.evidence}): press RESET on the board (not BOOT), then set it up again`);
  }
  const latch = await askForReset(
    session,
    options,
    progress,
    `the board said nothing after starting (${boot.evidence}): press RESET on the board once (not BOOT) to start it`,
  );
  if (latch !== 'flash')
    throw new FlashError(`${written} (${boot.evidence}), and RESET was not pressed: press RESET on the board (not BOOT), then set it up again`);
  // RESET was seen at 74880; what follows is read as after any start (the ROM, then MicroPython).
  boot = await watchBoot(bootLine(session), { watchMs, readRom: true });
  if (boot.verdict === 'silent') {
    throw new FlashError(
      `${written}, not even after RESET: ${boot.evidence}. Unplug the board, plug it in again and flash it again; if it stays silent, flash it in flash mode dout`,
    );
  }
  return { boot, resetPressed: true };
}

/**
 * Before writing a MicroPython build with a file system: reads the first sector of the
 * area it will mount. Its files are kept; another firmware's data is cleared (see the file
 * comment). Unknown images (not a MicroPython build we recognise) are not checked.
 */
async function prepareFilesystem(
  session: Session,
  variant: FirmwareVariant | null,
  progress: (p: FlashProgress) => void,
  log: Logger,
): Promise<FlashResult['filesystem']> {
  if (!variant?.filesystem) return 'not-checked';
  const region = filesystemRegion(session.flashSizeBytes, variant.name === 'FLASH_1M' ? { userStart: 0x98000 } : {});
  if (!region) return 'not-checked';
  const state = inspectFilesystemArea(await session.loader.readFlash(region.offset, FILESYSTEM_SECTOR_BYTES));
  log('info', `file system area at 0x${region.offset.toString(16)}: ${state}`);
  if (shouldEraseFilesystemArea(state)) {
    progress({
      phase: 'erase',
      message: "another firmware's data is where MicroPython keeps its files: clearing it, so MicroPython starts with an empty file system",
    });
    await clearFilesystem(session, filesystemResetRange(region), progress, false);
    return 'cleared';
  }
  if (state === 'blank') return 'blank';
  progress({ phase: 'detect', message: `the board has a MicroPython file system (${state === 'fat' ? 'FAT' : 'LittleFS'}): its files are kept` });
  return 'kept';
}

/** Erases the start of the file system area: MicroPython's next boot formats it. */
async function clearFilesystem(session: Session, range: FilesystemRegion, progress: (p: FlashProgress) => void, report = true): Promise<void> {
  if (report) progress({ phase: 'erase', message: `clearing ${range.length / 1024} KB at 0x${range.offset.toString(16)}, where MicroPython keeps its files` });
  await eraseRegion(session.loader, range.offset, range.length);
}

/** The port as the boot watch reads it: what esptool-js's transport has received, our writes. */
function bootLine(session: Session): BootLine {
  return {
    received: () => session.transport.peek(),
    setBaud: (baud) => session.port.setBaudRate(baud),
    write: async (data) => {
      const writer = session.port.writable!.getWriter();
      try {
        await writer.write(data);
      } finally {
        writer.releaseLock();
      }
    },
  };
}

/**
 * After a flash by hand: one plain RESET latches "boot from flash". The ROM says so itself:
 * after a reset it prints "rst cause:2, boot mode:(3,…)" at 74880 baud — (1,…) when BOOT
 * was held too. So the port listens at 74880 until the ROM's banner shows boot mode 3, or
 * `resetWaitMs` passes (MicroPython's own output, at 115200, cannot pass for a reset: it
 * reads as garbage at 74880). The port is left at 115200.
 */
async function askForReset(
  session: Session,
  options: FlashOptions,
  progress: (p: FlashProgress) => void,
  message = 'press RESET on the board once (not BOOT), so that it starts by itself from now on',
): Promise<'flash' | 'download'> {
  // Listening at 74880 before asking: a quick press must not be missed.
  await session.port.setBaudRate(ROM_BAUD);
  const seen = session.transport.peek().length;
  progress({ phase: 'press-reset', message });
  await options.onNeedReset?.();
  const deadline = Date.now() + (options.resetWaitMs ?? 60_000);
  let toldBootHeld = false;
  try {
    while (Date.now() < deadline) {
      const last = romBanners(session.transport.peek().subarray(seen)).at(-1);
      if (last?.bootMode === 3) return 'flash';
      if (last?.bootMode === 1 && !toldBootHeld) {
        toldBootHeld = true;
        progress({ phase: 'press-reset', message: 'the board restarted in download mode (was BOOT held?): press RESET alone, without BOOT' });
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return 'download';
  } finally {
    await session.port.setBaudRate(FIRMWARE_BAUD);
  }
}

/**
 * Flashing an ESP8266 with esptool-js, with a progress event for every phase: connect,
 * chip and flash-size detection, optional erase, compressed write (460800 baud by
 * default, 115200 when that fails), MD5 verification, reset, and a check that the board
 * boots — re-flashing in `dio`, then `dout`, when a `qio` flash boot-loops with
 * "Fatal exception", as some boards need.
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
 */
import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { ESPLoader, Transport, type IEspLoaderTerminal, type ResetConstructors } from 'esptool-js';
import { silentLogger, type Logger } from '../log.js';
import { checkImageFitsBoard, FirmwareImageError, inspectFirmwareImage, type FirmwareImageInfo, type FlashMode } from './firmware-image.js';
import { WebSerialPort } from './web-serial-port.js';
import { judgeBootOutput, watchBoot, type BootVerdict } from './boot-check.js';
import { enterBootloader, hardReset, usbJtagSerialReset } from './reset-sequences.js';

/**
 * `bootloader`: the board must be put in download mode by hand (hold BOOT, press RESET).
 * `press-reset`: after such a flash, one plain RESET makes the board start by itself later.
 */
export type FlashPhase = 'check-image' | 'connect' | 'bootloader' | 'detect' | 'erase' | 'write' | 'verify' | 'reset' | 'boot-check'
  | 'reflash' | 'press-reset' | 'done';

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
  /** Flash mode to write; default: the image's own, with automatic recovery via dio, dout. */
  flashMode?: FlashMode;
  /** How long to watch the board boot after flashing (default 4 s; 0 skips the check). */
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
  boot: BootVerdict;
  attempts: number;
  /** How the new firmware was started: by the adapter's reset lines, or by the stub ("run user code"). */
  restartedBy: 'reset-lines' | 'stub';
  /**
   * The boot mode the chip has latched: `download` when it was flashed by hand and RESET
   * was not pressed since — its next software reset lands in the bootloader.
   */
  bootModeLatch: 'flash' | 'download';
}

export class UnsupportedChipError extends Error {
  override name = 'UnsupportedChipError';
}
export class FlashError extends Error {
  override name = 'FlashError';
}
/** What the flash holds after writing is not the image (MD5 mismatch). */
export class FlashVerifyError extends FlashError {
  override name = 'FlashVerifyError';
}

const RECOVERY_MODES: readonly FlashMode[] = ['dio', 'dout'];
const FLASH_SIZES: Record<string, number> = {
  '256KB': 256 * 1024, '512KB': 512 * 1024, '1MB': 1 << 20, '2MB': 2 << 20, '4MB': 4 << 20, '8MB': 8 << 20, '16MB': 16 << 20,
};

/** One esptool-js session on the port: connected, stub running, at `baud`. */
interface Session {
  port: WebSerialPort;
  transport: Transport;
  loader: ESPLoader;
  chip: string;
  flashSizeBytes: number;
  /** esptool's name of the detected size, e.g. '4MB'. */
  flashSizeName: string;
  /** The bootloader answered after the adapter reset the chip: its lines are wired. */
  linesWork: boolean;
}

export async function flashEsp8266(options: FlashOptions): Promise<FlashResult> {
  const progress = options.onProgress ?? (() => undefined);
  const log = options.log ?? silentLogger;
  progress({ phase: 'check-image', message: 'checking the firmware image' });
  const info = inspectFirmwareImage(options.image);
  let mode: FlashMode = options.flashMode ?? info.flashMode;
  const started = Date.now();
  let attempts = 0;
  let baud = options.baud ?? 460_800;
  for (;;) {
    attempts++;
    let session: Session | undefined;
    try {
      session = await connect(options, baud, log, progress);
      checkImageFitsBoard(info, { chip: session.chip, flashSizeBytes: session.flashSizeBytes });
      await write(session, options, info, mode, progress);
      progress({ phase: 'reset', message: session.linesWork ? 'restarting the board' : 'starting the new firmware' });
      session.transport.flushInput();
      // Reset lines that proved to work pulse EN (the boot mode latches "flash");
      // otherwise the stub's "run user code" starts the flash without a reset.
      const restartedBy = session.linesWork ? 'reset-lines' as const : 'stub' as const;
      if (session.linesWork) await hardReset(session.port);
      else await session.loader.after('soft_reset');
      // The firmware talks at 115200; keep the port open so nothing it prints is missed.
      await session.port.setBaudRate(115_200);
      let boot: BootVerdict = 'unknown';
      if (options.bootCheckMs !== 0) {
        progress({ phase: 'boot-check', message: 'watching the board start' });
        boot = await watchBoot(() => session!.transport.peek(), options.bootCheckMs ?? 4_000);
        // Silent: a board back in its ROM bootloader (a crash, then a reset in the latched
        // download mode) answers a SYNC; a running firmware does not.
        if (boot === 'unknown' && await answersSync(session)) boot = 'crash';
      }
      const next = boot === 'crash' && options.flashMode === undefined ? RECOVERY_MODES[RECOVERY_MODES.indexOf(mode) + 1] : undefined;
      if (boot === 'crash' && next) {
        await session.transport.disconnect().catch(() => undefined);
        progress({ phase: 'reflash', message: `the board does not boot with flash mode ${mode}: flashing again in ${next}` });
        mode = next;
        continue;
      }
      if (boot === 'crash') {
        await session.transport.disconnect().catch(() => undefined);
        throw new FlashError(`the board does not boot after flashing (tried flash mode ${mode}); is this the right firmware for it?`);
      }
      let bootModeLatch: 'flash' | 'download' = restartedBy === 'reset-lines' ? 'flash' : 'download';
      if (restartedBy === 'stub' && (options.resetWaitMs ?? 60_000) > 0) {
        bootModeLatch = await askForReset(session, options, progress);
      }
      await session.transport.disconnect().catch(() => undefined);
      progress({ phase: 'done', message: `flashed in ${((Date.now() - started) / 1000).toFixed(1)} s` });
      return {
        chip: session.chip, flashSizeBytes: session.flashSizeBytes, flashMode: mode, baud, imageBytes: info.size,
        seconds: (Date.now() - started) / 1000, boot, attempts, restartedBy, bootModeLatch,
      };
    } catch (error) {
      if (session) await session.transport.disconnect().catch(() => undefined);
      if (error instanceof UnsupportedChipError || error instanceof FlashError || error instanceof FirmwareImageError) throw error;
      // A fast rate some adapters cannot keep up with: fall back once to 115200.
      if (baud !== 115_200 && attempts < 3) {
        log('warn', `flashing at ${baud} baud failed (${(error as Error).message}); trying 115200`);
        progress({ phase: 'connect', message: `flashing at ${baud} baud failed; trying 115200 baud` });
        baud = 115_200;
        continue;
      }
      throw new FlashError(`flashing failed: ${(error as Error).message}`);
    }
  }
}

/** How long to keep trying once the user was asked to put the board in download mode. */
const BOOTLOADER_WAIT_MS = 60_000;

async function connect(options: FlashOptions, baud: number, log: Logger, progress: (p: FlashProgress) => void): Promise<Session> {
  progress({ phase: 'connect', message: `connecting to ${options.portPath}` });
  let asked = 0;
  for (;;) {
    const port = new WebSerialPort({ path: options.portPath, vendorId: options.vendorId, productId: options.productId, logger: log });
    const transport = new Transport(port as unknown as ConstructorParameters<typeof Transport>[0], false);
    // esptool-js traces through console.log even with tracing off: keep it in our log.
    transport.trace = (message: string) => log('debug', `esptool: ${message}`);
    const loader = new ESPLoader({ transport, baudrate: baud, romBaudrate: 115_200, terminal: terminalFor(log), resetConstructors: resetsThrough(port) });
    try {
      // A few attempts only: a board whose adapter cannot reset it never answers by itself.
      // Once the user was asked for the buttons, the chip is not reset again.
      await loader.detectChip(asked ? 'no_reset' : 'default_reset', asked ? 2 : 3);
      progress({ phase: 'detect', message: 'reading the chip and its flash' });
      const chip = await loader.chip.getChipDescription(loader);
      if (!/^ESP82(66|85)/.test(chip)) {
        throw new UnsupportedChipError(`the board is an ${chip}: Cloudmanager flashes ESP8266 and ESP8285 boards`);
      }
      await loader.runStub();
      if (baud !== 115_200) await loader.changeBaud();
      const size = await loader.detectFlashSize();
      const flashSizeBytes = FLASH_SIZES[size ?? ''];
      if (!flashSizeBytes) throw new FlashError(`could not detect the flash size (${size ?? 'no answer'})`);
      return { port, transport, loader, chip, flashSizeBytes, flashSizeName: size!, linesWork: !asked && port.hasResetLines === true };
    } catch (error) {
      await transport.disconnect().catch(() => undefined);
      if (error instanceof UnsupportedChipError || error instanceof FlashError) throw error;
      // The bootloader did not answer: no reset lines, lines wired to nothing, or a board
      // busy elsewhere. Ask for the buttons, then keep trying for a while.
      if (!asked) {
        progress({ phase: 'bootloader', message: 'hold BOOT (GPIO0) and press RESET on the board to enter download mode' });
        asked = Date.now();
        await options.onNeedBootloader?.();
        continue;
      }
      if (Date.now() - asked < BOOTLOADER_WAIT_MS) continue;
      throw new FlashError(`no answer from an ESP bootloader on ${options.portPath}: ${(error as Error).message}`);
    }
  }
}

/** Our reset sequences, in the shape esptool-js calls them (its own are not used). */
function resetsThrough(port: WebSerialPort): ResetConstructors {
  const strategy = (transport: Transport, reset: () => Promise<void>) => ({ transport, reset });
  return {
    classicReset: ((transport: Transport, resetDelay: number) => strategy(transport, () => enterBootloader(port, { resetDelayMs: resetDelay }))) as unknown as ResetConstructors['classicReset'],
    hardReset: ((transport: Transport) => strategy(transport, () => hardReset(port))) as unknown as ResetConstructors['hardReset'],
    usbJTAGSerialReset: ((transport: Transport) => strategy(transport, () => usbJtagSerialReset(port))) as unknown as ResetConstructors['usbJTAGSerialReset'],
  };
}

/** Does the ROM bootloader answer (no reset)? Then the firmware is not running. */
async function answersSync(session: Session): Promise<boolean> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      session.transport.flushInput();
      await session.loader.sync();
      return true;
    } catch {
      // no answer yet
    }
  }
  return false;
}

/**
 * After a flash by hand: one plain RESET latches "boot from flash". Waits until the board
 * starts again (MicroPython's banner after the reset) or `resetWaitMs`.
 */
async function askForReset(session: Session, options: FlashOptions, progress: (p: FlashProgress) => void): Promise<'flash' | 'download'> {
  progress({ phase: 'press-reset', message: 'press RESET on the board once (not BOOT), so that it starts by itself from now on' });
  const seen = session.transport.peek().length;
  await options.onNeedReset?.();
  const deadline = Date.now() + (options.resetWaitMs ?? 60_000);
  while (Date.now() < deadline) {
    const fresh = Buffer.from(session.transport.peek().subarray(seen)).toString('latin1');
    if (judgeBootOutput(fresh) === 'ok') return 'flash';
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return 'download';
}

async function write(session: Session, options: FlashOptions, info: FirmwareImageInfo, mode: FlashMode, progress: (p: FlashProgress) => void): Promise<void> {
  const { loader } = session;
  const internals = loader as unknown as LoaderInternals;
  if (options.erase) {
    progress({ phase: 'erase', message: 'erasing the flash' });
    await loader.eraseFlash();
  }
  progress({ phase: 'write', message: `writing ${info.size} bytes in flash mode ${mode}` });
  // The header carries the flash mode we write and the size the chip reported ('keep' has
  // left some ESP-01s unbootable); esptool-js's own function patches it.
  const image = await internals._updateImageFlashParams(new Uint8Array(options.image), 0, mode, 'keep', session.flashSizeName);
  // Compressed and sent block by block here rather than by esptool-js's writeFlash, which
  // inflates every block again to report progress (about 60 ms a block: 1.5 s of 600 KB).
  const compressed = deflateSync(image, { level: 9 });
  const blockSize = internals.FLASH_WRITE_SIZE;
  const blocks = Math.ceil(compressed.length / blockSize);
  // The stub acknowledges a block once received and writes it while the next one arrives;
  // allow for a block that inflates to four times its size being erased and written.
  const blockTimeout = Math.max(3_000, internals.timeoutPerMb(internals.ERASE_WRITE_TIMEOUT_PER_MB, blockSize * 4));
  await loader.flashDeflBegin(image.length, compressed.length, 0);
  for (let seq = 0; seq < blocks; seq++) {
    await loader.flashDeflBlock(compressed.subarray(seq * blockSize, (seq + 1) * blockSize), seq, blockTimeout);
    progress({ phase: 'write', message: 'writing (compressed)', done: Math.min((seq + 1) * blockSize, compressed.length), total: compressed.length });
  }
  await loader.flashDeflFinish(false);
  // Verified here, so a mismatch is an error of its own kind.
  progress({ phase: 'verify', message: 'checking the MD5 of what was written' });
  const expected = createHash('md5').update(image).digest('hex');
  const actual = String(await loader.flashMd5sum(0, image.length));
  if (actual !== expected) {
    throw new FlashVerifyError(`the flash does not hold what was written (MD5 ${actual}, expected ${expected}); try again, and if it keeps failing the board's flash may be faulty`);
  }
}

/** What we use of esptool-js's loader beyond its typed API. */
interface LoaderInternals {
  FLASH_WRITE_SIZE: number;
  ERASE_WRITE_TIMEOUT_PER_MB: number;
  timeoutPerMb(secondsPerMb: number, sizeBytes: number): number;
  _updateImageFlashParams(image: Uint8Array, address: number, flashMode: string, flashFreq: string, flashSize: string): Promise<Uint8Array>;
}

function terminalFor(log: Logger): IEspLoaderTerminal {
  let line = '';
  return {
    clean: () => undefined,
    write: (text: string) => {
      line += text;
    },
    writeLine: (text: string) => {
      log('debug', `esptool: ${line}${text}`);
      line = '';
    },
  };
}

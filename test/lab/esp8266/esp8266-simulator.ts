/**
 * A simulated ESP8266 board behind a USB-serial adapter without reset lines, on a pty
 * (PtyLink): the ROM UART download loader, the esptool flasher stub once a host uploads it,
 * a flash chip kept in a file, and what the chip prints when it boots from flash.
 *
 *   const sim = new Esp8266Simulator({ flashImagePath });
 *   await sim.powerOn({ bootMode: 'download' });   // sim.path is the serial port to open
 *   …flash it with esptool-js or esp-web-flasher…
 *   await sim.pressReset();                        // boots the flash: banner or crash loop
 *
 * The adapter (option `adapter`, reset-circuit.ts) decides whether the host can reset the
 * chip: `auto` wires DTR/RTS to EN/IO0 as a NodeMCU does (the link must carry modem lines:
 * an RFC 2217 link), `unwired` accepts the lines and does nothing, `none` (a pty) has no
 * lines. `pressBootAndReset()` is the user holding BOOT and pressing RESET (download mode),
 * `pressReset()` a plain reset (boot from flash). After the link died (failAfterBytes),
 * `pressBootAndReset()` re-plugs it.
 *
 * The boot mode is latched at a hardware reset (power on, RESET, EN from the adapter), as
 * on the real chip: a software reset (the stub's or ROM's reboot, MicroPython's
 * machine.reset(), a watchdog or exception reset) boots in the latched mode, and the
 * stub's "run user code" jumps to the flash without changing the latch — so after a flash
 * without reset lines, the next software reset lands in the bootloader again.
 *
 * The UART (uart.ts): after a reset the ROM prints at 74880 baud; the ROM loader then
 * takes the host's rate (auto-baud); the stub changes rate on CHANGE_BAUDRATE by the
 * divider it computes from the new and the old rate; MicroPython (or whatever boots) sets
 * 115200. Whatever is sent at another rate than the host's port is set to arrives as the
 * garbage a real receiver would read. An RFC 2217 link tells the host's rate; on a pty the
 * host is assumed at 115200 after each reset and at the rate it asked the stub for after
 * CHANGE_BAUDRATE, and what it sends is taken as sent at the chip's rate.
 *
 * Timing (flash-chip.ts): a W25Q32 by default — 45 ms a 4 KB sector erase, 150 ms a 64 KB
 * block erase, 12 ms to program 4 KB, 2.5 s per MB for a chip erase; `flashTiming` (or the
 * older `sectorEraseMs` / `sectorWriteMs`) speeds it up for tests that are not about it.
 * After the ROM's load log a crash in the wrong flash mode prints after CRASH_AFTER_MS,
 * and a firmware that runs sets its UART after FIRMWARE_START_MS (the SDK's start-up).
 *
 * Shortcuts — where this simulator is simpler than the hardware:
 * - Whatever code a host uploads and starts with MEM_END is taken to be an esptool flasher
 *   stub (the bytes are stored, not executed); an entry point outside the uploaded RAM
 *   makes the chip go silent until reset.
 * - The ROM loader auto-bauds on every byte (the real one detects the rate from the first
 *   SYNC and keeps it); on a pty it runs at 115200, so a host that forgets to change its
 *   own rate after CHANGE_BAUDRATE still works there (on hardware it would read garbage).
 * - The host's rate is compared when the chip writes, a line at a time for the ROM's
 *   output (a host that switches mid-line garbles from the next line on; see uart.ts).
 * - Writes past the physical end of the flash fail (stub error 0xC4, ROM error 0x06); a
 *   real SPI flash would ignore the high address bits and wrap around.
 * - Only the registers esptool-style flashers touch are modelled (chip magic, efuses/MAC,
 *   UART divider, SPI user command for RDID); other addresses are plain storage.
 * - The ROM's reply to an unknown command reuses the previous command byte (one static
 *   response record); the ESP32 mode answers detection only (sync, registers, RAM
 *   download, flash begin/data), no SPI/flash-id emulation for it.
 * - A bad image (no 0xE9 magic, or a wrong checksum) makes the ROM print its complaint
 *   ("ets_main.c" / "csum") and hang until reset, as observed on boards with erased flash.
 * - `needsMode`: an image whose flash mode needs more data lines than the board has
 *   (qio/qout on a dio/dout board) crashes right after the ROM loads it: "Fatal exception
 *   (0)" and the register dump at 74880 (the UART is still the ROM's), a few garbage bytes,
 *   a reset — every `crashIntervalMs`. An ESP8285 (`chip: 'ESP8285'`) has 1 MB of flash
 *   and needs dout by default.
 * - Soft reboots (stub FLASH_END 0, ROM FLASH_END 0) boot in the latched mode; RUN_USER_CODE
 *   and ROM FLASH_END 1 jump to the flash (printed here with the ROM's load log but no new
 *   "rst cause" line, since nothing was reset).
 * - Without `onBoot`, a firmware that boots is a stand-in for MicroPython's start
 *   (micropython-standin.ts: initial setup, a corrupt file system, the banner).
 * - Faults: `corruptBlock` flips one bit in the first write of that data block (every
 *   write session); `failAfterBytes` kills the pty once that many flash data bytes (as sent)
 *   have arrived: the host's port errors, the board is 'off' until pressBootAndReset().
 */
import { EventEmitter } from 'node:events';
import { PtyLink, type SerialLink } from '../pty-link.js';
import {
  fatalExceptionText,
  FIRMWARE_BAUD,
  flashModeWorks,
  inspectBootImage,
  romBanner,
  romLoadLog,
  ROM_BOOT_BAUD,
  type BootImage,
  type FlashMode,
} from './boot-console.js';
import { ChipRegisters, UART_CLOCK_HZ } from './chip-registers.js';
import { ResetCircuit, type AdapterModel } from './reset-circuit.js';
import { FlasherStub } from './flasher-stub.js';
import { FlashChip, W25Q32_TIMING, type FlashTiming } from './flash-chip.js';
import { startFirmware } from './firmware-start.js';
import { ChipWaits } from './chip-waits.js';
import { ratesMatch, SimUart } from './uart.js';
import { opName, RomLoader, type Loader, type LoaderAction, type LoaderContext } from './rom-protocol.js';
import { slipEncode, SlipDecoder } from './slip.js';
import type { BootMode, CommandLogEntry, Esp8266SimulatorOptions, SimulatorEvents, SimulatorState } from './simulator-types.js';

export type { BootedFirmware, BootMode, BootOutcome, CommandLogEntry, Esp8266SimulatorOptions, SimulatorEvents, SimulatorState } from './simulator-types.js';

/** After the ROM's load log: when a wrong-flash-mode image has crashed (the first fetch from flash fails). */
export const CRASH_AFTER_MS = 20;
/** After the ROM's load log: when a firmware that runs has set its UART (the SDK's start-up). */
export const FIRMWARE_START_MS = 100;

export class Esp8266Simulator extends EventEmitter<SimulatorEvents> {
  readonly flash: FlashChip;
  readonly commandLog: CommandLogEntry[] = [];
  readonly internalErrors: unknown[] = [];
  private readonly options: Esp8266SimulatorOptions;
  private readonly ctx: LoaderContext;
  private link: SerialLink | undefined;
  private linkPath: string | undefined;
  private readonly ownLinks = new Set<SerialLink>();
  private stateValue: SimulatorState = 'off';
  private loader: Loader | null = null;
  private readonly slip = new SlipDecoder();
  private epoch = 0;
  private queue: Promise<void> = Promise.resolve();
  private busyUntil = 0;
  private readonly waits = new ChipWaits();
  private firmwareInput: ((data: Buffer) => void) | null = null;
  private firmwareCleanup: (() => void) | null = null;
  private readonly circuit: ResetCircuit;
  private readonly uart: SimUart;
  private readonly needsMode: FlashMode | undefined;
  /** The boot mode latched at the last hardware reset. */
  private latched: BootMode = 'download';
  /** Starts of the firmware still to hang (option silentBoots). */
  private silentBootsLeft: number;

  constructor(options: Esp8266SimulatorOptions) {
    super();
    this.options = options;
    this.silentBootsLeft = options.silentBoots ?? 0;
    const chip = options.chip ?? 'ESP8266';
    this.circuit = new ResetCircuit(options.adapter ?? 'none');
    this.circuit.on('hold', () => {
      if (this.stateValue !== 'off') this.stop('reset');
    });
    this.circuit.on('release', (mode) => {
      if (this.stateValue !== 'off' && this.link) this.hardwareReset(mode, 2);
    });
    const esp8285 = chip === 'ESP8285';
    this.needsMode = options.needsMode ?? (esp8285 ? 'dout' : undefined);
    this.flash = new FlashChip({
      path: options.flashImagePath,
      sizeBytes: options.flashSizeBytes ?? (esp8285 ? 1 << 20 : undefined),
      jedecId: options.flashJedecId,
    });
    this.uart = new SimUart(() => this.link, FIRMWARE_BAUD);
    const registers = new ChipRegisters({ chip, flash: this.flash, mac: options.mac, uartBaud: () => this.uart.rate });
    const timing: FlashTiming = { ...W25Q32_TIMING, ...options.flashTiming };
    if (options.sectorEraseMs !== undefined) timing.sectorEraseMs = options.sectorEraseMs;
    if (options.sectorWriteMs !== undefined) timing.sectorWriteMs = options.sectorWriteMs;
    this.ctx = {
      chip,
      flash: this.flash,
      registers,
      timing,
      faults: { corruptBlock: options.corruptBlock, failAfterBytes: options.failAfterBytes, flashDataBytes: 0 },
    };
    if (options.link !== undefined && typeof options.link !== 'string') {
      this.link = options.link;
      this.linkPath = options.link.path;
      this.attach(options.link);
    } else {
      this.linkPath = options.link;
    }
  }

  /** The serial port a host opens (known once powered on, or when a link was given). */
  get path(): string {
    const path = this.link?.path ?? this.linkPath;
    if (!path) throw new Error('the simulator has no serial port yet: powerOn() first');
    return path;
  }

  get state(): SimulatorState {
    return this.stateValue;
  }

  /** Who answers in download mode: the ROM loader or the uploaded stub. */
  get loaderKind(): 'rom' | 'stub' | null {
    return this.stateValue === 'download' ? (this.loader?.kind ?? null) : null;
  }

  /** The chip's UART rate now (the stub's may be off the asked-for rate by its divider's rounding). */
  get lineRate(): number {
    return this.uart.rate;
  }

  /** The boot mode a software reset would boot in now. */
  get latchedBootMode(): BootMode {
    return this.latched;
  }

  get adapter(): AdapterModel {
    return this.circuit.model;
  }

  async powerOn({ bootMode = 'download' }: { bootMode?: BootMode } = {}): Promise<void> {
    if (!this.link) {
      const link = await PtyLink.open({ link: this.linkPath, baud: FIRMWARE_BAUD });
      this.ownLinks.add(link);
      this.link = link;
      this.linkPath = link.path;
      this.attach(link);
    }
    this.hardwareReset(bootMode, 1);
  }

  /** Unplugs the board: the pty goes away. */
  async powerOff(): Promise<void> {
    this.stop('off');
    const link = this.link;
    this.link = undefined;
    if (link) await link.close();
  }

  /** RESET alone: the chip boots from flash (and latches that mode). */
  async pressReset(): Promise<void> {
    if (this.stateValue === 'off') return;
    this.hardwareReset('flash', 2);
  }

  /** BOOT held while RESET is pressed: download mode. Re-plugs a board whose link died. */
  async pressBootAndReset(): Promise<void> {
    if (this.stateValue === 'off' || !this.link) await this.powerOn({ bootMode: 'download' });
    else this.hardwareReset('download', 2);
  }

  /** A software reset (what machine.reset() does): boots in the latched mode. */
  softwareReset(): void {
    if (this.stateValue === 'off' || this.stateValue === 'reset' || !this.link) return;
    this.reset(this.latched, 2);
  }

  setFaults(faults: { corruptBlock?: number; failAfterBytes?: number }): void {
    this.ctx.faults.corruptBlock = faults.corruptBlock;
    this.ctx.faults.failAfterBytes = faults.failAfterBytes;
    this.ctx.faults.flashDataBytes = 0;
  }

  readFlash(offset: number, length: number): Buffer {
    return this.flash.read(offset, length);
  }

  async close(): Promise<void> {
    this.circuit.dispose();
    this.stop('off');
    for (const link of this.ownLinks) await link.close();
    this.ownLinks.clear();
    this.link = undefined;
    this.flash.close();
  }

  private attach(link: SerialLink): void {
    link.on('data', (chunk) => {
      if (link === this.link) this.onHostData(chunk);
    });
    link.on('lines', (lines) => {
      if (link === this.link) this.circuit.setLines(lines);
    });
    link.on('close', () => {
      if (link !== this.link) return;
      this.stop('off');
      this.link = undefined;
    });
  }

  private onHostData(chunk: Buffer): void {
    if (this.stateValue === 'running') {
      this.firmwareInput?.(this.uart.fromHost(chunk));
      return;
    }
    if (this.stateValue !== 'download') return;
    // The ROM loader auto-bauds: it takes whatever rate the host talks at.
    const hostRate = this.uart.reportedHostRate;
    if (this.loader?.kind === 'rom' && hostRate !== undefined && !ratesMatch(hostRate, this.uart.rate)) this.uart.setRate(hostRate);
    for (const frame of this.slip.push(this.uart.fromHost(chunk))) this.enqueue(frame);
  }

  /** Everything from the previous life of the chip stops here. */
  private stop(state: SimulatorState): void {
    this.epoch++;
    this.waits.releaseAll();
    this.firmwareCleanup?.();
    this.firmwareCleanup = null;
    this.firmwareInput = null;
    this.loader = null;
    this.busyUntil = 0;
    this.slip.reset();
    this.setState(state);
  }

  /** A reset through the EN pin, power or the buttons: the strapping pins are latched. */
  private hardwareReset(mode: BootMode, resetCause: number): void {
    this.latched = mode;
    this.reset(mode, resetCause);
  }

  private reset(mode: BootMode, resetCause: number | null): void {
    this.stop(mode === 'download' ? 'download' : 'running');
    this.link!.discardInput();
    // The ROM talks at 74880; a host following the protocol is at 115200 again.
    this.uart.setRate(ROM_BOOT_BAUD);
    this.uart.assumeHostRate(FIRMWARE_BAUD);
    const epoch = this.epoch;
    const boot = mode === 'download' ? this.bootDownload(epoch, resetCause) : this.bootFlash(epoch, resetCause);
    boot.catch((error: unknown) => this.reportFault(error));
  }

  private async bootDownload(epoch: number, resetCause: number | null): Promise<void> {
    await this.printRom(romBanner({ resetCause: resetCause ?? 2, download: true }), epoch);
    if (epoch !== this.epoch) return;
    this.uart.setRate(this.uart.reportedHostRate ?? FIRMWARE_BAUD);
    this.loader = new RomLoader(this.ctx);
    this.emit('boot', { mode: 'download' });
  }

  /** `resetCause` null: a jump from the loader to the flash (no reset, no banner line). */
  private async bootFlash(epoch: number, resetCause: number | null): Promise<void> {
    const image = inspectBootImage((offset, length) => this.flash.read(offset, length), this.flash.size);
    await this.printRom((resetCause === null ? '' : romBanner({ resetCause, download: false })) + romLoadLog(image), epoch);
    if (epoch !== this.epoch) return;
    if (!image.valid) {
      this.emit('boot', { mode: 'flash', result: image.reason, image });
      return; // the ROM hangs
    }
    if (!flashModeWorks(image.flashMode, this.needsMode)) {
      this.emit('boot', { mode: 'flash', result: 'wrong-flash-mode', image });
      await this.waits.wait(CRASH_AFTER_MS);
      if (epoch !== this.epoch) return;
      // Still the ROM's 74880: the firmware died before it set its UART.
      await this.printRom(fatalExceptionText(image.entry), epoch);
      if (epoch !== this.epoch) return;
      this.uart.send(Buffer.from([0x8f, 0x13, 0xfe, 0x00, 0x6c]));
      await this.waits.wait(this.options.crashIntervalMs ?? 300);
      // An exception reset is a software reset: it boots in the latched mode (after a
      // flash without reset lines, the bootloader).
      if (epoch === this.epoch) this.reset(this.latched, 4);
      return;
    }
    await this.waits.wait(FIRMWARE_START_MS); // the SDK starts, the firmware sets up its UART
    if (epoch !== this.epoch) return;
    if (this.silentBootsLeft > 0) {
      this.silentBootsLeft--;
      this.emit('boot', { mode: 'flash', result: 'hung', image });
      return; // silent until the next reset (see the option)
    }
    this.uart.setRate(FIRMWARE_BAUD);
    this.emit('boot', { mode: 'flash', result: 'firmware', image });
    this.startFirmware(image);
  }

  private startFirmware(image: Extract<BootImage, { valid: true }>): void {
    const epoch = this.epoch;
    const cleanup = startFirmware(image, {
      link: this.link!,
      flash: this.flash,
      timing: this.ctx.timing,
      onBoot: this.options.onBoot,
      live: () => epoch === this.epoch,
      send: (data) => {
        this.emit('output', typeof data === 'string' ? data : Buffer.from(data).toString('latin1'), this.uart.rate);
        this.uart.send(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
      },
      setInput: (listener) => (this.firmwareInput = listener),
      restart: () => this.softwareReset(),
      wait: (ms) => this.waits.wait(ms),
      fault: (error) => this.reportFault(error),
    });
    if (cleanup) this.firmwareCleanup = cleanup;
  }

  /** Output at the chip's rate now (the ROM's 74880), a line at a time, each taking its time on the line. */
  private async printRom(text: string, epoch: number): Promise<void> {
    if (epoch !== this.epoch || !this.link) return;
    this.emit('output', text, this.uart.rate);
    for (const line of text.match(/[^\n]*\n|[^\n]+$/g) ?? []) {
      if (epoch !== this.epoch) return;
      this.uart.send(Buffer.from(line, 'latin1'));
      await this.waits.wait((line.length * 10 * 1000) / this.uart.rate);
    }
  }

  private enqueue(frame: Buffer): void {
    const epoch = this.epoch;
    this.queue = this.queue.then(() => this.process(frame, epoch)).catch((error: unknown) => this.reportFault(error));
  }

  private async process(frame: Buffer, epoch: number): Promise<void> {
    if (epoch !== this.epoch || !this.loader) return; // not listening (yet)
    const wait = this.busyUntil - Date.now();
    if (wait > 0) await this.waits.wait(wait);
    const loader = this.loader;
    if (epoch !== this.epoch || !loader) return;
    if (frame[0] === 0x00 && frame.length >= 8) {
      const entry: CommandLogEntry = { loader: loader.kind, op: frame[1]!, name: opName(frame[1]!) };
      this.commandLog.push(entry);
      this.emit('command', entry);
    }
    const result = await loader.handle(frame);
    if (epoch !== this.epoch) return;
    if (result.delayMs) await this.waits.wait(result.delayMs);
    if (epoch !== this.epoch || !this.link) return;
    for (const reply of result.replies) this.uart.send(slipEncode(reply));
    const repliedAt = Date.now();
    if (result.busyMs) this.busyUntil = repliedAt + result.busyMs;
    if (result.work) {
      const chipMs = await result.work;
      if (epoch !== this.epoch) return;
      this.busyUntil = Math.max(this.busyUntil, repliedAt + chipMs);
    }
    if (result.then) await this.perform(result.then, epoch);
  }

  private async perform(action: LoaderAction, epoch: number): Promise<void> {
    const link = this.link!;
    if (action.kind === 'disconnect') {
      this.stop('off');
      this.link = undefined;
      this.emit('disconnect');
      await link.close();
      return;
    }
    await link.drain(); // the answer leaves before the chip changes anything
    if (epoch !== this.epoch) return;
    switch (action.kind) {
      case 'run-stub': {
        await this.waits.wait(2);
        if (epoch !== this.epoch) return;
        const stub = new FlasherStub(this.ctx);
        this.loader = stub;
        this.uart.send(slipEncode(stub.greeting()));
        this.emit('stub-started');
        break;
      }
      case 'hang':
        this.loader = null;
        break;
      case 'set-baud': {
        // The stub's divider sets the rate (close to the one asked for when the host gave
        // the right old rate); a divider of 0 leaves the UART unable to talk.
        this.uart.assumeHostRate(action.baud);
        if (action.divider <= 0) {
          this.loader = null;
          break;
        }
        const rate = UART_CLOCK_HZ / action.divider;
        this.uart.setRate(rate);
        this.emit('baud', rate);
        break;
      }
      case 'reboot':
        this.reset(this.latched, 2);
        break;
      case 'run-user-code':
        this.reset('flash', null);
        break;
    }
  }

  private setState(state: SimulatorState): void {
    if (state === this.stateValue) return;
    this.stateValue = state;
    this.emit('state', state);
  }

  private reportFault(error: unknown): void {
    this.internalErrors.push(error);
    if (this.listenerCount('fault') > 0) this.emit('fault', error);
  }
}

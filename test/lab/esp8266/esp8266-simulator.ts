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
 * Shortcuts — where this simulator is simpler than the hardware:
 * - Whatever code a host uploads and starts with MEM_END is taken to be an esptool flasher
 *   stub (the bytes are stored, not executed); an entry point outside the uploaded RAM
 *   makes the chip go silent until reset.
 * - The ROM "auto-bauds" by assumption: the line runs at 115200 until the stub's
 *   CHANGE_BAUDRATE. A pty cannot tell which rate the host set, so a host that forgets to
 *   change its own rate still works here (on hardware it would read garbage).
 * - The ROM's 74880-baud boot output is turned into what a 115200 receiver reads
 *   (resampleUart) and sent at the 115200 pace; the sender then waits out the 74880 time.
 * - Timing: erase costs `sectorEraseMs` per 4 KB sector (64 KB block erases cost 16
 *   sectors), programming `sectorWriteMs` per 4 KB, MD5 half of that; chip erase is
 *   sectors × sectorEraseMs (2 s for 4 MB by default; a real W25Q32 takes ~10 s).
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
 *   (qio/qout on a dio/dout board) crashes right after the ROM loads it: the ROM message,
 *   "Fatal exception (0)" at 115200, a few garbage bytes, reset — every `crashIntervalMs`.
 * - Soft reboots (stub FLASH_END 0, ROM FLASH_END 0) boot in the latched mode; RUN_USER_CODE
 *   and ROM FLASH_END 1 jump to the flash (printed here with the ROM's load log but no new
 *   "rst cause" line, since nothing was reset).
 * - Faults: `corruptBlock` flips one bit in the first write of that data block (every
 *   write session); `failAfterBytes` kills the pty once that many flash data bytes (as sent)
 *   have arrived: the host's port errors, the board is 'off' until pressBootAndReset().
 */
import { EventEmitter } from 'node:events';
import { PtyLink, type SerialLink } from '../pty-link.js';
import { fatalExceptionText, FIRMWARE_BAUD, flashModeWorks, inspectBootImage, MICROPYTHON_BANNER, resampleUart, romBanner, romLoadLog, ROM_BOOT_BAUD, type BootImage, type FlashMode } from './boot-console.js';
import { ChipRegisters, type SimulatedChip } from './chip-registers.js';
import { ResetCircuit, type AdapterModel } from './reset-circuit.js';
import { FlasherStub } from './flasher-stub.js';
import { FlashChip } from './flash-chip.js';
import { opName, RomLoader, type Loader, type LoaderAction, type LoaderContext } from './rom-protocol.js';
import { slipEncode, SlipDecoder } from './slip.js';

/** `reset`: held in reset by the adapter (EN low): silent until released. */
export type SimulatorState = 'off' | 'reset' | 'download' | 'running';
export type BootMode = 'download' | 'flash';

export interface BootedFirmware {
  image: { flashMode: FlashMode; entry: number; segments: number };
  readFlash(offset: number, length: number): Buffer;
  /** Sends to the host at the line rate (115200 after boot). */
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
  flashSizeBytes?: number;
  flashJedecId?: number;
  /** The flash mode this board's wiring needs ('dio'/'dout' boards crash on qio images). */
  needsMode?: FlashMode;
  corruptBlock?: number;
  failAfterBytes?: number;
  chip?: SimulatedChip;
  mac?: string;
  sectorEraseMs?: number;
  sectorWriteMs?: number;
  /** Period of the crash loop of a wrong-flash-mode image (default 300 ms). */
  crashIntervalMs?: number;
  /** Runs the firmware after a successful boot; may return a cleanup for the next reset. */
  onBoot?: (firmware: BootedFirmware) => void | (() => void);
  /** How the adapter's DTR/RTS reach EN/IO0 (default `none`: no modem lines). */
  adapter?: AdapterModel;
}

export interface CommandLogEntry {
  loader: 'rom' | 'stub';
  op: number;
  name: string;
}

export type BootOutcome =
  | { mode: 'download' }
  | { mode: 'flash'; result: 'firmware' | 'wrong-flash-mode' | 'no-image' | 'bad-checksum'; image: BootImage };

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
  private readonly waits = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  private firmwareInput: ((data: Buffer) => void) | null = null;
  private firmwareCleanup: (() => void) | null = null;
  private readonly circuit: ResetCircuit;
  /** The boot mode latched at the last hardware reset. */
  private latched: BootMode = 'download';

  constructor(options: Esp8266SimulatorOptions) {
    super();
    this.options = options;
    const chip = options.chip ?? 'ESP8266';
    this.circuit = new ResetCircuit(options.adapter ?? 'none');
    this.circuit.on('hold', () => {
      if (this.stateValue !== 'off') this.stop('reset');
    });
    this.circuit.on('release', (mode) => {
      if (this.stateValue !== 'off' && this.link) this.hardwareReset(mode, 2);
    });
    this.flash = new FlashChip({ path: options.flashImagePath, sizeBytes: options.flashSizeBytes, jedecId: options.flashJedecId });
    const registers = new ChipRegisters({ chip, flash: this.flash, mac: options.mac, uartBaud: () => this.link?.lineRate ?? FIRMWARE_BAUD });
    this.ctx = {
      chip,
      flash: this.flash,
      registers,
      timing: { sectorEraseMs: options.sectorEraseMs ?? 2, sectorWriteMs: options.sectorWriteMs ?? 1 },
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
    return this.stateValue === 'download' ? this.loader?.kind ?? null : null;
  }

  get lineRate(): number {
    return this.link?.lineRate ?? FIRMWARE_BAUD;
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
      this.firmwareInput?.(chunk);
      return;
    }
    if (this.stateValue !== 'download') return;
    for (const frame of this.slip.push(chunk)) this.enqueue(frame);
  }

  /** Everything from the previous life of the chip stops here. */
  private stop(state: SimulatorState): void {
    this.epoch++;
    for (const wait of this.waits) {
      clearTimeout(wait.timer);
      wait.resolve();
    }
    this.waits.clear();
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
    const link = this.link!;
    link.discardInput();
    link.setBaud(FIRMWARE_BAUD);
    const epoch = this.epoch;
    const boot = mode === 'download' ? this.bootDownload(epoch, resetCause) : this.bootFlash(epoch, resetCause);
    boot.catch((error: unknown) => this.reportFault(error));
  }

  private async bootDownload(epoch: number, resetCause: number | null): Promise<void> {
    await this.printRom(romBanner({ resetCause: resetCause ?? 2, download: true }), epoch);
    if (epoch !== this.epoch) return;
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
    if (!flashModeWorks(image.flashMode, this.options.needsMode)) {
      this.emit('boot', { mode: 'flash', result: 'wrong-flash-mode', image });
      await this.wait(40);
      if (epoch !== this.epoch) return;
      const crash = Buffer.concat([Buffer.from(fatalExceptionText(image.entry), 'latin1'), Buffer.from([0x8f, 0x13, 0xfe, 0x00, 0x6c])]);
      this.emit('output', fatalExceptionText(image.entry), FIRMWARE_BAUD);
      this.link!.write(crash);
      await this.wait(this.options.crashIntervalMs ?? 300);
      // An exception reset is a software reset: it boots in the latched mode (after a
      // flash without reset lines, the bootloader).
      if (epoch === this.epoch) this.reset(this.latched, 4);
      return;
    }
    await this.wait(60); // the firmware starts and sets up its UART
    if (epoch !== this.epoch) return;
    this.emit('boot', { mode: 'flash', result: 'firmware', image });
    this.startFirmware(image);
  }

  private startFirmware(image: Extract<BootImage, { valid: true }>): void {
    const link = this.link!;
    const epoch = this.epoch;
    const firmware: BootedFirmware = {
      image: { flashMode: image.flashMode, entry: image.entry, segments: image.segments.length },
      readFlash: (offset, length) => this.flash.read(offset, length),
      write: (data) => {
        if (epoch === this.epoch) link.write(data);
      },
      onInput: (listener) => {
        if (epoch === this.epoch) this.firmwareInput = listener;
      },
      link,
      restart: () => {
        if (epoch === this.epoch) this.softwareReset();
      },
    };
    if (this.options.onBoot) {
      const cleanup = this.options.onBoot(firmware);
      if (typeof cleanup === 'function') this.firmwareCleanup = cleanup;
      return;
    }
    // A minimal stand-in for MicroPython's REPL: the banner, echo, a prompt per line.
    this.emit('output', MICROPYTHON_BANNER, FIRMWARE_BAUD);
    firmware.write(MICROPYTHON_BANNER);
    firmware.onInput((data) => {
      const text = data.toString('latin1');
      firmware.write(text.replace(/\r/g, '\r\n>>> '));
    });
  }

  /** ROM output at 74880 baud, as a 115200 listener receives it. */
  private async printRom(text: string, epoch: number): Promise<void> {
    if (epoch !== this.epoch || !this.link) return;
    this.emit('output', text, ROM_BOOT_BAUD);
    this.link.write(resampleUart(Buffer.from(text, 'latin1'), ROM_BOOT_BAUD, FIRMWARE_BAUD));
    await this.wait((text.length * 10 * 1000) / ROM_BOOT_BAUD);
  }

  private enqueue(frame: Buffer): void {
    const epoch = this.epoch;
    this.queue = this.queue.then(() => this.process(frame, epoch)).catch((error: unknown) => this.reportFault(error));
  }

  private async process(frame: Buffer, epoch: number): Promise<void> {
    if (epoch !== this.epoch || !this.loader) return; // not listening (yet)
    const wait = this.busyUntil - Date.now();
    if (wait > 0) await this.wait(wait);
    const loader = this.loader;
    if (epoch !== this.epoch || !loader) return;
    if (frame[0] === 0x00 && frame.length >= 8) {
      const entry: CommandLogEntry = { loader: loader.kind, op: frame[1]!, name: opName(frame[1]!) };
      this.commandLog.push(entry);
      this.emit('command', entry);
    }
    const result = await loader.handle(frame);
    if (epoch !== this.epoch) return;
    if (result.delayMs) await this.wait(result.delayMs);
    if (epoch !== this.epoch || !this.link) return;
    for (const reply of result.replies) this.link.write(slipEncode(reply));
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
        await this.wait(2);
        if (epoch !== this.epoch) return;
        const stub = new FlasherStub(this.ctx);
        this.loader = stub;
        link.write(slipEncode(stub.greeting()));
        this.emit('stub-started');
        break;
      }
      case 'hang':
        this.loader = null;
        break;
      case 'set-baud':
        link.setBaud(action.baud);
        this.emit('baud', action.baud);
        break;
      case 'reboot':
        this.reset(this.latched, 2);
        break;
      case 'run-user-code':
        this.reset('flash', null);
        break;
    }
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.waits.delete(entry);
          resolve();
        }, Math.max(0, ms)),
        resolve,
      };
      this.waits.add(entry);
    });
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


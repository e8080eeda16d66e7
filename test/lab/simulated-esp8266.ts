/**
 * A whole simulated ESP8266 board on a pty: the ROM bootloader and flasher stub
 * (esp8266/), and — once a valid image boots — MicroPython: its REPL on the serial line
 * (micropython-repl/) backed by a MicroPython board lab whose file system is a host
 * folder. A provisioned board's main.py starts our client, which really connects to the
 * manager.
 *
 * The flash image (`<folder>/flash.bin`, the ROM simulator's flash chip) decides what
 * MicroPython finds at each boot, as on a board: the first sector of its filesystem area
 * (micropython-board-flash.ts: 0x100000 on 2 MiB and more, 0x99000 with 1 MiB) gives a
 * mount, a first boot (blank: "Performing initial setup", which writes a LittleFS v2
 * superblock's first bytes there) or the corrupt-filesystem loop (foreign data); the
 * mounted filesystem's files are the host folder `<folder>/fs/`. Erasing the whole flash
 * (ERASE_FLASH) or the area's first sector makes the next boot a first boot again, which
 * empties `fs/`.
 *
 * The SDK's wifi settings (the board's own access point: on or off, SSID, password) are
 * kept in the flash too, in the lab's format (JSON after a magic) at the first of the
 * SDK's system-parameter sectors (size - 0x3000; a real SDK's format differs): they
 * survive resets and power cycles, and an erase of the flash brings the SDK's defaults
 * back. Shortcut: `esp.flash_size()` is the chip's size (a board reports the size its
 * image header declares; flashed with `--flash_size detect` the two agree).
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Esp8266Simulator, type BootedFirmware, type Esp8266SimulatorOptions } from './esp8266/esp8266-simulator.js';
import type { FlashChip } from './esp8266/flash-chip.js';
import { MicroPythonReplSimulator } from './micropython-repl/micropython-repl-simulator.js';
import { MicroPythonBoard, type BoardFlash, type BoardWifiSettings, type MicroPythonBoardOptions } from '../../electron/manager/virtual/micropython-board.js';
import {
  labUniqueId,
  littlefsFirstBlock,
  micropythonFilesystemLayout,
  SECTOR_BYTES,
  sdkDefaultWifi,
} from '../../electron/manager/virtual/micropython-board-flash.js';
import { LAB_WIFI } from '../../electron/manager/virtual/micropython-fleet.js';
import type { LogLevel } from '../../electron/manager/log.js';

export interface SimulatedEsp8266Options extends Omit<Esp8266SimulatorOptions, 'onBoot' | 'flashImagePath'> {
  /** Folder for the board: its flash file and its MicroPython file system (`fs/`). */
  folder: string;
  heapBytes?: number;
  /** The wifi the lab's access point accepts (default LAB_WIFI). */
  wifi?: { ssid: string; password: string };
  /** How long MicroPython takes to set up, join the wifi, ... (default 'realistic'). */
  timing?: MicroPythonBoardOptions['timing'];
  rawPaste?: boolean;
  onLog?: (level: LogLevel, message: string) => void;
}

export interface SimulatedEsp8266Events {
  /** A MicroPython board was made for a boot (before it starts). */
  board: [board: MicroPythonBoard];
  /** What MicroPython sends on the serial line (its output, the REPL's echo and prompts). */
  console: [text: string];
}

/** Magic of the lab's wifi-settings record in the SDK's parameter area. */
const SDK_MAGIC = 'CMLABSDK';
/** Offset of the SDK's first system-parameter sector from the end of the flash. */
const SDK_PARAMETERS_FROM_END = 0x3000;

/** The serial side of a booted firmware as the REPL simulator wants it. */
class FirmwareLink extends EventEmitter<{ data: [chunk: Buffer] }> {
  constructor(
    private readonly firmware: BootedFirmware,
    private readonly onWrite: (data: Buffer | string) => void,
  ) {
    super();
    firmware.onInput((chunk) => this.emit('data', chunk));
  }

  write(data: Buffer | string): void {
    this.firmware.write(data);
    this.onWrite(data);
  }
}

/** MicroPython's view of the chip's flash outside its files (see the file comment). */
class ChipFlash implements BoardFlash {
  readonly filesystem: { startSector: number; blocks: number } | null;

  constructor(private readonly chip: FlashChip) {
    this.filesystem = micropythonFilesystemLayout(chip.size);
  }

  readFirstBlock(): Uint8Array {
    return this.chip.read(this.filesystem!.startSector * SECTOR_BYTES, SECTOR_BYTES);
  }

  formatFilesystem(): void {
    if (!this.filesystem) return;
    const offset = this.filesystem.startSector * SECTOR_BYTES;
    this.chip.erase(offset, SECTOR_BYTES);
    this.chip.program(offset, littlefsFirstBlock(this.filesystem.blocks));
  }

  readWifi(): BoardWifiSettings | null {
    const record = this.chip.read(this.chip.size - SDK_PARAMETERS_FROM_END, SECTOR_BYTES);
    if (record.toString('latin1', 0, SDK_MAGIC.length) !== SDK_MAGIC) return null;
    const length = record.readUInt16LE(SDK_MAGIC.length);
    try {
      return JSON.parse(record.toString('utf8', SDK_MAGIC.length + 2, SDK_MAGIC.length + 2 + length)) as BoardWifiSettings;
    } catch {
      return null; // damaged: the SDK falls back to its defaults
    }
  }

  writeWifi(settings: BoardWifiSettings): void {
    const json = Buffer.from(JSON.stringify(settings), 'utf8');
    const record = Buffer.alloc(SECTOR_BYTES, 0xff);
    record.write(SDK_MAGIC, 0, 'latin1');
    record.writeUInt16LE(json.length, SDK_MAGIC.length);
    json.copy(record, SDK_MAGIC.length + 2);
    const offset = this.chip.size - SDK_PARAMETERS_FROM_END;
    this.chip.erase(offset, SECTOR_BYTES);
    this.chip.program(offset, record);
  }
}

export class SimulatedEsp8266 extends EventEmitter<SimulatedEsp8266Events> {
  readonly rom: Esp8266Simulator;
  readonly fsFolder: string;
  board: MicroPythonBoard | null = null;
  repl: MicroPythonReplSimulator | null = null;
  private readonly flash: ChipFlash;

  constructor(private readonly options: SimulatedEsp8266Options) {
    super();
    this.fsFolder = path.join(options.folder, 'fs');
    mkdirSync(this.fsFolder, { recursive: true });
    this.rom = new Esp8266Simulator({
      ...options,
      // The pty's link lives in the board's folder (default): unplugging and plugging it
      // in again gets the same path, and nothing removes it from under the new link.
      link: options.link ?? path.join(options.folder, 'tty'),
      flashImagePath: path.join(options.folder, 'flash.bin'),
      onBoot: (firmware) => this.boot(firmware),
    });
    this.flash = new ChipFlash(this.rom.flash);
    this.rom.on('command', (entry) => {
      // A chip erase takes MicroPython's file system with it (its next boot would format it anyway).
      if (entry.name === 'ERASE_FLASH') void this.eraseFileSystem();
    });
  }

  /** The serial device to open. */
  get path(): string {
    return this.rom.path;
  }

  /** MicroPython's filesystem area in the flash (offset, length), or null below 1 MiB. */
  get filesystemArea(): { offset: number; length: number } | null {
    const layout = this.flash.filesystem;
    return layout && { offset: layout.startSector * SECTOR_BYTES, length: layout.blocks * SECTOR_BYTES };
  }

  /**
   * The board's own access point as the SDK keeps it in the flash (what a phone nearby
   * would find): the SDK's defaults while nothing was saved.
   */
  accessPoint(): BoardWifiSettings {
    return this.flash.readWifi() ?? sdkDefaultWifi(labUniqueId(this.fsFolder));
  }

  async powerOn(bootMode: 'download' | 'flash' = 'download'): Promise<void> {
    await this.rom.powerOn({ bootMode });
  }

  /** Unplugs the board (the flash keeps what was written). */
  async powerOff(): Promise<void> {
    await this.rom.powerOff();
    await this.stopFirmware();
  }

  async close(): Promise<void> {
    await this.stopFirmware();
    await this.rom.close();
  }

  private boot(firmware: BootedFirmware): () => void {
    const board = new MicroPythonBoard({
      folder: this.fsFolder,
      heapBytes: this.options.heapBytes,
      wifi: this.options.wifi ?? LAB_WIFI,
      label: path.basename(this.options.folder),
      onLog: this.options.onLog,
      flash: this.flash,
      timing: this.options.timing,
      // machine.reset(), a watchdog or a crash restarts the chip: the ROM boots the latched mode.
      onSystemReset: () => firmware.restart(),
    });
    const link = new FirmwareLink(firmware, (data) => this.emit('console', typeof data === 'string' ? data : data.toString('latin1')));
    const repl = new MicroPythonReplSimulator({ link, board, rawPaste: this.options.rawPaste, onLog: this.options.onLog });
    this.board = board;
    this.repl = repl;
    this.emit('board', board);
    repl.start().catch((error: Error) => this.options.onLog?.('error', `the simulated MicroPython did not start: ${error.message}`));
    return () => void this.stopFirmware();
  }

  private async stopFirmware(): Promise<void> {
    const { board, repl } = this;
    this.board = null;
    this.repl = null;
    await repl?.close();
    await board?.powerOff();
  }

  private async eraseFileSystem(): Promise<void> {
    for (const entry of await readdir(this.fsFolder).catch(() => [] as string[])) {
      await rm(path.join(this.fsFolder, entry), { recursive: true, force: true });
    }
  }
}

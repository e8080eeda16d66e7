/**
 * A whole simulated ESP8266 board on a pty: the ROM bootloader and flasher stub
 * (esp8266/), and — once a valid image boots — MicroPython: its REPL on the serial line
 * (micropython-repl/) backed by a MicroPython board lab whose file system is a host
 * folder. A provisioned board's main.py starts our client, which really connects to the
 * manager. Erasing the flash erases that file system too.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Esp8266Simulator, type BootedFirmware, type Esp8266SimulatorOptions } from './esp8266/esp8266-simulator.js';
import { MicroPythonReplSimulator } from './micropython-repl/micropython-repl-simulator.js';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { LAB_WIFI } from '../../electron/manager/virtual/micropython-fleet.js';
import type { LogLevel } from '../../electron/manager/log.js';

export interface SimulatedEsp8266Options extends Omit<Esp8266SimulatorOptions, 'onBoot' | 'flashImagePath'> {
  /** Folder for the board: its flash file and its MicroPython file system (`fs/`). */
  folder: string;
  heapBytes?: number;
  /** The wifi the lab's access point accepts (default LAB_WIFI). */
  wifi?: { ssid: string; password: string };
  rawPaste?: boolean;
  onLog?: (level: LogLevel, message: string) => void;
}

/** The serial side of a booted firmware as the REPL simulator wants it. */
class FirmwareLink extends EventEmitter<{ data: [chunk: Buffer] }> {
  constructor(private readonly firmware: BootedFirmware) {
    super();
    firmware.onInput((chunk) => this.emit('data', chunk));
  }

  write(data: Buffer | string): void {
    this.firmware.write(data);
  }
}

export class SimulatedEsp8266 {
  readonly rom: Esp8266Simulator;
  readonly fsFolder: string;
  board: MicroPythonBoard | null = null;
  repl: MicroPythonReplSimulator | null = null;

  constructor(private readonly options: SimulatedEsp8266Options) {
    this.fsFolder = path.join(options.folder, 'fs');
    mkdirSync(this.fsFolder, { recursive: true });
    this.rom = new Esp8266Simulator({
      ...options,
      flashImagePath: path.join(options.folder, 'flash.bin'),
      onBoot: (firmware) => this.boot(firmware),
    });
    this.rom.on('command', (entry) => {
      // A chip erase takes MicroPython's file system with it.
      if (entry.name === 'ERASE_FLASH') void this.eraseFileSystem();
    });
  }

  /** The serial device to open. */
  get path(): string {
    return this.rom.path;
  }

  async powerOn(bootMode: 'download' | 'flash' = 'download'): Promise<void> {
    await this.rom.powerOn({ bootMode });
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
      // machine.reset(), a watchdog or a crash restarts the chip: the ROM boots the latched mode.
      onSystemReset: () => firmware.restart(),
    });
    const repl = new MicroPythonReplSimulator({ link: new FirmwareLink(firmware), board, rawPaste: this.options.rawPaste, onLog: this.options.onLog });
    this.board = board;
    this.repl = repl;
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

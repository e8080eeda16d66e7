/**
 * What the manager offers over USB: list ports, flash a board, provision it (flash or not)
 * so it comes online in the fleet with its own credentials, and copy a file to a board's
 * flash over its console, or open a terminal on its console. One owner per port at a time
 * (a job or a console); every job reports its progress.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Fleet } from '../fleet/fleet.js';
import type { Logger } from '../log.js';
import { listSerialPorts, watchSerialPorts, type SerialPortChange, type SerialPortInfo, type SerialPortWatcher } from './serial-ports.js';
import { flashEsp8266, type FlashProgress, type FlashResult } from './esp-flasher.js';
import { checkProvisionSettings, provisionBoard, ProvisionError, type ProvisionProgress, type ProvisionResult } from './board-provisioner.js';
import { FirmwareCatalogue } from './firmware-catalogue.js';
import { RawRepl } from './raw-repl.js';
import { putFile, type PutFileResult } from './serial-copy.js';
import { closeNodeSerialPort, openNodeSerialPort } from './web-serial-port.js';
import { FirmwareImageError, inspectFirmwareImage, type FlashMode } from './firmware-image.js';
import { SerialConsole } from './serial-console.js';
import { ManagerError, type ErrorKind } from '../errors.js';

export interface UsbProgressEvent {
  job: string;
  port: string;
  step: 'flash' | 'provision' | 'copy';
  phase: string;
  message: string;
  done?: number;
  total?: number;
}

export interface UsbServiceEvents {
  progress: [event: UsbProgressEvent];
  /** A serial port appeared (board plugged in) or went away (unplugged). */
  port: [change: SerialPortChange];
}

export interface FlashRequest {
  port: string;
  /** Id carried by this job's progress events (default: a generated one). */
  job?: string;
  /** The image, or the name of one in the firmware catalogue. */
  image?: Buffer;
  firmware?: string;
  baud?: number;
  erase?: boolean;
  flashMode?: FlashMode;
  /** Provision the board afterwards. */
  provision?: ProvisionRequestBase;
  /** How long to wait for the plain RESET a board flashed by hand should get (default 60 s). */
  resetWaitMs?: number;
}

export interface ProvisionRequestBase {
  name: string;
  wifi: { ssid: string; password: string };
  /** Leave the board's own wifi access point on (default: provisioning turns it off). */
  keepAccessPoint?: boolean;
  /** Address boards use to reach Redis (default: the service's). */
  server?: { host: string; port: number };
}

export interface ProvisionRequest extends ProvisionRequestBase {
  /** Id carried by this job's progress events (default: a generated one). */
  job?: string;
}

/** Who holds a serial port: a USB job, or an open console. */
export type UsbPortOwner = 'flash' | 'provision' | 'copy' | 'console';
type UsbJobKind = Exclude<UsbPortOwner, 'console'>;

/** What a job does, in words ("busy flashing a board", "close it before flashing"). */
const JOB_WORDS: Record<UsbJobKind, { busy: string; before: string }> = {
  flash: { busy: 'flashing a board', before: 'flashing' },
  provision: { busy: 'provisioning a board', before: 'provisioning' },
  copy: { busy: 'copying a file to a board', before: 'copying a file' },
};

/** The port is held by a job or a console; `owner` says which. */
export class NoSuchPortError extends ManagerError {
  override name = 'NoSuchPortError';
  readonly kind: ErrorKind = 'not_found';
}

export class PortBusyError extends ManagerError {
  override name = 'PortBusyError';
  readonly kind: ErrorKind = 'conflict';

  constructor(
    message: string,
    readonly port?: string,
    readonly owner?: UsbPortOwner,
  ) {
    super(message);
  }
}

export class UsbService extends EventEmitter<UsbServiceEvents> {
  private readonly owners = new Map<string, UsbPortOwner>();
  private readonly consoles = new Map<string, SerialConsole>();
  private watcher: SerialPortWatcher | undefined;
  readonly catalogue: FirmwareCatalogue;

  constructor(
    private readonly options: {
      fleet: Fleet;
      log: Logger;
      firmwareFolder: string;
      /** Extra device paths to list (simulated boards' ptys). */
      extraPorts?: string[];
    },
  ) {
    super();
    this.catalogue = new FirmwareCatalogue(options.firmwareFolder);
  }

  ports(): Promise<SerialPortInfo[]> {
    // The same source as the watcher (sysfs on Linux), so a port is described the same
    // way in the list and in plug/unplug events.
    return listSerialPorts({ extraPaths: this.options.extraPorts, preferSysfs: true });
  }

  /** Starts noticing plug and unplug ('port' events); resolves once the baseline is known. */
  async watchPorts(intervalMs = 1000): Promise<void> {
    if (!this.watcher) {
      // sysfs reads are cheap; udevadm (serialport's Linux lister) would spawn a process a second.
      this.watcher = watchSerialPorts(
        (change) => {
          this.options.log('info', `serial port ${change.kind}: ${change.port.path} (${change.port.friendlyName})`);
          this.emit('port', change);
        },
        { intervalMs, logger: this.options.log, extraPaths: this.options.extraPorts, preferSysfs: true },
      );
    }
    await this.watcher.ready;
  }

  /** Stops watching ports and closes the open consoles (resolves once they are closed). */
  async stop(): Promise<void> {
    this.watcher?.stop();
    this.watcher = undefined;
    await Promise.all([...this.consoles.values()].map((session) => session.close()));
  }

  /** Who holds `port` now (a job or a console), or null when it is free. */
  portOwner(port: string): UsbPortOwner | null {
    return this.owners.get(port) ?? null;
  }

  /**
   * Opens a terminal on `port` (115200 baud). The console owns the port until it closes
   * (close(), the board unplugged, or stop()): jobs on that port are refused meanwhile.
   * Refused with PortBusyError while a job runs on the port or a console is already open.
   */
  async openConsole(port: string): Promise<SerialConsole> {
    this.claim(port, 'console');
    let session: SerialConsole;
    try {
      session = await SerialConsole.open(port, { log: this.options.log });
    } catch (error) {
      this.owners.delete(port);
      throw error;
    }
    this.consoles.set(port, session);
    // 'closed' comes once the port itself is closed: it can go to the next owner at once.
    session.once('closed', () => {
      this.consoles.delete(port);
      this.owners.delete(port);
    });
    return session;
  }

  async flash(request: FlashRequest): Promise<{ flash: FlashResult; provision: ProvisionResult | null }> {
    const image = request.image ?? (request.firmware ? (await this.catalogue.get(request.firmware)).image : undefined);
    if (!image) throw new FirmwareImageError('give the firmware image or the name of one in the catalogue');
    // Bad provisioning settings are refused before the board is flashed.
    if (request.provision) {
      checkProvisionSettings({ ...request.provision, server: request.provision.server ?? this.options.fleet.advertise });
      const variant = inspectFirmwareImage(image).variant;
      if (variant && !variant.filesystem) {
        throw new ProvisionError(
          `this MicroPython build (${variant.name}, for 512 KB boards) has no file system, so the Cloudmanager client cannot be stored on the board: flash it without setting it up, or use a board with 1 MB of flash or more`,
        );
      }
    }
    return this.job(request.port, 'flash', request.job, async (job) => {
      const flash = await flashEsp8266({
        portPath: request.port,
        image,
        baud: request.baud,
        erase: request.erase,
        flashMode: request.flashMode,
        log: this.options.log,
        onProgress: (progress: FlashProgress) => this.report(job, request.port, 'flash', progress),
        // The flasher reports the BOOT+RESET and RESET prompts itself; the user answers on the board.
        onNeedBootloader: () => undefined,
        resetWaitMs: request.resetWaitMs,
      });
      if (request.provision && flash.boot === 'fs-corrupt') {
        throw new ProvisionError(
          `the board is flashed, but MicroPython cannot use its file system (${flash.bootEvidence}), so it cannot be set up: flash it again with "Erase the whole flash first" (mbm board-flash --erase)`,
        );
      }
      const provision = request.provision ? await this.provisionNow(job, request.port, request.provision) : null;
      // Flashed by hand and RESET not pressed: its next reboot would end in the bootloader.
      if (provision) await this.options.fleet.setNeedsReset(provision.boardId, flash.bootModeLatch === 'download');
      return { flash, provision };
    });
  }

  /** `job` (or `request.job`): the id its progress events carry (default: a generated one). */
  provision(port: string, request: ProvisionRequest, job?: string): Promise<ProvisionResult> {
    const { job: requestJob, ...settings } = request;
    return this.job(port, 'provision', job ?? requestJob, (id) => this.provisionNow(id, port, settings));
  }

  /** Copies a file to a board's flash over its serial console (raw REPL). */
  copy(port: string, data: Buffer, dest: string, options: { job?: string } = {}): Promise<PutFileResult> {
    return this.job(port, 'copy', options.job, async (job) => {
      const serial = await openNodeSerialPort(port, { baudRate: 115_200 });
      const repl = new RawRepl({ port: serial, exitOnError: true });
      try {
        await repl.enter({ timeoutMs: 15_000 });
        const result = await putFile(repl, data, dest, {
          onProgress: (progress) =>
            this.report(job, port, 'copy', { phase: progress.phase, message: `copying to ${dest}`, done: progress.bytes, total: progress.total }),
        });
        await repl.exit();
        return result;
      } finally {
        repl.dispose();
        await closeNodeSerialPort(serial);
      }
    });
  }

  private provisionNow(job: string, port: string, request: ProvisionRequestBase): Promise<ProvisionResult> {
    const server = request.server ?? this.options.fleet.advertise;
    const fleet = this.options.fleet;
    return provisionBoard({
      portPath: port,
      name: request.name,
      wifi: request.wifi,
      server,
      // No address asked for: the board's own node (with a Cluster each board has its slot's).
      serverFor: request.server ? undefined : (credentials) => fleet.advertiseFor(credentials.id),
      log: this.options.log,
      keepAccessPoint: request.keepAccessPoint,
      enroll: (name) => fleet.enroll(name, { rotate: true, server: server.host }),
      knownBoot: (boardId) => fleet.registry.get(boardId)?.boot ?? null,
      waitOnline: (boardId, previousBoot, timeoutMs) => waitOnline(fleet, boardId, previousBoot, timeoutMs),
      onProgress: (progress: ProvisionProgress) => this.report(job, port, 'provision', progress),
    });
  }

  /** Makes `kind` the owner of `port`, or throws PortBusyError saying who holds it. */
  private claim(port: string, kind: UsbPortOwner): void {
    const owner = this.owners.get(port);
    if (owner === 'console') {
      throw new PortBusyError(
        kind === 'console'
          ? `the USB console of ${port} is already open (in another window?)`
          : `the USB console of ${port} is open: close it before ${JOB_WORDS[kind].before}`,
        port,
        owner,
      );
    }
    if (owner) throw new PortBusyError(`${port} is busy ${JOB_WORDS[owner].busy}: wait until it finishes`, port, owner);
    this.owners.set(port, kind);
  }

  private async job<T>(port: string, kind: UsbJobKind, jobId: string | undefined, run: (job: string) => Promise<T>): Promise<T> {
    // Said now, rather than later as a bootloader or REPL that does not answer.
    if (process.platform !== 'win32' && !/^rfc2217:\/\//i.test(port) && !existsSync(port)) {
      throw new NoSuchPortError(
        `there is no serial port ${port} (unplugged, or another name?); the ports this computer has are in \`mbm usb-ports\` and the flash wizard`,
      );
    }
    this.claim(port, kind);
    const job = jobId ?? `u${randomBytes(5).toString('hex')}`;
    try {
      return await run(job);
    } finally {
      this.owners.delete(port);
    }
  }

  private report(job: string, port: string, step: UsbProgressEvent['step'], progress: { phase: string; message: string; done?: number; total?: number }): void {
    this.emit('progress', { job, port, step, ...progress });
  }
}

/**
 * Resolves true once the board is online from a start other than `previousBoot` (its
 * hello named another boot id), false after `timeoutMs`. Being listed online is not
 * enough: the registry keeps a board online for two heartbeats after it went quiet.
 */
export function waitOnline(fleet: Fleet, boardId: string, previousBoot: string | null, timeoutMs: number): Promise<boolean> {
  const newBoot = () => {
    const board = fleet.registry.get(boardId);
    return board !== undefined && board.online && board.boot !== null && board.boot !== previousBoot;
  };
  if (newBoot()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onBoard = (event: { type: string; board?: { id: string } }) => {
      if (event.board?.id === boardId && newBoot()) finish(true);
    };
    const finish = (online: boolean) => {
      clearTimeout(timer);
      fleet.off('board', onBoard);
      resolve(online);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    fleet.on('board', onBoard);
  });
}

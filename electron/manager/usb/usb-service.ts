/**
 * What the manager offers over USB: list ports, flash a board, provision it (flash or not)
 * so it comes online in the fleet with its own credentials, and copy a file to a board's
 * flash over its console. One job at a time per port; every job reports its progress.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Fleet } from '../fleet/fleet.js';
import type { Logger } from '../log.js';
import { listSerialPorts, watchSerialPorts, type SerialPortChange, type SerialPortInfo, type SerialPortWatcher } from './serial-ports.js';
import { flashEsp8266, type FlashProgress, type FlashResult } from './esp-flasher.js';
import { checkProvisionSettings, provisionBoard, type ProvisionProgress, type ProvisionResult } from './board-provisioner.js';
import { FirmwareCatalogue } from './firmware-catalogue.js';
import { RawRepl } from './raw-repl.js';
import { putFile, type PutFileResult } from './serial-copy.js';
import { closeNodeSerialPort, openNodeSerialPort } from './web-serial-port.js';
import { FirmwareImageError, type FlashMode } from './firmware-image.js';

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
  /** The image, or the name of one in the firmware catalogue. */
  image?: Buffer;
  firmware?: string;
  baud?: number;
  erase?: boolean;
  flashMode?: FlashMode;
  /** Provision the board afterwards. */
  provision?: ProvisionRequestBase;
}

export interface ProvisionRequestBase {
  name: string;
  wifi: { ssid: string; password: string };
  /** Address boards use to reach Redis (default: the service's). */
  server?: { host: string; port: number };
}

export class PortBusyError extends Error {
  override name = 'PortBusyError';
}

export class UsbService extends EventEmitter<UsbServiceEvents> {
  private readonly busy = new Set<string>();
  private watcher: SerialPortWatcher | undefined;
  readonly catalogue: FirmwareCatalogue;

  constructor(private readonly options: {
    fleet: Fleet;
    log: Logger;
    firmwareFolder: string;
    /** Extra device paths to list (simulated boards' ptys). */
    extraPorts?: string[];
  }) {
    super();
    this.catalogue = new FirmwareCatalogue(options.firmwareFolder);
  }

  ports(): Promise<SerialPortInfo[]> {
    return listSerialPorts({ extraPaths: this.options.extraPorts });
  }

  /** Starts noticing plug and unplug ('port' events); resolves once the baseline is known. */
  async watchPorts(intervalMs = 1000): Promise<void> {
    if (!this.watcher) {
      // sysfs reads are cheap; udevadm (serialport's Linux lister) would spawn a process a second.
      this.watcher = watchSerialPorts((change) => {
        this.options.log('info', `serial port ${change.kind}: ${change.port.path} (${change.port.friendlyName})`);
        this.emit('port', change);
      }, { intervalMs, logger: this.options.log, extraPaths: this.options.extraPorts, preferSysfs: true });
    }
    await this.watcher.ready;
  }

  stop(): void {
    this.watcher?.stop();
    this.watcher = undefined;
  }

  async flash(request: FlashRequest): Promise<{ flash: FlashResult; provision: ProvisionResult | null }> {
    const image = request.image ?? (request.firmware ? (await this.catalogue.get(request.firmware)).image : undefined);
    if (!image) throw new FirmwareImageError('give the firmware image or the name of one in the catalogue');
    // Bad provisioning settings are refused before the board is flashed.
    if (request.provision) checkProvisionSettings({ ...request.provision, server: request.provision.server ?? this.options.fleet.advertise });
    return this.job(request.port, async (job) => {
      const flash = await flashEsp8266({
        portPath: request.port, image, baud: request.baud, erase: request.erase, flashMode: request.flashMode,
        log: this.options.log,
        onProgress: (progress: FlashProgress) => this.report(job, request.port, 'flash', progress),
        // The flasher reports the BOOT+RESET prompt itself; the user answers on the board.
        onNeedBootloader: () => undefined,
      });
      const provision = request.provision ? await this.provisionNow(job, request.port, request.provision) : null;
      return { flash, provision };
    });
  }

  provision(port: string, request: ProvisionRequestBase): Promise<ProvisionResult> {
    return this.job(port, (job) => this.provisionNow(job, port, request));
  }

  /** Copies a file to a board's flash over its serial console (raw REPL). */
  copy(port: string, data: Buffer, dest: string): Promise<PutFileResult> {
    return this.job(port, async (job) => {
      const serial = await openNodeSerialPort(port, { baudRate: 115_200 });
      const repl = new RawRepl({ port: serial, exitOnError: true });
      try {
        await repl.enter({ timeoutMs: 15_000 });
        const result = await putFile(repl, data, dest, {
          onProgress: (progress) => this.report(job, port, 'copy', { phase: progress.phase, message: `copying to ${dest}`, done: progress.bytes, total: progress.total }),
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
      portPath: port, name: request.name, wifi: request.wifi, server, log: this.options.log,
      enroll: (name) => fleet.enroll(name, { rotate: true, server: server.host }),
      waitOnline: (boardId, timeoutMs) => waitOnline(fleet, boardId, timeoutMs),
      onProgress: (progress: ProvisionProgress) => this.report(job, port, 'provision', progress),
    });
  }

  private async job<T>(port: string, run: (job: string) => Promise<T>): Promise<T> {
    if (this.busy.has(port)) throw new PortBusyError(`${port} is busy with another job`);
    this.busy.add(port);
    const job = `u${randomBytes(5).toString('hex')}`;
    try {
      return await run(job);
    } finally {
      this.busy.delete(port);
    }
  }

  private report(job: string, port: string, step: UsbProgressEvent['step'], progress: { phase: string; message: string; done?: number; total?: number }): void {
    this.emit('progress', { job, port, step, ...progress });
  }
}

/** Resolves true when the board is (or comes) online, false after `timeoutMs`. */
export function waitOnline(fleet: Fleet, boardId: string, timeoutMs: number): Promise<boolean> {
  if (fleet.registry.get(boardId)?.online) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onBoard = (event: { type: string; board?: { id: string } }) => {
      if (event.type === 'board.online' && event.board?.id === boardId) finish(true);
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

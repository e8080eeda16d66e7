/**
 * The flash and provision jobs of the flash wizard: fetch the built-in firmware when it is
 * chosen and not downloaded yet, flash, provision, and wait for the board to come online,
 * reporting every step as the job's progress. The step that failed is kept in the job, so
 * the wizard's Retry can resume from it (provision again without flashing again).
 */
import type { FlashResult } from '../usb/esp-flasher.js';
import type { ProvisionResult } from '../usb/board-provisioner.js';
import type { CatalogueEntry } from '../usb/firmware-catalogue.js';
import type { FlashRequest, ProvisionRequestBase, UsbProgressEvent } from '../usb/usb-service.js';
import type { FlashMode } from '../usb/firmware-image.js';
import type { JobProgress } from './job-model.js';

/** Provisioning settings as the API takes them. */
export interface ProvisionSettings {
  name: string;
  wifiSsid: string;
  wifiPassword: string;
  server?: { host: string; port: number };
  keepAccessPoint?: boolean;
}

export type UsbJobRequest =
  | {
      kind: 'flash';
      port: string;
      /** A catalogue name, or the id of a built-in firmware (downloaded first when needed). */
      firmware?: string;
      builtin?: string;
      baud?: number;
      erase?: boolean;
      flashMode?: FlashMode;
      provision?: ProvisionSettings;
    }
  | ({ kind: 'provision'; port: string } & ProvisionSettings);

/** What a flash job needs of the USB service (UsbService implements it). */
export interface UsbJobRunner {
  flash(request: FlashRequest & { job?: string }): Promise<{ flash: FlashResult; provision: ProvisionResult | null }>;
  provision(port: string, request: ProvisionRequestBase, job?: string): Promise<ProvisionResult>;
  on(event: 'progress', listener: (event: UsbProgressEvent) => void): unknown;
  off(event: 'progress', listener: (event: UsbProgressEvent) => void): unknown;
  catalogue: {
    downloadBuiltin(id: string, options?: { onProgress?: (received: number, total: number | null) => void }): Promise<CatalogueEntry>;
  };
}

export interface UsbJobOutcome {
  ok: boolean;
  message: string;
  boardId: string | null;
}

export function provisionRequest(settings: ProvisionSettings): ProvisionRequestBase {
  return {
    name: settings.name,
    wifi: { ssid: settings.wifiSsid, password: settings.wifiPassword },
    server: settings.server,
    keepAccessPoint: settings.keepAccessPoint,
  };
}

function describe(provision: ProvisionResult | null): string {
  if (!provision) return 'flashed; the board runs the new firmware';
  return provision.online
    ? `${provision.name} is online`
    : `${provision.name} is set up but has not come online yet: check the wifi name and password, and that the board can reach this computer`;
}

/** Runs one flash or provision job to its end; never throws (failures become the outcome). */
export async function runUsbJob(
  usb: UsbJobRunner,
  job: string,
  request: UsbJobRequest,
  report: { progress: (progress: JobProgress) => void; finished: (outcome: UsbJobOutcome) => void },
): Promise<void> {
  let step = request.kind === 'provision' ? 'provision' : 'flash';
  const onProgress = (event: UsbProgressEvent) => {
    if (event.job !== job) return;
    step = event.step;
    report.progress({ phase: `${event.step}.${event.phase}`, message: event.message, done: event.done, total: event.total });
  };
  usb.on('progress', onProgress);
  try {
    if (request.kind === 'provision') {
      const provision = await usb.provision(request.port, provisionRequest(request), job);
      report.finished({ ok: provision.online, message: describe(provision), boardId: provision.boardId });
      return;
    }
    let firmware = request.firmware;
    if (request.builtin) {
      step = 'download';
      report.progress({ phase: 'download.start', message: 'downloading the firmware' });
      const entry = await usb.catalogue.downloadBuiltin(request.builtin, {
        onProgress: (received, total) =>
          report.progress({
            phase: 'download.data',
            message: 'downloading the firmware',
            done: received,
            total: total ?? undefined,
          }),
      });
      firmware = entry.name;
    }
    step = 'flash';
    const result = await usb.flash({
      port: request.port,
      firmware,
      baud: request.baud,
      erase: request.erase,
      flashMode: request.flashMode,
      provision: request.provision ? provisionRequest(request.provision) : undefined,
      job,
    });
    report.finished({
      ok: result.provision ? result.provision.online : true,
      message: describe(result.provision),
      boardId: result.provision?.boardId ?? null,
    });
  } catch (error) {
    report.progress({ phase: `${step}.failed`, message: (error as Error).message });
    report.finished({ ok: false, message: (error as Error).message, boardId: null });
  } finally {
    usb.off('progress', onProgress);
  }
}

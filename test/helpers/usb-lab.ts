/**
 * The service with a UsbService of its own, as the USB integration tests use it: the
 * firmware catalogue in a temp folder that close() removes with the service's data.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsbService } from '../../electron/manager/usb/usb-service.js';
import type { ManagerOptions } from '../../electron/manager/manager.js';
import { startManager } from './lab.js';

export interface UsbLab {
  service: Awaited<ReturnType<typeof startManager>>;
  usb: UsbService;
  /** A temp folder for the test's boards (and the firmware catalogue, in `firmware/`). */
  folder: string;
}

export async function startUsbLab(prefix: string, options: Partial<ManagerOptions> & { heartbeatS?: number } = {}): Promise<UsbLab> {
  const service = await startManager({ heartbeatS: 1, ...options });
  const folder = await mkdtemp(path.join(os.tmpdir(), prefix));
  const usb = new UsbService({ fleet: service.manager.fleet, log: () => undefined, firmwareFolder: path.join(folder, 'firmware') });
  return { service, usb, folder };
}

/** Stops what startUsbLab started (any part may be missing when the start failed). */
export async function closeUsbLab(lab: Partial<UsbLab>): Promise<void> {
  await lab.usb?.stop();
  await lab.service?.close();
  if (lab.folder) await rm(lab.folder, { recursive: true, force: true });
}

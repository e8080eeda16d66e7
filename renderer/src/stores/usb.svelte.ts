/** Serial ports with boards plugged in, live from `usb.port` events (ESP adapters first). */
import type { ApiEvent, SerialPortInfo } from '../../../electron/manager/api/contract.js';
import { api } from './api.js';
import { ApiCallError } from '../lib/api.js';
import { applyPortChange, sortPorts } from '../lib/ports.js';

class UsbStore {
  ports = $state.raw<SerialPortInfo[]>([]);
  loaded = $state(false);
  /**
   * Why this service offers no USB (its message), null when it does. A standby manager
   * answers `usb.*` with `unavailable`: its computer's ports are not the fleet's (the active
   * manager's are), which is no failure to load the fleet.
   */
  unavailable = $state<string | null>(null);

  handle(event: ApiEvent): void {
    if (event.type === 'usb.port') this.ports = applyPortChange(this.ports, event);
  }

  async sync(): Promise<void> {
    try {
      this.ports = sortPorts(await api.call('usb.ports', {}));
      this.unavailable = null;
    } catch (error) {
      if (!(error instanceof ApiCallError) || error.code !== 'unavailable') throw error;
      this.ports = [];
      this.unavailable = error.message;
    }
    this.loaded = true;
  }
}

export const usb = new UsbStore();

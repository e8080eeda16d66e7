/** Serial ports with boards plugged in, live from `usb.port` events (ESP adapters first). */
import type { ApiEvent, SerialPortInfo } from '../../../electron/manager/api/contract.js';
import { api } from './api.js';
import { applyPortChange, sortPorts } from '../lib/ports.js';

class UsbStore {
  ports = $state.raw<SerialPortInfo[]>([]);
  loaded = $state(false);

  handle(event: ApiEvent): void {
    if (event.type === 'usb.port') this.ports = applyPortChange(this.ports, event);
  }

  async sync(): Promise<void> {
    this.ports = sortPorts(await api.call('usb.ports', {}));
    this.loaded = true;
  }
}

export const usb = new UsbStore();

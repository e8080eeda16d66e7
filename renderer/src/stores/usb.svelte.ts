/** Serial ports with boards plugged in, live from `usb.port` events (ESP adapters first). */
import type { ApiEvent, SerialPortInfo } from '../../../electron/manager/api/contract.js';
import { api } from './api.js';

export function applyPortChange(ports: readonly SerialPortInfo[], event: Extract<ApiEvent, { type: 'usb.port' }>): SerialPortInfo[] {
  const rest = ports.filter((port) => port.path !== event.port.path);
  if (event.kind === 'added') rest.push(event.port);
  return sortPorts(rest);
}

export function sortPorts(ports: SerialPortInfo[]): SerialPortInfo[] {
  return ports.sort((a, b) => Number(b.likelyEsp ?? false) - Number(a.likelyEsp ?? false) || a.path.localeCompare(b.path, 'en', { numeric: true }));
}

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

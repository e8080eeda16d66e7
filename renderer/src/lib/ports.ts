/** The list of plugged-in serial ports, kept current from plug and unplug events (pure). */
import type { ApiEvent, SerialPortInfo } from '../../../electron/manager/api/contract.js';

export function applyPortChange(ports: readonly SerialPortInfo[], event: Extract<ApiEvent, { type: 'usb.port' }>): SerialPortInfo[] {
  const rest = ports.filter((port) => port.path !== event.port.path);
  if (event.kind === 'added') rest.push(event.port);
  return sortPorts(rest);
}

export function sortPorts(ports: SerialPortInfo[]): SerialPortInfo[] {
  return ports.sort((a, b) => Number(b.likelyEsp ?? false) - Number(a.likelyEsp ?? false) || a.path.localeCompare(b.path, 'en', { numeric: true }));
}

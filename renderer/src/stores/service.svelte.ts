/**
 * The connection to the service and its status. Owns the one event WebSocket: routes each
 * event to its domain store, and after every (re)connect re-syncs all of them. Alarms come
 * as they change (`service.alarms`); the status poll (15 s) is the fallback. The status also
 * says whether this service runs the fleet or stands by (several managers on one Redis): a
 * role change the poll finds re-syncs everything, as the service's `resync` does.
 */
import type { ApiEvent, ServiceAlarm, ServiceStatus } from '../../../electron/manager/api/contract.js';
import { EventSocket, type SocketState } from '../lib/event-socket.js';
import { errorMessage } from '../lib/api.js';
import { api } from './api.js';
import { boards } from './boards.svelte.js';
import { jobs } from './jobs.svelte.js';
import { usb } from './usb.svelte.js';
import { commands } from './commands.svelte.js';
import { notifications } from './notifications.svelte.js';

class ServiceStore {
  connection = $state<SocketState | 'signed-out'>('connecting');
  status = $state<ServiceStatus | null>(null);
  /** The service's alarms: from each `service.alarms` event, else from the latest status. */
  alarms = $state.raw<ServiceAlarm[]>([]);
  /** Counts alarm events, so a status answer that was on its way before one is not taken over it. */
  private alarmEvents = 0;
  syncError = $state<string | null>(null);
  private socket: EventSocket | null = null;
  private statusTimer: ReturnType<typeof setInterval> | null = null;
  private takeoverTimer: ReturnType<typeof setTimeout> | null = null;

  start(): void {
    api.onSignedOut = () => {
      this.connection = 'signed-out';
      this.socket?.stop();
    };
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    this.socket = new EventSocket({
      url: `${scheme}://${location.host}/api/events`,
      onEvent: (event) => this.dispatch(event),
      onSync: () => void this.sync(),
      onState: (state) => {
        if (this.connection !== 'signed-out') this.connection = state;
      },
    });
    this.socket.start();
    this.statusTimer = setInterval(() => void this.refreshStatus({ resyncOnRoleChange: true }), 15_000);
  }

  dispatch(event: ApiEvent): void {
    if (event.type === 'service.alarms') {
      this.alarmEvents++;
      this.alarms = event.alarms;
      return;
    }
    boards.handle(event);
    jobs.handle(event);
    usb.handle(event);
    commands.handle(event);
  }

  async refreshStatus(options: { resyncOnRoleChange?: boolean } = {}): Promise<void> {
    if (this.connection !== 'open') return;
    const eventsBefore = this.alarmEvents;
    let status: ServiceStatus;
    try {
      status = await api.call('status', {});
    } catch {
      // The socket's state tells the user; a failed status poll adds nothing.
      return;
    }
    const roleBefore = this.status?.manager.role;
    this.status = status;
    if (this.alarmEvents === eventsBefore) this.alarms = status.alarms;
    // Standing by with nobody active: a manager takes over within a few seconds, and the banner should say who soon after.
    if (this.takeoverTimer) clearTimeout(this.takeoverTimer);
    this.takeoverTimer = null;
    if (status.manager.role === 'standby' && !status.manager.active) {
      this.takeoverTimer = setTimeout(() => void this.refreshStatus({ resyncOnRoleChange: true }), 2_000);
    }
    // This service started or stopped running the fleet: what the stores hold came from elsewhere (USB most of all).
    if (options.resyncOnRoleChange && roleBefore && roleBefore !== status.manager.role) void this.sync();
  }

  /** Everything may have changed while we were away: load it all again. */
  async sync(): Promise<void> {
    try {
      await Promise.all([boards.sync(), jobs.sync(), usb.sync(), this.refreshStatus(), commands.sync()]);
      this.syncError = null;
    } catch (error) {
      this.syncError = errorMessage(error);
      if (this.connection !== 'signed-out') notifications.push('error', `Could not load the fleet: ${this.syncError}`);
    }
  }

  stop(): void {
    this.socket?.stop();
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.takeoverTimer) clearTimeout(this.takeoverTimer);
  }
}

export const service = new ServiceStore();

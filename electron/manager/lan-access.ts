/**
 * The user's LAN choice inside the running service (the embedded Redis, without `--bind`):
 * read from network.json for Redis's first start — a saved address a new DHCP lease took
 * away is replaced by its interface's new one — then changed by the user
 * (service.setLanAccess) or followed by the LanAddressWatch while the service runs. Changes
 * run one at a time and always take the same steps: Redis's addresses, network.json, then
 * the Manager's part (advertised host, discovery) through `changed`.
 */
import os from 'node:os';
import { LanAddressWatch, type LanAddressMove, type LanChoice } from './lan-address-watch.js';
import type { Logger } from './log.js';
import {
  applyLanAddress,
  readNetworkSettings,
  startupBindAddresses,
  writeNetworkSettings,
  type BindTarget,
  type NetworkInterfaces,
  type NetworkSettings,
} from './network-access.js';

/** The service followed its LAN address to a new one of the same interface (or back to it). */
export interface LanAddressFollowed {
  from: string;
  to: string;
  interfaceName: string;
  /** Connections boards had made to `from`, closed so they reconnect (and discover) at once. */
  closedConnections: number;
}

export interface LanAccessOptions {
  /** networkSettingsFile(dataDir) */
  settingsFile: string;
  interfaces?: () => NetworkInterfaces;
  log: Logger;
  /** How often the watcher looks for a new address (default 5 s). */
  watchIntervalMs?: number;
}

/** What LanAccess changes once Redis runs. */
export interface LanAccessTarget {
  supervisor: BindTarget & { closeConnectionsTo(address: string): Promise<number> };
  /** The Redis port (for the log). */
  port: number;
  /** Redis listens on `lanAddress` now (null: loopback only): tell boards (advertised host, discovery). */
  changed(lanAddress: string | null): Promise<void>;
  followed(event: LanAddressFollowed): void;
}

export class LanAccess {
  private readonly interfaces: () => NetworkInterfaces;
  private readonly log: Logger;
  /** The choice (null: loopback only); `listening` false while its address is gone since the start. */
  private choice: LanChoice | null = null;
  /** What the start changed and is saved once Redis listens there. */
  private startupSave: NetworkSettings | null = null;
  private target: LanAccessTarget | undefined;
  private watch: LanAddressWatch | undefined;
  /** Serialises changes: the user's and the watcher's never interleave. */
  private change: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(private readonly options: LanAccessOptions) {
    this.interfaces = options.interfaces ?? os.networkInterfaces;
    this.log = options.log;
  }

  /** The LAN address Redis listens on now, or null. */
  get address(): string | null {
    return this.choice?.listening ? this.choice.address : null;
  }

  /** The addresses Redis first starts on, from the saved choice and the interfaces now. */
  async startupBind(): Promise<string[]> {
    const settings = await readNetworkSettings(this.options.settingsFile, (message) => this.log('warn', message));
    const startup = startupBindAddresses(settings, this.interfaces());
    if (startup.lan) {
      this.choice = { address: startup.lan.address, interfaceName: startup.lan.name, listening: true };
      if (startup.replaced)
        this.log(
          'info',
          `this computer's address on ${startup.lan.name} changed from ${startup.replaced} to ${startup.lan.address}; boards find it again by discovery`,
        );
    }
    if (startup.unavailable) {
      this.log(
        'warn',
        `boards on the local network were let in on ${startup.unavailable}, which is no longer an address of this computer: listening on 127.0.0.1 only ` +
          `until it (or a new address of ${settings.lanInterface ?? 'its interface'}) is back, or LAN access is chosen again`,
      );
      // Kept, not listening: the watcher takes it up when the interface has an address again.
      this.choice = { address: startup.unavailable, interfaceName: settings.lanInterface, listening: false };
    }
    this.startupSave = startup.save;
    return startup.bind;
  }

  /** Once Redis runs: saves what the start changed and follows the address from now on. */
  async start(target: LanAccessTarget): Promise<void> {
    this.target = target;
    // Saved only now that Redis listens there: a replaced address, or the interface of an old file.
    if (this.startupSave) await writeNetworkSettings(this.options.settingsFile, this.startupSave);
    this.startupSave = null;
    this.watch = new LanAddressWatch({
      choice: () => this.choice,
      interfaces: this.interfaces,
      follow: (move) => this.follow(move),
      intervalMs: this.options.watchIntervalMs,
      log: this.log,
    });
    this.watch.start();
  }

  /** The user's choice: boards on the network in on `address`, or this computer only (null). */
  set(address: string | null): Promise<NetworkSettings> {
    return this.serialised(() => this.apply(address));
  }

  /** Stops following; a change in progress completes first. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.watch?.stop();
    await this.change;
  }

  private serialised<T>(change: () => Promise<T>): Promise<T> {
    const run = this.change.then(change);
    this.change = run.catch(() => undefined); // a failed change does not block the next
    return run;
  }

  private async apply(address: string | null): Promise<NetworkSettings> {
    const target = this.requireTarget();
    const settings = await applyLanAddress({
      supervisor: target.supervisor,
      settingsFile: this.options.settingsFile,
      lanAddress: address,
      interfaces: this.interfaces(),
    });
    this.choice = settings.lanAddress === null ? null : { address: settings.lanAddress, interfaceName: settings.lanInterface, listening: true };
    await target.changed(settings.lanAddress);
    return settings;
  }

  /**
   * The watcher's move, applied as a user's choice is. Then the connections boards made to
   * the old address are closed: on a real network they are dead anyway, and closing them
   * makes the boards reconnect, fail and discover at once instead of waiting for TCP to
   * give up. Connections to other addresses (the manager's own, over loopback) stay.
   */
  private follow(move: LanAddressMove): Promise<void> {
    return this.serialised(async () => {
      // The user may have chosen otherwise since the watcher looked.
      if (this.stopped || this.choice?.address !== move.from) return;
      const target = this.requireTarget();
      await this.apply(move.to.address);
      let closedConnections = 0;
      if (move.wasListening && move.from !== move.to.address) {
        closedConnections = await target.supervisor.closeConnectionsTo(move.from).catch((error: Error) => {
          this.log('warn', `could not close the connections boards made to ${move.from}: ${error.message}`);
          return 0;
        });
      }
      const { name, address } = move.to;
      this.log(
        'info',
        move.from === address
          ? `${address} is this computer's address on ${name} again: boards on the local network may connect on ${address}:${target.port}`
          : `this computer's address on ${name} changed from ${move.from} to ${address}; boards find it again by discovery ` +
              `(Redis listens on ${address}:${target.port} now; ${closedConnections} connection(s) to the old address closed)`,
      );
      target.followed({ from: move.from, to: address, interfaceName: name, closedConnections });
    });
  }

  private requireTarget(): LanAccessTarget {
    if (!this.target) throw new Error('LAN access is not started');
    return this.target;
  }
}

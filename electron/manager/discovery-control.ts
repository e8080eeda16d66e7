/**
 * The manager's discovery responder (discovery/), restarted whenever what it answers
 * changes: the addresses Redis listens on (a LAN choice, a DHCP change), or the fleet
 * (this manager became active or stands by: only the active one answers).
 */
import { DiscoveryResponder } from './discovery/discovery-responder.js';
import type { Fleet } from './fleet/fleet.js';
import type { NetworkInterfaces } from './network-access.js';
import type { Logger } from './log.js';

export interface DiscoveryControlOptions {
  port: number;
  /** What Redis listens on now. */
  bind: () => string[];
  interfaces: () => NetworkInterfaces;
  /** The fleet whose boards are answered; undefined: none (standing by, stopping): no responder. */
  fleet: () => Fleet | undefined;
  log: Logger;
}

export class DiscoveryControl {
  private responder: DiscoveryResponder | undefined;
  /** Serialises restarts (two LAN changes at once must not open two responders). */
  private change: Promise<void> = Promise.resolve();

  constructor(private readonly options: DiscoveryControlOptions) {}

  /** Where it answers now (null: off). */
  info(): { port: number; addresses: string[] } | null {
    return this.responder ? { port: this.responder.port, addresses: this.responder.addresses } : null;
  }

  /**
   * (Re)starts the responder on what Redis listens on now, or only stops it when there is
   * no fleet to answer for. Never fails the caller: a taken port (a second service) means
   * no discovery, with a warning.
   */
  restart(): Promise<void> {
    const change = async () => {
      await this.responder?.close();
      this.responder = undefined;
      const fleet = this.options.fleet();
      if (!fleet) return;
      try {
        this.responder = await DiscoveryResponder.start({
          bind: this.options.bind(),
          port: this.options.port,
          interfaces: this.options.interfaces,
          advertise: (boardId) => fleet.advertiseFor(boardId),
          keyFor: (boardId) => fleet.discoveryKey(boardId),
          log: this.options.log,
        });
        this.options.log('info', `discovery: boards that lost the service are answered on UDP ${this.responder.addresses.join(', ')}`);
      } catch (error) {
        this.options.log('warn', `discovery is off (boards whose computer address changed will not find the service): ${(error as Error).message}`);
      }
    };
    // A failed change must not block the next one: the chain never rejects.
    this.change = this.change.then(change).catch((error: Error) => this.options.log('warn', `discovery: ${error.message}`));
    return this.change;
  }
}

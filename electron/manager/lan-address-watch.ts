/**
 * Follows the LAN address boards were let in on while the service runs. A new DHCP lease
 * gives the computer another address on the same interface; without this, Redis would
 * keep listening on an address nobody can reach until the user chose the new one by hand.
 * The watcher looks at the interface list every few seconds and, when the chosen address
 * is gone and its interface has a new one (network-access.ts, followLanAddress), hands
 * the move to the Manager, which applies it the way a user's choice is applied. It also
 * notices an address that was gone when the service started coming back (a laptop whose
 * wifi connects after the service started at login).
 *
 * The interface list, the period and what a move does come in through the options, so
 * tests can change what the computer "has". Never prints.
 */
import { silentLogger, type Logger } from './log.js';
import { followLanAddress, type LanInterface, type NetworkInterfaces } from './network-access.js';

/** Once a DHCP lease changed, boards wait at most about this long for the service to follow. */
export const DEFAULT_LAN_WATCH_INTERVAL_MS = 5_000;

/** The LAN address the user chose, as the Manager holds it now. */
export interface LanChoice {
  address: string;
  /** The interface it was chosen on; undefined for a choice saved before interfaces were kept (not followed). */
  interfaceName: string | undefined;
  /** Redis listens there now; false when it was gone already when the service started. */
  listening: boolean;
}

export interface LanAddressMove {
  /** The chosen address. */
  from: string;
  /** The address to listen on instead (or the same one, back again), and its interface. */
  to: LanInterface;
  /** Redis listened on `from` until now, so connections made to it are to be closed. */
  wasListening: boolean;
}

export type LanWatchDecision =
  | { action: 'nothing' }
  /** The address is gone and its interface has no other yet: wait (boards cannot reach the service meanwhile). */
  | { action: 'wait' }
  | { action: 'follow'; move: LanAddressMove };

/** What the watcher does about `choice` given the interfaces now. Pure. */
export function decideLanWatch(choice: LanChoice | null, interfaces: NetworkInterfaces): LanWatchDecision {
  if (choice === null) return { action: 'nothing' };
  const found = followLanAddress(choice.address, choice.interfaceName, interfaces);
  if (found.state === 'gone') return { action: 'wait' };
  if (found.state === 'present') {
    return choice.listening ? { action: 'nothing' } : { action: 'follow', move: { from: choice.address, to: found.at, wasListening: false } };
  }
  return { action: 'follow', move: { from: choice.address, to: found.to, wasListening: choice.listening } };
}

export interface LanAddressWatchOptions {
  /** The choice to follow now; null when there is none (loopback only, `--bind`, an external Redis). */
  choice: () => LanChoice | null;
  interfaces: () => NetworkInterfaces;
  /** Applies a move; the watcher waits for it before looking again, and looks again on the next period if it failed. */
  follow: (move: LanAddressMove) => Promise<void>;
  /** How often to look (default 5 s). */
  intervalMs?: number;
  log?: Logger;
}

export class LanAddressWatch {
  private readonly log: Logger;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private looking: Promise<void> | undefined;
  private stopped = true;
  /** What was last reported, so one situation is logged once, not every period. */
  private reported = '';

  constructor(private readonly options: LanAddressWatchOptions) {
    this.log = options.log ?? silentLogger;
    this.intervalMs = options.intervalMs ?? DEFAULT_LAN_WATCH_INTERVAL_MS;
    if (!Number.isFinite(this.intervalMs) || this.intervalMs <= 0)
      throw new RangeError(`lan watch interval must be a positive number of ms, not ${options.intervalMs}`);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  /** Stops looking; resolves once a move in progress has been applied. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.looking;
  }

  private schedule(): void {
    if (this.stopped) return;
    // One look at a time, the next a full period after the last ended: a slow move never overlaps the next look.
    this.timer = setTimeout(() => {
      this.looking = this.check().finally(() => {
        this.looking = undefined;
        this.schedule();
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  /** One look: follows the chosen address if it moved. Never rejects. */
  async check(): Promise<void> {
    let decision: LanWatchDecision;
    let choice: LanChoice | null;
    try {
      choice = this.options.choice();
      decision = decideLanWatch(choice, this.options.interfaces());
    } catch (error) {
      this.report('error', 'warn', `cannot read this computer's network interfaces: ${(error as Error).message}`);
      return;
    }
    if (decision.action === 'nothing') {
      this.reported = '';
      return;
    }
    if (decision.action === 'wait') {
      if (choice?.listening) {
        const where = choice.interfaceName ? ` and ${choice.interfaceName} has no other address yet` : '';
        this.report(
          `gone ${choice.address}`,
          'warn',
          `this computer no longer has the address ${choice.address}${where}: boards on the local network cannot reach the service until it has one again`,
        );
      }
      return;
    }
    const { move } = decision;
    try {
      await this.options.follow(move);
      this.reported = '';
    } catch (error) {
      this.report(
        `failed ${move.to.address}`,
        'warn',
        `could not listen on ${move.to.address} (${move.to.name}) instead of ${move.from}, trying again: ${(error as Error).message}`,
      );
    }
  }

  private report(key: string, level: 'warn', message: string): void {
    if (this.reported === key) return;
    this.reported = key;
    this.log(level, message);
  }
}

/**
 * Active or standby (docs/ARCHITECTURE.md "Several managers"): of the managers on one Redis
 * only the holder of the lease (redis/manager-lease.ts) runs the fleet. This keeps trying:
 * a standby acquires every `retryMs` and, once it holds the lease, activates (the fleet
 * restores from Redis as after a restart); an active one renews and, when the lease is
 * someone else's, Redis refused its epoch (STALE), or it could not renew for a whole TTL,
 * stops acting at once and stands by.
 */
import { ManagerError, type ErrorKind } from './errors.js';
import os from 'node:os';
import type { LeaseHolder, ManagerLease } from './redis/manager-lease.js';
import type { Logger } from './log.js';

/** What `status` says about the role (api/contract.ts ManagerRoleStatus). */
export interface ManagerRoleInfo {
  role: 'active' | 'standby';
  id: string;
  /** This manager's computer (os.hostname(), as its lease would say): a standby whose active manager has the same is on the same computer. */
  host: string;
  epoch?: number;
  /** The active manager (this one when active); null when none holds the lease. */
  active: { id: string; host: string; pid: number; apiUrl: string; since: number } | null;
}

/** A route that needs the fleet, asked of a standby manager (the API answers 503). */
export class StandbyError extends ManagerError {
  override name = 'StandbyError';
  readonly kind: ErrorKind = 'unavailable';
}

export interface ManagerRoleOptions {
  lease: ManagerLease;
  /** Starts acting (fenced with `epoch`); a failure stands the manager by again. */
  activate: (epoch: number) => Promise<void>;
  /** Stops acting; `superseded`: another manager may act already, so nothing more is written. */
  deactivate: (superseded: boolean) => Promise<void>;
  log: Logger;
  /** How often the lease is renewed, or tried for (default a third of its TTL). */
  retryMs?: number;
}

export class ManagerRole {
  private role: 'active' | 'standby' = 'standby';
  private epoch: number | undefined;
  private holder: LeaseHolder | undefined;
  /** When the lease was last confirmed (performance.now()). */
  private renewedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly retryMs: number;
  /** The last failure to reach the lease, logged once. */
  private lastError: string | undefined;
  /** After being superseded: no acquisition before this (performance.now()). */
  private pausedUntil = 0;
  /** Why the last activation failed (start() throws it when it was the first try). */
  private activationError: Error | undefined;

  constructor(private readonly options: ManagerRoleOptions) {
    this.retryMs = options.retryMs ?? Math.max(50, Math.floor(options.lease.ttlMs / 3));
  }

  get isActive(): boolean {
    return this.role === 'active';
  }

  /** Decides the role once (activating when the lease is free), then keeps renewing or trying. */
  async start(): Promise<void> {
    await this.enqueue(() => this.tick());
    // As before there were roles: a service that cannot run its fleet (a Redis it cannot set up) does not start.
    if (this.activationError) throw this.activationError;
    this.timer = setInterval(() => void this.enqueue(() => this.tick()), this.retryMs);
    this.timer.unref();
  }

  /** Redis refused this manager's epoch (STALE): another one is active. */
  superseded(reason: string): void {
    void this.enqueue(async () => {
      if (this.role !== 'active') return;
      await this.demote(`another manager took over (${reason})`, true);
      // Its lease, if still there, proves nothing now; one TTL without trying leaves the field to the newer manager (no flapping).
      await this.options.lease.release().catch(() => undefined);
      this.pausedUntil = performance.now() + this.options.lease.ttlMs;
    });
  }

  /** Stops trying; an active manager stops acting and gives the lease up so a standby takes over at its next try. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.enqueue(async () => {
      if (this.role !== 'active') return;
      this.role = 'standby';
      try {
        await this.options.deactivate(false);
      } finally {
        await this.options.lease.release().catch((error: Error) => this.options.log('warn', `could not release the manager lease: ${error.message}`));
      }
    });
  }

  info(): ManagerRoleInfo {
    const holder = this.holder;
    return {
      role: this.role,
      id: this.options.lease.id,
      host: os.hostname(),
      ...(this.role === 'active' ? { epoch: this.epoch } : {}),
      active: holder ? { id: holder.id, host: holder.host, pid: holder.pid, apiUrl: holder.apiUrl, since: holder.since } : null,
    };
  }

  /** The message a standby answers routes that need the fleet with. */
  standbyMessage(): string {
    const holder = this.holder;
    if (!holder) return 'this manager is standing by and no manager is active yet; it takes over within a few seconds';
    return `this manager is standing by; the active one is ${holder.host} (pid ${holder.pid}) since ${new Date(holder.since).toISOString()}${holder.apiUrl ? `, API ${holder.apiUrl}` : ''}`;
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(step).catch((error: Error) => this.options.log('error', `manager role: ${error.message}`));
    return this.chain;
  }

  private async tick(): Promise<void> {
    if (this.stopped || (this.role === 'standby' && performance.now() < this.pausedUntil)) return;
    const lease = this.options.lease;
    let attempt;
    try {
      // A call that waits (a failover, a hung connection) must not keep an active manager acting past its lease.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from Redis within ${lease.ttlMs} ms`)), lease.ttlMs);
      });
      attempt = await Promise.race([lease.acquire(), late]).finally(() => clearTimeout(timer));
    } catch (error) {
      const message = (error as Error).message;
      if (message !== this.lastError) this.options.log('warn', `could not ${this.role === 'active' ? 'renew' : 'acquire'} the manager lease: ${message}`);
      this.lastError = message;
      // Unreachable Redis: the lease may have expired meanwhile and another manager taken over.
      if (this.role === 'active' && performance.now() - this.renewedAt > lease.ttlMs) {
        await this.demote(`could not renew the manager lease for ${lease.ttlMs} ms: ${(error as Error).message}`, true);
      }
      return;
    }
    if (!attempt.held) {
      if (this.role === 'active') await this.demote(`another manager holds the lease (${attempt.holder?.id ?? 'unknown'})`, true);
      if (attempt.holder?.id !== this.holder?.id && attempt.holder) {
        this.options.log('info', `standing by: the active manager is ${attempt.holder.host} (pid ${attempt.holder.pid}, id ${attempt.holder.id})`);
      }
      this.holder = attempt.holder;
      return;
    }
    this.lastError = undefined;
    this.renewedAt = performance.now();
    if (this.role === 'active' && attempt.epoch === this.epoch) return;
    // Held with a new epoch: this manager lost the lease in between, and anything it holds in memory is stale.
    if (this.role === 'active') await this.demote(`the lease was lost between renewals (epoch ${this.epoch} → ${attempt.epoch})`, true);
    if (this.stopped) return;
    const previous = this.holder;
    this.holder = attempt.holder;
    this.epoch = attempt.epoch;
    try {
      await this.options.activate(attempt.epoch);
    } catch (error) {
      this.activationError = error as Error;
      this.options.log('error', `could not become the active manager: ${(error as Error).message}`);
      await this.options.deactivate(false).catch(() => undefined);
      await lease.release().catch(() => undefined);
      this.holder = undefined;
      return;
    }
    this.role = 'active';
    this.options.log('info', `active (epoch ${attempt.epoch})${previous && previous.id !== lease.id ? `, took over from ${previous.id}` : ''}`);
  }

  private async demote(reason: string, superseded: boolean): Promise<void> {
    this.role = 'standby';
    // Who is active now is learnt at the next try.
    this.holder = undefined;
    this.options.log('warn', `standing by: ${reason}`);
    await this.options.deactivate(superseded).catch((error: Error) => this.options.log('warn', `while standing by: ${error.message}`));
  }
}

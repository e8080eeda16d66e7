/**
 * Virtual boards started from the UI ("Try virtual boards"): reference boards running real
 * MicroPython inside the service, so the app can be explored without hardware. They enroll
 * through the service's own API like any client would, with names that do not clash with
 * boards already in the fleet (virtual-1, virtual-2, …).
 */
import type { ApiClient } from '../api/client.js';
import { startVirtualFleet, type VirtualFleet } from './virtual-fleet.js';
import { ManagerError, type ErrorKind } from '../errors.js';

export const SIM_PREFIX = 'virtual';
export const MAX_SIM_BOARDS = 50;

export class SimLimitError extends ManagerError {
  override name = 'SimLimitError';
  readonly kind: ErrorKind = 'conflict';
}

export class SimService {
  private fleets: VirtualFleet[] = [];
  private starting: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: { api: () => ApiClient; takenNames: () => string[] }) {}

  get count(): number {
    return this.fleets.reduce((sum, fleet) => sum + fleet.boards.length, 0);
  }

  /** Starts `count` more virtual boards; resolves once they are connected. */
  start(count: number): Promise<{ names: string[] }> {
    const run = this.starting.then(async () => {
      if (this.count + count > MAX_SIM_BOARDS) {
        throw new SimLimitError(`at most ${MAX_SIM_BOARDS} virtual boards run inside the service (${this.count} already do)`);
      }
      const taken = new Set(this.options.takenNames());
      let first = 1;
      while (Array.from({ length: count }, (_, index) => `${SIM_PREFIX}-${first + index}`).some((name) => taken.has(name))) first++;
      const names = Array.from({ length: count }, (_, index) => `${SIM_PREFIX}-${first + index}`);
      const fleet = await startVirtualFleet({ api: this.options.api(), count, names, board: { reconnectMinMs: 500 } });
      this.fleets.push(fleet);
      return { names };
    });
    this.starting = run.catch(() => undefined);
    return run;
  }

  /** Stops every virtual board (they stay enrolled, offline, until removed). */
  async stop(): Promise<{ stopped: number }> {
    const fleets = this.fleets;
    this.fleets = [];
    const stopped = fleets.reduce((sum, fleet) => sum + fleet.boards.length, 0);
    await Promise.all(fleets.map((fleet) => fleet.close()));
    return { stopped };
  }
}

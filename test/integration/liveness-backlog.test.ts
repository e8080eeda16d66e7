/**
 * A board whose heartbeats wait behind the service's uplink backlog is alive: during a
 * broadcast to thousands of boards the reader runs seconds behind, and boards were marked
 * offline (then online again) although their heartbeats had come. Here one read round of
 * the reader is held past the board's deadline while the board keeps beating.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { FleetStore } from '../../electron/manager/redis/fleet-store.js';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';

describe('liveness behind an uplink backlog', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await startLab({ boards: 1, prefix: 'beat', heartbeatS: 1 });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('keeps a board online while its heartbeats wait to be read, and reads them after', async () => {
    const fleet = lab.manager.fleet;
    const board = fleet.registry.get(lab.fleet.byName('beat-1')!.id)!;
    expect(board.online).toBe(true);
    const offline: string[] = [];
    fleet.on('board', (event) => {
      if (event.type === 'board.offline') offline.push(event.board.name);
    });
    const store = (fleet as unknown as { store: FleetStore }).store;
    const read = store.readUplinks.bind(store);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let holding = false;
    const spy = vi.spyOn(store, 'readUplinks').mockImplementation(async (...args) => {
      if (!holding) {
        holding = true;
        await held;
      }
      return read(...args);
    });
    try {
      // The sweep runs every 250 ms: a second past the deadline it has looked several times.
      const deadline = await waitFor(() => (holding ? board.deadline : null), 10_000, 'a read round held');
      await waitFor(() => Date.now() > deadline + 1_000, 10_000, 'the deadline passed while the reader was held');
      expect(board.online).toBe(true);
      const heldSeen = board.lastSeen!;
      release();
      await waitFor(() => board.lastSeen! > heldSeen, 10_000, 'the held heartbeats read');
      expect(board.online).toBe(true);
      expect(offline).toEqual([]);
    } finally {
      release();
      spy.mockRestore();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { BoardRegistry, newStoredBoard, SWEEP_INTERVAL_MS, type BoardState } from '../../electron/manager/fleet/board-registry.js';

function board(registry: BoardRegistry, id: string, hb: number): BoardState {
  return registry.add(newStoredBoard({ id, name: id, enrolledAt: 0, hb, virtual: false }));
}

/** Sweeps every SWEEP_INTERVAL_MS from `from` to `to` (ms) and says when each board went offline. */
function sweepUntil(registry: BoardRegistry, from: number, to: number, offline: Map<string, number>, unread: (id: string) => boolean = () => false) {
  registry.removeAllListeners('offline');
  registry.on('offline', (b) => offline.set(b.id, now));
  let now = from;
  for (; now <= to; now += SWEEP_INTERVAL_MS) registry.sweep(now, unread);
}

describe('liveness sweep', () => {
  it('marks a silent board offline within two heartbeat periods, and not before', () => {
    const registry = new BoardRegistry();
    const quiet = board(registry, 'quiet', 5);
    registry.touch(quiet, 0);
    const offline = new Map<string, number>();
    sweepUntil(registry, 0, 9_500, offline);
    expect(quiet.online).toBe(true);
    sweepUntil(registry, 9_750, 10_250, offline);
    expect(offline.get('quiet')).toBeLessThanOrEqual(10_000);
  });

  it('a board whose deadline comes before every other one (a shorter heartbeat, joining later) is still caught in time', () => {
    const registry = new BoardRegistry();
    const slow = board(registry, 'slow', 300);
    const fast = board(registry, 'fast', 1);
    registry.touch(slow, 0);
    const offline = new Map<string, number>();
    sweepUntil(registry, 0, 1_000, offline); // the earliest deadline is now the slow board's, minutes ahead
    registry.touch(fast, 1_000);
    sweepUntil(registry, 1_250, 4_000, offline);
    expect(offline.get('fast')).toBeLessThanOrEqual(3_000);
    expect(slow.online).toBe(true);
  });

  it('a board that finished a long command falls back to its heartbeat deadline', () => {
    const registry = new BoardRegistry();
    const busy = board(registry, 'busy', 1);
    registry.touch(busy, 0);
    registry.setBusy(busy, 'c1', 60_000, 0);
    const offline = new Map<string, number>();
    sweepUntil(registry, 0, 5_000, offline);
    expect(busy.online).toBe(true);
    registry.clearBusy(busy, 'c1', 5_000);
    sweepUntil(registry, 5_250, 8_000, offline);
    expect(offline.get('busy')).toBeLessThanOrEqual(2_000 + 5_250);
  });

  it('a board with entries not read yet stays online until they are', () => {
    const registry = new BoardRegistry();
    const behind = board(registry, 'behind', 1);
    registry.touch(behind, 0);
    const offline = new Map<string, number>();
    sweepUntil(registry, 0, 5_000, offline, () => true);
    expect(behind.online).toBe(true);
    sweepUntil(registry, 5_250, 5_500, offline);
    expect(offline.get('behind')).toBe(5_250);
  });
});

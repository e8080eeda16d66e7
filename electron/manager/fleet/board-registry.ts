/**
 * Every enrolled board and what the manager knows of it: name, board facts from its last
 * `hello`, and whether it is online (PROTOCOL.md §6 "Liveness"). Online state is derived
 * from uplink traffic in memory; the durable part of each record lives in Redis.
 */
import { EventEmitter } from 'node:events';
import { z } from 'zod';
import { ManagerError, type ErrorKind } from '../errors.js';

export const DEFAULT_HEARTBEAT_S = 5;
/** Heartbeat periods a board may use (PROTOCOL.md §1). */
export const MIN_HEARTBEAT_S = 1;
export const MAX_HEARTBEAT_S = 300;

const storedBoardSchema = z.object({
  id: z.string(),
  name: z.string(),
  enrolledAt: z.number(),
  hb: z.number().int().min(MIN_HEARTBEAT_S).max(MAX_HEARTBEAT_S).default(DEFAULT_HEARTBEAT_S),
  lastSeen: z.number().nullable().default(null),
  platform: z.string().nullable().default(null),
  micropython: z.string().nullable().default(null),
  client: z.string().nullable().default(null),
  ip: z.string().nullable().default(null),
  memFree: z.number().nullable().default(null),
  boot: z.string().nullable().default(null),
  tags: z.array(z.string()).default([]),
  /** Flashed with BOOT/RESET by hand and not reset since: a software reset lands in its bootloader. */
  needsReset: z.boolean().default(false),
  /** Enrolled by `mbm sim` (or the UI's virtual boards): a board that runs on this computer, whose name sim may take again. */
  virtual: z.boolean().default(false),
  /** Its Redis user is off: revoked by the user, or suspended for going over its budget (board-access.ts). */
  disabled: z
    .object({ kind: z.enum(['revoked', 'suspended']), reason: z.string(), at: z.number() })
    .nullable()
    .default(null),
});
export type StoredBoard = z.infer<typeof storedBoardSchema>;

export interface BoardState extends StoredBoard {
  online: boolean;
  /** Until when the board counts as online without further traffic (ms epoch). */
  deadline: number;
  /** Command the board has started and not finished, with the latest time it may take. */
  busy: { cid: string; until: number } | null;
}

/** What the API shows of a board: no secrets, nothing internal. */
export interface BoardSummary {
  id: string;
  name: string;
  online: boolean;
  lastSeen: number | null;
  platform: string | null;
  micropython: string | null;
  client: string | null;
  ip: string | null;
  memFree: number | null;
  heartbeatS: number;
  enrolledAt: number;
  busy: string | null;
  tags: string[];
  /** Press RESET on it once: until then a reboot lands in its bootloader (flashed by hand). */
  needsReset: boolean;
  /** A virtual board (`mbm sim`, the UI's "Try virtual boards"), not hardware. */
  virtual: boolean;
  /** Revoked or suspended: it cannot log in until enabled (`boards.enable`) or re-enrolled. */
  disabled: { kind: 'revoked' | 'suspended'; reason: string; at: number } | null;
}

/** What changes often (every heartbeat): sent to the UI in batches, not one event each. */
export interface BoardActivity {
  id: string;
  lastSeen: number | null;
  memFree: number | null;
  busy: string | null;
}

export interface RegistryEvents {
  /** Last seen, free memory or busy changed (many per second in a big fleet). */
  activity: [board: BoardState];
  online: [board: BoardState];
  offline: [board: BoardState, reason: string];
  changed: [board: BoardState];
}

export class UnknownBoardError extends ManagerError {
  override name = 'UnknownBoardError';
  readonly kind: ErrorKind = 'not_found';
}

/** A board just enrolled: known by id, name and heartbeat, nothing heard from it yet. */
export function newStoredBoard(board: Pick<StoredBoard, 'id' | 'name' | 'enrolledAt' | 'hb' | 'virtual'>): StoredBoard {
  return {
    ...board,
    lastSeen: null,
    platform: null,
    micropython: null,
    client: null,
    ip: null,
    memFree: null,
    boot: null,
    tags: [],
    needsReset: false,
    disabled: null,
  };
}

export function parseStoredBoard(json: string): StoredBoard {
  return storedBoardSchema.parse(JSON.parse(json));
}

export function summarizeBoard(board: BoardState): BoardSummary {
  return {
    id: board.id,
    name: board.name,
    online: board.online,
    lastSeen: board.lastSeen,
    platform: board.platform,
    micropython: board.micropython,
    client: board.client,
    ip: board.ip,
    memFree: board.memFree,
    heartbeatS: board.hb,
    enrolledAt: board.enrolledAt,
    busy: board.busy?.cid ?? null,
    tags: [...board.tags],
    needsReset: board.needsReset,
    virtual: board.virtual,
    disabled: board.disabled,
  };
}

export function boardActivity(board: BoardState): BoardActivity {
  return { id: board.id, lastSeen: board.lastSeen, memFree: board.memFree, busy: board.busy?.cid ?? null };
}

export function storedPart(board: BoardState): StoredBoard {
  const { online: _online, deadline: _deadline, busy: _busy, ...stored } = board;
  return stored;
}

/**
 * The registry is swept this often; a silent board's deadline is two heartbeat periods
 * after its last sign of life minus one sweep, so it is marked offline within two periods.
 */
export const SWEEP_INTERVAL_MS = 250;

export class BoardRegistry extends EventEmitter<RegistryEvents> {
  private readonly byId = new Map<string, BoardState>();
  private readonly byName = new Map<string, BoardState>();
  /** No online board's deadline is earlier than this (a lower bound): a sweep before it has nothing to do. */
  private earliestDeadline = 0;

  add(stored: StoredBoard): BoardState {
    const board: BoardState = { ...stored, online: false, deadline: 0, busy: null };
    this.byId.set(board.id, board);
    this.byName.set(board.name, board);
    return board;
  }

  remove(id: string): void {
    const board = this.byId.get(id);
    if (!board) return;
    this.byId.delete(id);
    this.byName.delete(board.name);
  }

  rename(board: BoardState, name: string): void {
    this.byName.delete(board.name);
    board.name = name;
    this.byName.set(name, board);
    this.emit('changed', board);
  }

  get(id: string): BoardState | undefined {
    return this.byId.get(id);
  }

  hasName(name: string): boolean {
    return this.byName.has(name);
  }

  byNameOrId(nameOrId: string): BoardState | undefined {
    return this.byName.get(nameOrId) ?? this.byId.get(nameOrId);
  }

  require(nameOrId: string): BoardState {
    const board = this.byNameOrId(nameOrId);
    if (!board) throw new UnknownBoardError(`no board named ${JSON.stringify(nameOrId)}`);
    return board;
  }

  all(): BoardState[] {
    return [...this.byId.values()];
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  counts(): { online: number; total: number } {
    let online = 0;
    for (const board of this.byId.values()) if (board.online) online++;
    return { online, total: this.byId.size };
  }

  /** Any valid uplink entry: the board is alive now. */
  touch(board: BoardState, now: number): void {
    board.lastSeen = now;
    this.extendDeadline(board, now);
    this.emit('activity', board);
    if (!board.online) {
      board.online = true;
      this.emit('online', board);
    }
  }

  setBusy(board: BoardState, cid: string, until: number, now: number): void {
    board.busy = { cid, until };
    this.extendDeadline(board, now);
    this.emit('activity', board);
  }

  clearBusy(board: BoardState, cid: string, now: number): void {
    if (board.busy?.cid !== cid) return;
    board.busy = null;
    this.extendDeadline(board, now);
    this.emit('activity', board);
  }

  markOffline(board: BoardState, reason: string): void {
    board.busy = null;
    if (!board.online) return;
    board.online = false;
    this.emit('offline', board, reason);
  }

  /**
   * Marks offline every board whose deadline has passed; call a few times a second. A board
   * with entries not handled yet (`unread`: the uplink reader is behind) is not: its heartbeat
   * came, the service has not read it yet.
   */
  sweep(now: number, unread: (boardId: string) => boolean = () => false): void {
    // A pass over every board only once a deadline may have passed: at 10,000 boards a pass
    // four times a second was about 5 % of the service's CPU; with heartbeats arriving, the
    // earliest deadline is seconds ahead and most sweeps end here.
    if (now <= this.earliestDeadline) return;
    this.earliestDeadline = Infinity;
    for (const board of this.byId.values()) {
      if (!board.online) continue;
      if (now > board.deadline && !unread(board.id)) this.markOffline(board, 'no heartbeat');
      else this.earliestDeadline = Math.min(this.earliestDeadline, board.deadline);
    }
  }

  private extendDeadline(board: BoardState, now: number): void {
    const quiet = (board.lastSeen ?? now) + 2 * board.hb * 1000 - SWEEP_INTERVAL_MS;
    const busy = board.busy ? board.busy.until + 2 * board.hb * 1000 : 0;
    board.deadline = Math.max(quiet, busy);
    // A deadline may move earlier (a board no longer busy, a shorter heartbeat): keep the bound.
    this.earliestDeadline = Math.min(this.earliestDeadline, board.deadline);
  }
}

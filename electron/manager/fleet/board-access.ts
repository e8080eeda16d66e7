/**
 * Whether a board may log in, and the budget that keeps one board from exhausting Redis or
 * stalling the manager. What Redis can enforce it does (ACL: a board appends only to its
 * uplink; proto-max-bulk-len; the output buffer limit; maxmemory). What it cannot — how much
 * a board writes into its uplink and its state hash — is measured here, and a board over
 * its budget is suspended at once: its Redis user turned off, its connections closed, an
 * alarm raised that names it. The user enables it again (`mbm board-enable`), or revokes a
 * board outright (`mbm board-revoke`): the same switch, kept until enabled or re-enrolled.
 */
import type { FleetStore } from '../redis/fleet-store.js';
import type { Logger } from '../log.js';
import type { BoardState } from './board-registry.js';
import type { UplinkUsage } from './uplink-reader.js';
import { ManagerError, type ErrorKind } from '../errors.js';

/** Per-board budget. PROTOCOL.md §6 "Limits" and docs/SECURITY.md give the reasons. */
export const BOARD_BUDGET = {
  /** Uplink bytes the manager reads from one board per second; a `get` at full speed is far below. */
  uplinkBytesPerSecond: 16 * 1024 * 1024,
  /** Entries a board's uplink may hold: boards trim to about 1,000 themselves (MAXLEN ~ 1000). */
  uplinkEntries: 2_000,
  /** The state hash holds `cur`, `stop` and `ack`, each under 100 bytes. */
  stateFields: 8,
  stateBytes: 16 * 1024,
} as const;

export type DisabledKind = 'revoked' | 'suspended';

/** A board suspended for going over its budget, as `status` lists it until it is enabled. */
export interface BoardSuspendedAlarm {
  kind: 'board-suspended';
  boardId: string;
  board: string;
  reason: string;
  at: number;
}

export class BoardNotDisabledError extends ManagerError {
  override name = 'BoardNotDisabledError';
  readonly kind: ErrorKind = 'conflict';
}

interface RateWindow {
  start: number;
  bytes: number;
}

export interface BoardAccessOptions {
  store: FleetStore;
  log: Logger;
  board: (id: string) => BoardState | undefined;
  /** Saves the board's record and tells listeners it changed. */
  changed: (board: BoardState) => Promise<void>;
}

export class BoardAccess {
  private readonly rates = new Map<string, RateWindow>();

  constructor(private readonly options: BoardAccessOptions) {}

  /** Boards suspended and not enabled since, oldest first. */
  alarms(boards: BoardState[]): BoardSuspendedAlarm[] {
    return boards
      .filter((board) => board.disabled?.kind === 'suspended')
      .map((board) => ({ kind: 'board-suspended' as const, boardId: board.id, board: board.name, reason: board.disabled!.reason, at: board.disabled!.at }))
      .sort((a, b) => a.at - b.at);
  }

  /**
   * One read of a board's uplink: `bytes` looked at (oversized entries included), the
   * stream's length, and the size of its state hash (which the read measures too; a write
   * to that hash makes the reader read the board). True when the board is over its budget
   * and has just been suspended.
   */
  uplinkRead(board: BoardState, usage: UplinkUsage, now = Date.now()): boolean {
    if (board.disabled) return false;
    const { bytes, length, stateFields, stateBytes } = usage;
    if (stateFields > BOARD_BUDGET.stateFields || stateBytes > BOARD_BUDGET.stateBytes) {
      this.suspend(
        board,
        `it stored ${kib(stateBytes)} in ${stateFields} field${stateFields === 1 ? '' : 's'} of its status record (budget ${kib(BOARD_BUDGET.stateBytes)} in ${BOARD_BUDGET.stateFields} fields)`,
      );
      return true;
    }
    if (length > BOARD_BUDGET.uplinkEntries) {
      this.suspend(board, `it left ${length} messages waiting for the service (budget ${BOARD_BUDGET.uplinkEntries})`);
      return true;
    }
    let window = this.rates.get(board.id);
    if (!window || now - window.start >= 1_000) {
      window = { start: now, bytes: 0 };
      this.rates.set(board.id, window);
    }
    window.bytes += bytes;
    if (window.bytes > BOARD_BUDGET.uplinkBytesPerSecond) {
      this.suspend(board, `it sent ${mib(window.bytes)} to the service within a second (budget ${mib(BOARD_BUDGET.uplinkBytesPerSecond)}/s)`);
      return true;
    }
    return false;
  }

  /**
   * Suspends a board now: marked at once (so nothing more of it is read), then its user off,
   * its connections closed and what it wrote beyond the protocol dropped.
   */
  suspend(board: BoardState, reason: string): void {
    if (board.disabled) return;
    board.disabled = { kind: 'suspended', reason, at: Date.now() };
    this.options.log('error', `suspended board ${board.name} (${board.id}): ${reason}; \`mbm board-enable ${board.name}\` lets it in again`, {
      boardId: board.id,
    });
    void this.switchOff(board).catch((error: Error) => this.options.log('error', `could not suspend board ${board.name} in Redis: ${error.message}`));
  }

  /** Revokes a board: it cannot log in and its open connections close now; its record stays. */
  async revoke(board: BoardState): Promise<number> {
    board.disabled = { kind: 'revoked', reason: 'revoked by the user', at: Date.now() };
    const closed = await this.switchOff(board, false);
    this.options.log('info', `revoked board ${board.name} (${board.id}); ${closed} connection(s) closed`);
    return closed;
  }

  /** Lets a revoked or suspended board log in again with its credentials. */
  async enable(board: BoardState): Promise<void> {
    if (!board.disabled) throw new BoardNotDisabledError(`board ${board.name} is neither revoked nor suspended`);
    await this.options.store.users.enable(board.id);
    board.disabled = null;
    this.rates.delete(board.id);
    await this.options.changed(board);
    this.options.log('info', `enabled board ${board.name} (${board.id})`);
  }

  /** Credentials re-issued: the new user is on, so the board is no longer disabled. */
  rekeyed(board: BoardState): void {
    board.disabled = null;
    this.rates.delete(board.id);
  }

  forget(id: string): void {
    this.rates.delete(id);
  }

  private async switchOff(board: BoardState, clear = true): Promise<number> {
    const closed = await this.options.store.users.disable(board.id);
    if (clear) await this.options.store.clearBoardWrites(board.id);
    await this.options.changed(board);
    return closed;
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function kib(bytes: number): string {
  return `${Math.round(bytes / 1024)} KiB`;
}

/**
 * The fleet: enrolled boards, their liveness, and the commands sent to them. Wires the
 * registry, the uplink reader and the command dispatcher to the Redis store, and offers
 * the operations the API exposes (enroll, rename, remove, select, send).
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { FleetStore, UplinkEntry } from '../redis/fleet-store.js';
import { assertBoardName, boardUser, isBoardId } from '../redis/keys.js';
import { LogRateLimiter, type Logger } from '../log.js';
import {
  BoardRegistry, DEFAULT_HEARTBEAT_S, SWEEP_INTERVAL_MS, parseStoredBoard, storedPart, summarizeBoard, UnknownBoardError,
  type BoardState, type BoardSummary,
} from './board-registry.js';
import { CommandDispatcher, type CommandView, type OutputEvent, type SendOptions } from './command-dispatcher.js';
import type { CommandRequest } from './command-ops.js';
import { parseUplinkEntry, UplinkMessageError, type UplinkMessage } from './uplink-messages.js';
import { UplinkReader } from './uplink-reader.js';
import { BoardSelectorError, naturalCompare, selectBoards } from './board-selector.js';

export const PROTOCOL_VERSION = 1;

/** What a board needs to join (PROTOCOL.md §1). Contains the password: never log it. */
export interface BoardCredentials {
  v: number;
  id: string;
  name: string;
  user: string;
  password: string;
  server: string;
  port: number;
  hb: number;
}

export type BoardEvent =
  | { type: 'board.online' | 'board.offline' | 'board.changed' | 'board.enrolled'; board: BoardSummary; reason?: string }
  | { type: 'board.removed'; boardId: string; name: string };

export interface FleetEvents {
  board: [event: BoardEvent];
  command: [view: CommandView];
  output: [event: OutputEvent];
}

export interface FleetOptions {
  store: FleetStore;
  log: Logger;
  /** Address and port boards use to reach Redis; written into credentials. */
  advertise: { host: string; port: number };
  heartbeatS?: number;
}

export class BoardNameTakenError extends Error {
  override name = 'BoardNameTakenError';
}

export class Fleet extends EventEmitter<FleetEvents> {
  readonly registry = new BoardRegistry();
  readonly dispatcher: CommandDispatcher;
  private readonly reader: UplinkReader;
  private readonly refusalLog = new LogRateLimiter();
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly store: FleetStore;
  private readonly log: Logger;

  /** Address and port boards use to reach Redis. */
  get advertise(): { host: string; port: number } {
    return this.options.advertise;
  }

  constructor(private readonly options: FleetOptions) {
    super();
    this.setMaxListeners(0);
    this.store = options.store;
    this.log = options.log;
    this.dispatcher = new CommandDispatcher(this.store, this.registry, this.log);
    this.reader = new UplinkReader(
      this.store,
      (id) => this.registry.get(id) !== undefined,
      (id, entry) => this.onUplinkEntry(id, entry),
      (id, error) => this.refuse(id, `uplink unreadable: ${error.message}`),
    );
    this.dispatcher.on('command', (view) => this.emit('command', view));
    this.dispatcher.on('output', (event) => this.emit('output', event));
    this.registry.on('online', (board) => this.emitBoard('board.online', board));
    this.registry.on('offline', (board, reason) => {
      this.persist(board);
      this.emitBoard('board.offline', board, reason);
    });
    this.registry.on('changed', (board) => this.emitBoard('board.changed', board));
  }

  async start(): Promise<void> {
    for (const json of await this.store.loadRegistry()) {
      try {
        this.registry.add(parseStoredBoard(json));
      } catch (error) {
        this.log('error', `ignoring an unreadable board record: ${(error as Error).message}`);
      }
    }
    for (const board of this.registry.all()) await this.dispatcher.restore(board);
    this.store.on('uplink', (id) => this.reader.markDirty(id));
    this.store.on('resync', () => this.resync());
    await this.store.prepare();
    this.resync();
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    this.log('info', `fleet ready: ${this.registry.counts().total} boards enrolled`);
  }

  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.reader.stop();
    await this.reader.idle();
    await Promise.all(this.registry.all().filter((board) => board.online).map((board) => this.persist(board)));
  }

  /** Reads every board's uplink once (after start or a lost subscription). */
  private resync(): void {
    for (const board of this.registry.all()) this.reader.markDirty(board.id);
  }

  private sweep(): void {
    const now = Date.now();
    this.registry.sweep(now);
    this.dispatcher.sweep(now);
  }

  // --- boards ----------------------------------------------------------------------------

  list(): BoardSummary[] {
    return this.registry.all().sort((a, b) => naturalCompare(a.name, b.name)).map(summarizeBoard);
  }

  counts(): { online: number; total: number } {
    return this.registry.counts();
  }

  board(nameOrId: string): BoardState {
    return this.registry.require(nameOrId);
  }

  /** Boards matching a BOARDS pattern; unknown plain names and empty globs are errors. */
  select(pattern: string): BoardState[] {
    const selection = selectBoards(pattern, this.registry.names());
    if (selection.unknown.length > 0) {
      throw new UnknownBoardError(`no board named ${selection.unknown.map((name) => JSON.stringify(name)).join(', ')}`);
    }
    if (selection.unmatchedGlobs.length > 0) {
      throw new BoardSelectorError(`no boards match ${selection.unmatchedGlobs.map((glob) => JSON.stringify(glob)).join(', ')}`);
    }
    return selection.names.map((name) => this.registry.require(name));
  }

  /** Creates a board with its own Redis user, or new credentials for `rotate`. */
  async enroll(name: string, options: { rotate?: boolean; server?: string } = {}): Promise<BoardCredentials> {
    return (await this.enrollMany([name], options))[0]!;
  }

  /** Enrolls several boards at once (one ACL save for all: `mbm sim` enrolls hundreds). */
  async enrollMany(names: string[], options: { rotate?: boolean; server?: string } = {}): Promise<BoardCredentials[]> {
    names.forEach((name) => assertBoardName(name));
    if (new Set(names).size !== names.length) throw new BoardNameTakenError('the same name is given twice');
    for (const name of names) {
      if (this.registry.byNameOrId(name) && !options.rotate) {
        throw new BoardNameTakenError(`a board named ${JSON.stringify(name)} is already enrolled (use rotate to issue new credentials)`);
      }
    }
    const enrolled: Array<{ board: BoardState; password: string; existed: boolean }> = [];
    for (const name of names) {
      let board = this.registry.byNameOrId(name);
      const existed = board !== undefined;
      if (!board) {
        let id: string;
        do id = `b${randomBytes(8).toString('hex').slice(0, 9)}`; while (!isBoardId(id) || this.registry.get(id));
        if (!(await this.store.claimName(name, id))) throw new BoardNameTakenError(`the name ${JSON.stringify(name)} is taken`);
        board = this.registry.add({
          id, name, enrolledAt: Date.now(), hb: this.options.heartbeatS ?? DEFAULT_HEARTBEAT_S,
          lastSeen: null, platform: null, micropython: null, client: null, ip: null, memFree: null, boot: null,
        });
      }
      enrolled.push({ board, password: randomBytes(32).toString('base64url'), existed });
    }
    await this.store.createBoardUsers(enrolled.map(({ board, password }) => ({ id: board.id, password })));
    await Promise.all(enrolled.map(({ board }) => this.persist(board)));
    for (const { board, existed } of enrolled) {
      this.log('info', `enrolled board ${board.name} (${board.id})${existed ? ' with new credentials' : ''}`);
      this.emitBoard('board.enrolled', board);
    }
    return enrolled.map(({ board, password }) => ({
      v: PROTOCOL_VERSION, id: board.id, name: board.name, user: boardUser(board.id), password,
      server: options.server ?? this.advertise.host, port: this.advertise.port, hb: board.hb,
    }));
  }

  /** Renames a board; its id, queue and history stay. The board learns its new name too. */
  async rename(nameOrId: string, newName: string): Promise<BoardSummary> {
    assertBoardName(newName);
    const board = this.registry.require(nameOrId);
    if (board.name === newName) return summarizeBoard(board);
    if (this.registry.byNameOrId(newName) || !(await this.store.claimName(newName, board.id))) {
      throw new BoardNameTakenError(`the name ${JSON.stringify(newName)} is taken`);
    }
    const oldName = board.name;
    this.registry.rename(board, newName);
    await this.persist(board);
    await this.store.releaseName(oldName, board.id);
    this.log('info', `renamed board ${oldName} to ${newName}`);
    await this.dispatcher.send(board, { op: 'rename', name: newName }, { expireMs: 7 * 24 * 3_600_000 });
    return summarizeBoard(board);
  }

  async remove(nameOrId: string): Promise<void> {
    const board = this.registry.require(nameOrId);
    await this.store.deleteBoard(board.id);
    await this.store.releaseName(board.name, board.id);
    this.reader.forget(board.id);
    this.registry.remove(board.id);
    this.log('info', `removed board ${board.name} (${board.id})`);
    this.emit('board', { type: 'board.removed', boardId: board.id, name: board.name });
  }

  send(board: BoardState, request: CommandRequest, options?: SendOptions): Promise<CommandView> {
    return this.dispatcher.send(board, request, options);
  }

  history(nameOrId: string, count = 50): Promise<Array<Record<string, string>>> {
    return this.store.history(this.registry.require(nameOrId).id, count);
  }

  // --- uplink ----------------------------------------------------------------------------

  private onUplinkEntry(boardId: string, entry: UplinkEntry): void {
    const board = this.registry.get(boardId);
    if (!board) return;
    let message: UplinkMessage;
    try {
      message = parseUplinkEntry(entry.fields);
    } catch (error) {
      if (error instanceof UplinkMessageError) this.refuse(boardId, error.message);
      else this.log('error', `failed to read an uplink entry of board ${board.name}: ${(error as Error).message}`);
      return;
    }
    if (message.k === 'init') return;
    const now = Date.now();
    try {
      this.apply(board, message, now);
    } catch (error) {
      this.log('error', `failed to handle ${message.k} from board ${board.name}: ${(error as Error).message}`);
    }
  }

  private apply(board: BoardState, message: UplinkMessage, now: number): void {
    switch (message.k) {
      case 'hello': {
        if (message.v !== PROTOCOL_VERSION) {
          this.refuse(board.id, `speaks protocol version ${message.v}; this manager speaks ${PROTOCOL_VERSION}`);
          return;
        }
        const rebooted = board.boot !== null && board.boot !== message.boot;
        Object.assign(board, {
          boot: message.boot, platform: message.p, micropython: message.mv, client: message.cv,
          ip: message.ip ?? null, memFree: message.mf ?? null, hb: message.hb,
        });
        if (rebooted) this.dispatcher.boardRebooted(board);
        this.registry.touch(board, now);
        void this.persist(board);
        this.emitBoard('board.changed', board);
        return;
      }
      case 'hb':
        if (message.mf !== undefined) board.memFree = message.mf;
        this.registry.touch(board, now);
        return;
      case 'bye':
        board.lastSeen = now;
        this.registry.markOffline(board, message.why ? `board said bye (${message.why})` : 'board said bye');
        return;
      case 'init':
        return;
      default: {
        this.registry.touch(board, now);
        const outcome = this.dispatcher.handle(board, message, now);
        if (outcome === 'unknown') this.refuse(board.id, `${message.k} for a command it was not sent (${message.i})`);
      }
    }
  }

  private refuse(boardId: string, reason: string): void {
    const board = this.registry.get(boardId);
    const label = board ? `${board.name} (${boardId})` : boardId;
    const verdict = this.refusalLog.allow(boardId);
    if (verdict === 'log') this.log('warn', `refused data from board ${label}: ${reason}`, { boardId });
    else if (verdict === 'note-suppressed') this.log('warn', `board ${label} keeps sending bad data; suppressing further messages for a minute`, { boardId });
  }

  private async persist(board: BoardState): Promise<void> {
    try {
      await this.store.saveBoardRecord(board.id, JSON.stringify(storedPart(board)));
    } catch (error) {
      this.log('warn', `could not save board ${board.name}: ${(error as Error).message}`);
    }
  }

  private emitBoard(type: 'board.online' | 'board.offline' | 'board.changed' | 'board.enrolled', board: BoardState, reason?: string): void {
    this.emit('board', { type, board: summarizeBoard(board), ...(reason ? { reason } : {}) });
  }
}

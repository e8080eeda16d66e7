/**
 * The fleet: enrolled boards, their liveness, and the commands sent to them. Wires the
 * registry, the uplink reader and the command dispatcher to the Redis store, and offers
 * the operations the API exposes (enroll, rename, remove, select, send).
 */
import { EventEmitter } from 'node:events';
import type { FleetStore, UplinkEntry } from '../redis/fleet-store.js';
import { assertBoardName } from '../redis/keys.js';
import { LogRateLimiter, type Logger } from '../log.js';
import {
  BoardRegistry,
  SWEEP_INTERVAL_MS,
  boardActivity,
  parseStoredBoard,
  storedPart,
  summarizeBoard,
  UnknownBoardError,
  type BoardActivity,
  type BoardState,
  type BoardSummary,
} from './board-registry.js';
import { CommandDispatcher, type CommandView, type OutputEvent, type SendOptions } from './command-dispatcher.js';
import type { CommandRequest } from './command-ops.js';
import { parseUplinkEntry, UPLINK_LIMITS, UplinkMessageError, type UplinkMessage } from './uplink-messages.js';
import { UplinkReader } from './uplink-reader.js';
import { BoardAccess, type BoardSuspendedAlarm } from './board-access.js';
import { BoardSelectorError, listNames as listSelectedNames, naturalCompare, selectBoards } from './board-selector.js';
import { BoardEnrolment, BoardNameTakenError, PROTOCOL_VERSION, type BoardCredentials, type EnrollOptions } from './board-enrolment.js';
import { ManagerError, type ErrorKind } from '../errors.js';

export { BoardNameTakenError, PROTOCOL_VERSION, type BoardCredentials } from './board-enrolment.js';

export type BoardEvent =
  | { type: 'board.online' | 'board.offline' | 'board.changed' | 'board.enrolled'; board: BoardSummary; reason?: string }
  | { type: 'board.removed'; boardId: string; name: string }
  /** Heartbeats, free memory and busy state of many boards, at most once a second. */
  | { type: 'boards.activity'; boards: BoardActivity[] };

/** Tags: lower case, like board names otherwise; a board carries at most 16. */
export const TAG_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
export const MAX_TAGS_PER_BOARD = 16;
/** How often batched activity (heartbeats, busy) goes out to listeners. */
export const ACTIVITY_INTERVAL_MS = 1_000;

export class InvalidTagError extends ManagerError {
  override name = 'InvalidTagError';
  readonly kind: ErrorKind = 'bad_request';
}

export function normalizeTag(tag: string): string {
  const normalized = tag.trim().toLowerCase();
  if (!TAG_PATTERN.test(normalized)) {
    throw new InvalidTagError(`invalid tag ${JSON.stringify(tag.slice(0, 40))}: 1-32 characters a-z, 0-9, _, . and -, starting with a letter or digit`);
  }
  return normalized;
}

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
  /**
   * The node a given board should use instead (Redis Cluster: the primary of its slot;
   * Sentinel: the current primary); undefined for `advertise`.
   */
  boardAddress?: (boardId: string) => { host: string; port: number } | undefined;
  heartbeatS?: number;
  /** The discovery responder's port when it is not the default: written into credentials (`dp`), or boards could not find it. */
  discoveryPort?: number;
}

export class Fleet extends EventEmitter<FleetEvents> {
  readonly registry = new BoardRegistry();
  readonly dispatcher: CommandDispatcher;
  private readonly reader: UplinkReader;
  private readonly refusalLog = new LogRateLimiter();
  /** Uplink entries refused since the start: the log shows only a few a minute per board, status all (`npm run fuzz` counts them). */
  refusedEntries = 0;
  private sweepTimer: NodeJS.Timeout | undefined;
  private activityTimer: NodeJS.Timeout | undefined;
  private readonly activityDirty = new Set<BoardState>();
  private readonly store: FleetStore;
  private readonly log: Logger;
  private readonly access: BoardAccess;
  private readonly enrolment: BoardEnrolment;

  /** Address and port boards use to reach Redis. */
  get advertise(): { host: string; port: number } {
    return { ...this.options.advertise };
  }

  /** Where board `boardId` should reach Redis now: its node with a Cluster or Sentinel, else `advertise`. */
  advertiseFor(boardId: string): { host: string; port: number } {
    return this.options.boardAddress?.(boardId) ?? this.advertise;
  }

  /** Boards enrolled from now on are told to reach Redis at `host` (LAN access changed). */
  setAdvertiseHost(host: string): void {
    this.options.advertise = { ...this.options.advertise, host };
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
      (id, usage) => {
        const board = this.registry.get(id);
        if (board && (this.access.uplinkRead(board, usage) || board.disabled?.kind === 'suspended')) this.reader.skip(id);
      },
    );
    this.access = new BoardAccess({
      store: this.store,
      log: this.log,
      board: (id) => this.registry.get(id),
      changed: async (board) => {
        await this.persist(board);
        this.emitBoard('board.changed', board);
        // Its connections were just closed: offline now, not two heartbeats later (the UI and the tray said "online" meanwhile).
        if (board.disabled) this.registry.markOffline(board, board.disabled.kind);
      },
    });
    this.enrolment = new BoardEnrolment({
      store: this.store,
      registry: this.registry,
      access: this.access,
      log: this.log,
      heartbeatS: options.heartbeatS,
      advertise: (boardId) => this.advertiseFor(boardId),
      discoveryPort: options.discoveryPort,
      persist: (board) => this.persist(board),
      enrolled: (board) => this.emitBoard('board.enrolled', board),
    });
    this.dispatcher.on('command', (view) => this.emit('command', view));
    this.dispatcher.on('output', (event) => this.emit('output', event));
    this.registry.on('online', (board) => this.emitBoard('board.online', board));
    this.registry.on('offline', (board, reason) => {
      this.persist(board);
      this.emitBoard('board.offline', board, reason);
    });
    this.registry.on('changed', (board) => this.emitBoard('board.changed', board));
    this.registry.on('activity', (board) => this.activityDirty.add(board));
  }

  async start(): Promise<void> {
    for (const json of await this.store.loadRegistry()) {
      try {
        this.registry.add(parseStoredBoard(json));
      } catch (error) {
        this.log('error', `ignoring an unreadable board record: ${(error as Error).message}`);
      }
    }
    await this.enrolment.load();
    for (const board of this.registry.all()) await this.dispatcher.restore(board);
    this.store.on('uplink', (id) => this.reader.notified(id));
    this.store.on('resync', () => this.resync());
    // A board wrote its state hash: read it soon, the read measures that hash too (budget).
    this.store.on('state', (id) => this.reader.markDirty(id, false));
    await this.store.users.upgrade(this.registry.all().map((board) => board.id));
    await this.store.prepare();
    this.resync();
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    this.activityTimer = setInterval(() => this.flushActivity(), ACTIVITY_INTERVAL_MS);
    this.activityTimer.unref();
    this.log('info', `fleet ready: ${this.registry.counts().total} boards enrolled`);
  }

  /** `superseded`: another manager is active (manager-role.ts): stop at once, write nothing more (its writes are the new one's). */
  async stop(options: { superseded?: boolean } = {}): Promise<void> {
    clearInterval(this.sweepTimer);
    clearInterval(this.activityTimer);
    this.reader.stop();
    await this.reader.idle();
    if (options.superseded) return;
    // Results the last reads brought: their history must not be lost with the process.
    await this.dispatcher.flushHistory();
    await Promise.all(
      this.registry
        .all()
        .filter((board) => board.online)
        .map((board) => this.persist(board)),
    );
  }

  /** Reads every board's uplink once (after start or a lost subscription). */
  private resync(): void {
    for (const board of this.registry.all()) this.reader.markDirty(board.id);
  }

  private flushActivity(): void {
    if (this.activityDirty.size === 0) return;
    const boards: BoardActivity[] = [];
    for (const board of this.activityDirty) if (this.registry.get(board.id) === board) boards.push(boardActivity(board));
    this.activityDirty.clear();
    if (boards.length > 0) this.emit('board', { type: 'boards.activity', boards });
  }

  private sweep(): void {
    const now = Date.now();
    this.registry.sweep(now, (boardId) => this.reader.hasUnread(boardId));
    this.dispatcher.sweep(now);
  }

  // --- boards ----------------------------------------------------------------------------

  list(): BoardSummary[] {
    return this.registry
      .all()
      .sort((a, b) => naturalCompare(a.name, b.name))
      .map(summarizeBoard);
  }

  counts(): { online: number; total: number } {
    return this.registry.counts();
  }

  board(nameOrId: string): BoardState {
    return this.registry.require(nameOrId);
  }

  /** The discovery key of an enrolled board; undefined when unknown or enrolled before discovery keys. */
  discoveryKey(id: string): string | undefined {
    return this.enrolment.discoveryKey(id);
  }

  /** Boards matching a BOARDS pattern; unknown plain names and empty globs are errors. */
  select(pattern: string): BoardState[] {
    const known = { has: (name: string) => this.registry.hasName(name), list: () => this.registry.names() };
    const selection = selectBoards(pattern, known, (tag) =>
      this.registry
        .all()
        .filter((board) => board.tags.includes(tag))
        .map((board) => board.name),
    );
    if (selection.unknown.length > 0) throw new UnknownBoardError(`no board named ${listSelectedNames(selection.unknown)}`);
    if (selection.unmatchedGlobs.length > 0) throw new BoardSelectorError(`no boards match ${listSelectedNames(selection.unmatchedGlobs)}`);
    if (selection.unmatchedTags.length > 0) throw new BoardSelectorError(`no boards are tagged ${listSelectedNames(selection.unmatchedTags)}`);
    return selection.names.map((name) => this.registry.require(name));
  }

  /** Creates a board with its own Redis user, or new credentials for `rotate`. */
  async enroll(name: string, options: { rotate?: boolean; server?: string } = {}): Promise<BoardCredentials> {
    return (await this.enrollMany([name], options))[0]!;
  }

  /** Enrolls several boards at once (see BoardEnrolment.enrollMany: `virtual` never takes over a real board's name). */
  enrollMany(names: string[], options: EnrollOptions = {}): Promise<BoardCredentials[]> {
    return this.enrolment.enrollMany(names, options);
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

  /**
   * Adds and removes tags on the boards a BOARDS pattern names. Everything is checked
   * before anything changes: a bad tag, or a board that would carry too many, changes none.
   */
  async tag(pattern: string, add: string[], remove: string[]): Promise<BoardSummary[]> {
    return this.tagBoards(this.select(pattern), add, remove);
  }

  /** `tag` for boards already selected (a tag job's: its pattern may name more boards than a list of names may). */
  async tagBoards(boards: BoardState[], add: string[], remove: string[]): Promise<BoardSummary[]> {
    const adding = [...new Set(add.map(normalizeTag))];
    const removing = new Set(remove.map(normalizeTag));
    if (adding.some((tag) => removing.has(tag))) throw new InvalidTagError('the same tag is both added and removed');
    const next = new Map<BoardState, string[]>();
    for (const board of boards) {
      const tags = board.tags.filter((tag) => !removing.has(tag));
      for (const tag of adding) if (!tags.includes(tag)) tags.push(tag);
      if (tags.length > MAX_TAGS_PER_BOARD) throw new InvalidTagError(`board ${board.name} would carry more than ${MAX_TAGS_PER_BOARD} tags`);
      next.set(board, tags.sort());
    }
    for (const [board, tags] of next) {
      if (tags.join(',') === board.tags.join(',')) continue;
      board.tags = tags;
      await this.persist(board);
      this.emitBoard('board.changed', board);
    }
    return boards.map(summarizeBoard);
  }

  /** Records that a board was flashed by hand and not reset since (see esp-flasher.ts). */
  async setNeedsReset(nameOrId: string, needsReset: boolean): Promise<void> {
    const board = this.registry.require(nameOrId);
    if (board.needsReset === needsReset) return;
    board.needsReset = needsReset;
    await this.persist(board);
    this.emitBoard('board.changed', board);
  }

  async remove(nameOrId: string): Promise<void> {
    const board = this.registry.require(nameOrId);
    // Written before the keys go, so no late history write brings the board's log back.
    await this.dispatcher.flushHistory();
    await this.store.deleteBoard(board.id);
    await this.store.releaseName(board.name, board.id);
    this.reader.forget(board.id);
    this.access.forget(board.id);
    this.enrolment.forget(board.id);
    this.registry.remove(board.id);
    this.log('info', `removed board ${board.name} (${board.id})`);
    this.emit('board', { type: 'board.removed', boardId: board.id, name: board.name });
  }

  /** Revokes a board: its login is refused and its open connections are closed now; its record stays. */
  async revoke(nameOrId: string): Promise<{ board: BoardSummary; closed: number }> {
    const board = this.registry.require(nameOrId);
    const closed = await this.access.revoke(board);
    this.registry.markOffline(board, 'revoked');
    return { board: summarizeBoard(board), closed };
  }

  /** Lets a revoked or suspended board log in again with the credentials it has. */
  async enable(nameOrId: string): Promise<BoardSummary> {
    const board = this.registry.require(nameOrId);
    await this.access.enable(board);
    return summarizeBoard(board);
  }

  /** Boards suspended for going over their budget (until enabled). */
  alarms(): BoardSuspendedAlarm[] {
    return this.access.alarms(this.registry.all());
  }

  send(board: BoardState, request: CommandRequest, options?: SendOptions): Promise<CommandView> {
    return this.dispatcher.send(board, request, options);
  }

  async history(nameOrId: string, count = 50): Promise<Array<Record<string, string>>> {
    const id = this.registry.require(nameOrId).id;
    // Finished commands are written in batches: whoever asks sees every one finished so far.
    await this.dispatcher.flushHistory();
    return this.store.history(id, count);
  }

  // --- uplink ----------------------------------------------------------------------------

  private onUplinkEntry(boardId: string, entry: UplinkEntry): void {
    const board = this.registry.get(boardId);
    if (!board) return;
    if (entry.oversize !== undefined) {
      this.refuse(boardId, `entry is larger than ${UPLINK_LIMITS.entryBytes} bytes (${entry.oversize} bytes; deleted unread)`);
      return;
    }
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
        // Back after a restart: its boot mode latch says "flash" now, whatever it was.
        if (rebooted) board.needsReset = false;
        Object.assign(board, {
          boot: message.boot,
          platform: message.p,
          micropython: message.mv,
          client: message.cv,
          ip: message.ip ?? null,
          memFree: message.mf ?? null,
          hb: message.hb,
        });
        if (rebooted) this.dispatcher.boardRebooted(board, message.c);
        if (message.nm !== undefined && message.nm !== board.name) this.restoreBoardName(board, message.nm);
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

  /**
   * The manager keeps names unique, so its name wins (PROTOCOL.md §7.5): a board whose
   * config says otherwise (its flash restored from a backup, say) is renamed back, unless
   * a rename is already on its way to it.
   */
  private restoreBoardName(board: BoardState, boardSays: string): void {
    if (this.dispatcher.hasActive(board.id, 'rename')) return;
    this.log('info', `board ${board.name} (${board.id}) calls itself ${JSON.stringify(boardSays)}; renaming it back to ${board.name}`);
    void this.dispatcher
      .send(board, { op: 'rename', name: board.name }, { expireMs: 7 * 24 * 3_600_000 })
      .catch((error: Error) => this.log('warn', `could not rename board ${board.name} back: ${error.message}`));
  }

  private refuse(boardId: string, reason: string): void {
    this.refusedEntries++;
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

/**
 * Enrolment: the credentials a board joins with (its own Redis user and password) and the
 * discovery keys that let it find the service again. Discovery keys live here, apart from
 * BoardState, so that no board listing can ever carry one.
 */
import { randomBytes } from 'node:crypto';
import type { FleetStore } from '../redis/fleet-store.js';
import { assertBoardName, boardUser, isBoardId } from '../redis/keys.js';
import type { Logger } from '../log.js';
import { DEFAULT_HEARTBEAT_S, newStoredBoard, type BoardRegistry, type BoardState } from './board-registry.js';
import type { BoardAccess } from './board-access.js';
import { listNames as listSelectedNames } from './board-selector.js';
import { ManagerError, type ErrorKind } from '../errors.js';

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
  /**
   * Discovery key (64 lowercase hex characters): signs the answers that tell a board where
   * the service went (PROTOCOL.md, "Finding the service again"). Absent in credentials from
   * before discovery. A secret like the password.
   */
  dk?: string;
  /** UDP port of the service's discovery responder, when it is not the default 18268. */
  dp?: number;
}

export interface EnrollOptions {
  rotate?: boolean;
  server?: string;
  virtual?: boolean;
}

/** A discovery key as the service issues it: 32 random bytes as lowercase hex. */
const DISCOVERY_KEY = /^[0-9a-f]{64}$/;

export class BoardNameTakenError extends ManagerError {
  override name = 'BoardNameTakenError';
  readonly kind: ErrorKind = 'conflict';
}

export interface BoardEnrolmentOptions {
  store: FleetStore;
  registry: BoardRegistry;
  access: BoardAccess;
  log: Logger;
  heartbeatS?: number;
  /** Address and port a board uses to reach Redis now (it changes when LAN access does; per board with a Cluster). */
  advertise: (boardId: string) => { host: string; port: number };
  /** The discovery responder's port when it is not the default: written into credentials (`dp`). */
  discoveryPort?: number;
  /** Saves a board's record. */
  persist: (board: BoardState) => Promise<void>;
  /** Called for each board once its new credentials are in force. */
  enrolled: (board: BoardState) => void;
}

export class BoardEnrolment {
  /** Board id → discovery key. */
  private readonly discoveryKeys = new Map<string, string>();

  constructor(private readonly options: BoardEnrolmentOptions) {}

  /** Loads the stored discovery keys of the boards in the registry (call after loading the registry). */
  async load(): Promise<void> {
    for (const [id, key] of Object.entries(await this.options.store.loadDiscoveryKeys())) {
      if (this.options.registry.get(id) && DISCOVERY_KEY.test(key)) this.discoveryKeys.set(id, key);
    }
  }

  /** The discovery key of an enrolled board; undefined when unknown or enrolled before discovery keys. */
  discoveryKey(id: string): string | undefined {
    return this.options.registry.get(id) ? this.discoveryKeys.get(id) : undefined;
  }

  forget(id: string): void {
    this.discoveryKeys.delete(id);
  }

  /**
   * Enrolls several boards at once (one ACL save for all: `mbm sim` enrolls hundreds).
   * `virtual` marks them as virtual boards, and refuses (before changing anything) a name
   * that belongs to a board that is not virtual: a simulator must never re-key real hardware.
   * Enrolling without it (rotate included) makes the board a real one.
   */
  async enrollMany(names: string[], options: EnrollOptions = {}): Promise<BoardCredentials[]> {
    const { store, registry, access, log } = this.options;
    names.forEach((name) => assertBoardName(name));
    if (new Set(names).size !== names.length) throw new BoardNameTakenError('the same name is given twice');
    for (const name of names) {
      if (registry.byNameOrId(name) && !options.rotate) {
        throw new BoardNameTakenError(`a board named ${JSON.stringify(name)} is already enrolled (use rotate to issue new credentials)`);
      }
    }
    if (options.virtual) {
      const real = names.filter((name) => registry.byNameOrId(name)?.virtual === false);
      if (real.length > 0) {
        throw new BoardNameTakenError(
          `${listSelectedNames(real)} ${real.length === 1 ? 'is a board' : 'are boards'} that virtual boards may not take over (not made by mbm sim); ` +
            'nothing was changed: choose other names (mbm sim --prefix)',
        );
      }
    }
    const enrolled: Array<{ board: BoardState; password: string; dk: string; existed: boolean }> = [];
    for (const name of names) {
      let board = registry.byNameOrId(name);
      const existed = board !== undefined;
      if (!board) {
        let id: string;
        do id = `b${randomBytes(8).toString('hex').slice(0, 9)}`;
        while (!isBoardId(id) || registry.get(id));
        if (!(await store.claimName(name, id))) throw new BoardNameTakenError(`the name ${JSON.stringify(name)} is taken`);
        board = registry.add(
          newStoredBoard({ id, name, enrolledAt: Date.now(), hb: this.options.heartbeatS ?? DEFAULT_HEARTBEAT_S, virtual: options.virtual === true }),
        );
      } else {
        board.virtual = options.virtual === true;
      }
      enrolled.push({ board, password: randomBytes(32).toString('base64url'), dk: randomBytes(32).toString('hex'), existed });
    }
    await store.createBoardUsers(enrolled.map(({ board, password, existed }) => ({ id: board.id, password, rekeyed: existed })));
    for (const { board } of enrolled) access.rekeyed(board);
    await store.saveDiscoveryKeys(enrolled.map(({ board, dk }) => ({ id: board.id, dk })));
    for (const { board, dk } of enrolled) this.discoveryKeys.set(board.id, dk);
    await Promise.all(enrolled.map(({ board }) => this.options.persist(board)));
    for (const { board, existed } of enrolled) {
      log('info', `enrolled board ${board.name} (${board.id})${existed ? ' with new credentials' : ''}`);
      this.options.enrolled(board);
    }
    return enrolled.map(({ board, password, dk }) => ({
      v: PROTOCOL_VERSION,
      id: board.id,
      name: board.name,
      user: boardUser(board.id),
      password,
      server: options.server ?? this.options.advertise(board.id).host,
      port: this.options.advertise(board.id).port,
      hb: board.hb,
      dk,
      ...(this.options.discoveryPort === undefined ? {} : { dp: this.options.discoveryPort }),
    }));
  }
}

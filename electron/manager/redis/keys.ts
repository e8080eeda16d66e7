/**
 * The one place where Redis key names of the wire contract are built
 * (firmware/PROTOCOL.md §2). Every key of a board carries the `{ID}` hash tag so that all
 * of them live in one Redis Cluster slot; ids are validated before they reach a key.
 */
import { ManagerError, type ErrorKind } from '../errors.js';

export const BOARD_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
export const BOARD_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
export const COMMAND_ID_PATTERN = /^[A-Za-z0-9_-]{1,40}$/;
const RESERVED_BOARD_IDS = new Set(['mgr', 'up']);

export class InvalidIdError extends ManagerError {
  override name = 'InvalidIdError';
  readonly kind: ErrorKind = 'bad_request';
  constructor(
    readonly idKind: 'board id' | 'board name' | 'command id' | 'job id' | 'manager id',
    readonly value: string,
    readonly rule: string,
  ) {
    super(`invalid ${idKind} ${JSON.stringify(value.slice(0, 64))}: ${rule}`);
  }
}

export function isBoardId(value: string): boolean {
  return BOARD_ID_PATTERN.test(value) && !RESERVED_BOARD_IDS.has(value);
}

export function assertBoardId(value: string): string {
  if (!isBoardId(value)) {
    throw new InvalidIdError('board id', value, '1-32 characters a-z, 0-9 and -, not "mgr" or "up"');
  }
  return value;
}

export function assertBoardName(value: string): string {
  if (!BOARD_NAME_PATTERN.test(value)) {
    throw new InvalidIdError('board name', value, '1-32 characters A-Z, a-z, 0-9, _, . and -, starting with a letter or digit');
  }
  return value;
}

export function assertCommandId(value: string): string {
  if (!COMMAND_ID_PATTERN.test(value)) {
    throw new InvalidIdError('command id', value, '1-40 characters A-Z, a-z, 0-9, _ and -');
  }
  return value;
}

const PREFIX = 'cm';

/**
 * Keys of one board. Asked for on every call the manager makes for a board (several per
 * command and heartbeat), so they are made once per board and kept; the cache is emptied
 * when it holds more boards than any fleet (ids come from requests too).
 */
export function boardKeys(id: string): BoardKeys {
  let keys = boardKeysCache.get(id);
  if (!keys) {
    keys = Object.freeze(makeBoardKeys(id));
    if (boardKeysCache.size >= BOARD_KEYS_CACHED) boardKeysCache.clear();
    boardKeysCache.set(id, keys);
  }
  return keys;
}
const BOARD_KEYS_CACHED = 65_536;
const boardKeysCache = new Map<string, BoardKeys>();

function makeBoardKeys(id: string) {
  const tag = `${PREFIX}:{${assertBoardId(id)}}`;
  return {
    cmd: `${tag}:cmd`,
    state: `${tag}:state`,
    up: `${tag}:up`,
    pending: `${tag}:pending`,
    seen: `${tag}:seen`,
    log: `${tag}:log`,
    /** Telemetry ring (string, manager only): see electron/manager/fleet/telemetry.ts. */
    telemetry: `${tag}:tm`,
    /** The highest manager lease epoch that acted on the board (manager only; boards' ACLs do not cover it): see cloudmanager.lua. */
    fence: `${tag}:fence`,
    /** Prefix of the blob of one upload; part N is `${prefix}:${N}`. */
    blobPrefix: (cid: string) => `${tag}:f:${assertCommandId(cid)}`,
    /** ACL key pattern covering every blob of this board. */
    blobPattern: `${tag}:f:*`,
  };
}
export type BoardKeys = Readonly<ReturnType<typeof makeBoardKeys>>;

/** Keys only the manager reads and writes. */
export const managerKeys = {
  boards: `${PREFIX}:{mgr}:boards`,
  names: `${PREFIX}:{mgr}:names`,
  /** Sorted set: job id → creation time (ms). */
  jobs: `${PREFIX}:{mgr}:jobs`,
  /** Hash: board id → discovery key (`dk`, a secret: boards cannot read manager keys). */
  discoveryKeys: `${PREFIX}:{mgr}:dk`,
  /** The active manager's lease (JSON: id, epoch, host, pid, apiUrl, since), with a TTL: redis/manager-lease.ts. */
  lease: `${PREFIX}:{mgr}:lease`,
  /** Counter of lease acquisitions: each active manager's epoch, the fencing token. */
  epoch: `${PREFIX}:{mgr}:epoch`,
  /** Stream: requests of standby managers for the active one (manager-bridge.ts), read by the consumer group `active`. */
  requests: `${PREFIX}:{mgr}:requests`,
  /** Stream: the active manager's events (JSON arrays), for the standby managers' UIs; written only while one listens. */
  events: `${PREFIX}:{mgr}:events`,
  /** Sorted set: standby manager id → until when (ms) it listens to `events`. */
  followers: `${PREFIX}:{mgr}:followers`,
};

/** The body of one bridge request or answer too long for its stream entry (manager-bridge-store.ts). */
export function managerBodyKey(requestId: string, of: 'request' | 'answer'): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(requestId)) throw new InvalidIdError('manager id', requestId, '1-64 characters A-Z, a-z, 0-9, _ and -');
  return `${PREFIX}:{mgr}:body:${requestId}:${of}`;
}

/** Stream of the active manager's answers to one standby manager's requests. */
export function managerRepliesKey(managerId: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(managerId)) throw new InvalidIdError('manager id', managerId, '1-64 characters A-Z, a-z, 0-9, _ and -');
  return `${PREFIX}:{mgr}:replies:${managerId}`;
}

export const JOB_ID_PATTERN = /^j[a-z0-9]{8,30}$/;

/** Hash of one job: `summary` and one `t:N` field per board. */
export function jobKey(id: string): string {
  if (!JOB_ID_PATTERN.test(id)) throw new InvalidIdError('job id', id, 'j followed by 8-30 characters a-z and 0-9');
  return `${PREFIX}:{mgr}:job:${id}`;
}

/** The Redis ACL user name of a board. */
export function boardUser(id: string): string {
  return `cmb-${assertBoardId(id)}`;
}

/** The keyspace-notification pattern that announces new uplink entries (PROTOCOL.md §6). */
export const UPLINK_NOTIFY_PATTERN = `__keyspace@0__:${PREFIX}:{*}:up`;
const UPLINK_CHANNEL = /^__keyspace@0__:cm:\{([a-z0-9-]{1,32})\}:up$/;

/** The board id of an uplink keyspace channel, or undefined for any other channel. */
export function boardIdFromUplinkChannel(channel: string): string | undefined {
  const match = UPLINK_CHANNEL.exec(channel);
  return match && isBoardId(match[1]!) ? match[1] : undefined;
}

/** The keyspace-notification pattern that announces writes to boards' state hashes (budget checks). */
export const STATE_NOTIFY_PATTERN = `__keyspace@0__:${PREFIX}:{*}:state`;
const STATE_CHANNEL = /^__keyspace@0__:cm:\{([a-z0-9-]{1,32})\}:state$/;

/** The board id of a state keyspace channel, or undefined for any other channel. */
export function boardIdFromStateChannel(channel: string): string | undefined {
  const match = STATE_CHANNEL.exec(channel);
  return match && isBoardId(match[1]!) ? match[1] : undefined;
}

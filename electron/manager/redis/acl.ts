/**
 * Redis ACL rules of the wire contract (firmware/PROTOCOL.md §3) and the ACL file of the
 * embedded server. Passwords are only ever stored as SHA-256 (`#<hex>` rules).
 */
import { createHash, randomBytes } from 'node:crypto';
import { boardKeys, boardUser } from './keys.js';

export const MANAGER_USER = 'cm-manager';
/** The connection guard's own user (connection-guard.ts), apart from the manager's. */
export const GUARD_USER = 'cm-guard';

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * The commands a board may run on its own keys: its protocol (FCALL cm_claim, XREAD of its
 * queue, GETRANGE of its upload blobs, HGET of `stop`/`ack`) plus what `cm_claim` runs for
 * it (Redis checks a function's commands against the caller's ACL). XADD is not among them:
 * a board may append only to its uplink (the selector below), never to its own queue.
 */
const BOARD_COMMANDS = ['ping', 'xread', 'fcall', 'getrange', 'hget', 'hset', 'xrange', 'xtrim', 'time'];

/** The permissions of one board's user, without its password or on/off state. */
export function boardAclPermissions(boardId: string): string[] {
  const keys = boardKeys(boardId);
  return [
    'resetchannels',
    '-@all',
    ...BOARD_COMMANDS.map((command) => `+${command}`),
    `%RW~${keys.cmd}`,
    `%RW~${keys.state}`,
    `%R~${keys.blobPattern}`,
    // A selector: XADD, and only to the uplink (nothing else may touch the uplink).
    `(+xadd %W~${keys.up})`,
  ];
}

/** ACL SETUSER arguments (after the user name) for one board. */
export function boardAclRules(boardId: string, password: string): string[] {
  return ['reset', 'on', `#${sha256Hex(password)}`, ...boardAclPermissions(boardId)];
}

/**
 * ACL SETUSER arguments that give an existing board user today's permissions and keep its
 * password and its on/off state (a user created by an older version could XADD to its queue).
 */
export function boardAclUpgrade(boardId: string): string[] {
  return ['resetkeys', 'clearselectors', ...boardAclPermissions(boardId)];
}

export { boardUser };

/**
 * The `default` user is off: no connection can use it, new connections start
 * unauthenticated. It nevertheless keeps full permissions because Redis 7.0 replays the
 * MULTI/EXEC blocks of its append-only file (what our multi-write functions produce) as
 * the default user and silently drops them on load when that user may not run them —
 * every queued command would vanish on a restart. Its password is a random hash, so the
 * user stays unusable even if someone switched it on.
 */
function defaultUserLine(): string {
  return `user default off resetpass #${sha256Hex(randomBytes(32).toString('hex'))} ~* &* +@all`;
}

function managerUserLine(password: string): string {
  return `user ${MANAGER_USER} on #${sha256Hex(password)} ~* &* +@all`;
}

/**
 * The guard's user may only look at the connections and close them, and size maxclients; it
 * reads no key. It is a user of its own so that whatever drops the manager's connections
 * (CLIENT KILL USER cm-manager) spares the guard: during a flood that holds every slot, only
 * the guard's sweeping lets the manager's connections back in. Its password is made anew at
 * every start and only its hash is written.
 */
function guardUserLine(password: string): string {
  const commands = ['ping', 'info', 'client|kill', 'client|list', 'client|setname', 'config|get', 'config|set'];
  return `user ${GUARD_USER} on #${sha256Hex(password)} resetchannels -@all ${commands.map((command) => `+${command}`).join(' ')}`;
}

/**
 * The ACL file the embedded server starts with: the `default` user off, the manager's
 * user with its current password, the guard's user when a password is given, and every
 * other user (the boards) kept as it was.
 * Written before redis-server starts, so the server is never reachable without a password.
 */
export function embeddedAclFile(existing: string, managerPassword: string, guardPassword?: string): string {
  const ours = ['user default ', `user ${MANAGER_USER} `, `user ${GUARD_USER} `];
  const kept = existing
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !ours.some((prefix) => line.startsWith(prefix)));
  const guard = guardPassword === undefined ? [] : [guardUserLine(guardPassword)];
  return [defaultUserLine(), managerUserLine(managerPassword), ...guard, ...kept].join('\n') + '\n';
}

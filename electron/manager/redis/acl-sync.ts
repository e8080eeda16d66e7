/**
 * Board users on every node, again. Redis does not replicate ACLs, so the service writes
 * each change to every primary and replica (fleet-store.ts); a node that was down or not
 * yet there at that moment missed it, and if it is promoted later the boards it lacks
 * cannot log in — or worse, a board revoked meanwhile still can. This compares every
 * node's board users (ACL LIST: present, on/off and password hash; the whole rules only
 * when those differ, as the usual case must stay cheap at 10,000 boards × 6 nodes every
 * 30 s: ~0.1 s of CPU) and copies a user to the
 * nodes that lack it or differ, on or off as the board's record says. It never deletes a
 * user (a board being enrolled has its user before its record) and leaves alone users
 * whose password hashes differ between nodes (which rotation is the newer is unknown).
 */
import type { Redis } from 'ioredis';
import { boardUser, isBoardId } from './keys.js';
import type { RedisNodes } from './redis-nodes.js';

/** Board users only (`cmb-<id>`): the nodes' own users (an admin's, the manager's) are left alone. */
const BOARD_USER = /^user (cmb-[a-z0-9][a-z0-9-]{0,31}) /;

/** The board users of one node: name → its ACL LIST line. */
export async function boardUsersOf(node: Redis): Promise<Map<string, string>> {
  const lines = (await node.call('ACL', 'LIST')) as string[];
  const users = new Map<string, string>();
  for (const line of lines) {
    const name = BOARD_USER.exec(line)?.[1];
    if (name) users.set(name, line);
  }
  return users;
}

/**
 * The rules of an ACL LIST line as ACL SETUSER arguments: words, with a selector
 * `(… …)` kept as one argument (ACL SETUSER takes it that way).
 */
export function aclRulesOf(line: string): string[] {
  const rest = line.replace(BOARD_USER, '');
  const rules: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of rest) {
    if (char === '(') depth++;
    if (char === ')') depth--;
    if (char === ' ' && depth === 0) {
      if (current) rules.push(current);
      current = '';
    } else current += char;
  }
  if (current) rules.push(current);
  return rules;
}

/** The line with its on/off rule set to `on` (true) or `off`. */
export function withState(line: string, on: boolean): string {
  return line.replace(/ (on|off)(?= |$)/, on ? ' on' : ' off');
}

export interface UserPlan {
  /** The line every node should have, or undefined when the nodes disagree beyond on/off (a missed rotate). */
  wanted: string | undefined;
  /** Nodes (by index) whose line differs from `wanted` (missing included). */
  stale: number[];
  /** Set when the nodes hold different passwords (or other rules) for the user. */
  disputed?: true;
}

/**
 * What one board user should look like on every node: the line the nodes that have it
 * agree on (apart from on/off), switched on or off as the board's record says (a missed
 * revocation must not leave a node letting the board in). Nodes disagreeing on anything
 * else (the password hash: a rotation one of them missed) cannot be settled here.
 */
export function planUser(lines: Array<string | undefined>, on: boolean): UserPlan {
  const present = lines.filter((line): line is string => line !== undefined);
  if (present.length === 0) return { wanted: undefined, stale: [] };
  // The usual case, cheaply: on every node, in the wanted state, with one password hash.
  const identity = (line: string) => / (on|off) .*?(#[0-9a-f]{64})/.exec(line)?.slice(1).join(' ');
  const wantedIdentity = identity(withState(present[0]!, on));
  if (present.length === lines.length && wantedIdentity && present.every((line) => identity(line) === wantedIdentity)) return { wanted: present[0], stale: [] };
  // Normalised once per distinct line (10,000 boards × 6 nodes every 30 s: this is the cost).
  const rulesOf = new Map<string, string>();
  const rules = (line: string) => rulesOf.get(line) ?? rulesOf.set(line, sameRules(line)).get(line)!;
  const normalised = new Set([...new Set(present.map((line) => withState(line, true)))].map(rules));
  if (normalised.size > 1) return { wanted: undefined, stale: [], disputed: true };
  const wanted = withState(present[0]!, on);
  const stale = lines.flatMap((line, index) => (line === wanted || (line !== undefined && rules(line) === rules(wanted)) ? [] : [index]));
  return { wanted, stale };
}

/**
 * A line's rules in an order of their own: each node lists a user's commands in the order
 * of its command table (it differs between processes), so equal users read differently.
 */
export function sameRules(line: string): string {
  const open = line.indexOf(' (');
  const rules = (open === -1 ? line : line.slice(0, open)).split(' ').sort();
  const selectors = (open === -1 ? [] : (line.slice(open + 1).match(/\([^)]*\)/g) ?? [])).map(
    (selector) => `(${selector.slice(1, -1).split(' ').sort().join(' ')})`,
  );
  return [...rules, ...selectors.sort()].join(' ');
}

export interface BoardUserSyncOptions {
  nodes: RedisNodes;
  /** The boards' records (id → JSON): which users should exist, and on or off. */
  records: () => Promise<Record<string, string>>;
  /** Users whose differing passwords were reported already (once per user and process). */
  reported: Set<string>;
  /** A node that could not be written, or what was done / cannot be settled (logged as a warning). */
  report: (address: string, error: Error) => void;
}

/** Boards compared between two turns of the event loop. */
const SLICE_BOARDS = 250;

/** Compares every node's board users and copies them where missing or different; how many it set. */
export async function syncBoardUsers(options: BoardUserSyncOptions): Promise<number> {
  const { nodes: cluster, records: readRecords, reported, report } = options;
  return cluster.withEveryNode(async (nodes) => {
    const listed = await Promise.all(nodes.map(({ node }) => boardUsersOf(node).catch(() => undefined)));
    // Read after the ACLs: a record removed meanwhile means its user is gone, not missed.
    const records = await readRecords();
    let changed = 0;
    let looked = 0;
    for (const [id, json] of Object.entries(records)) {
      // The other work goes on between slices: 10,000 boards × 6 nodes in one go held the
      // event loop for ~0.4 s every 30 s (a command's round trip waited that long).
      if (++looked % SLICE_BOARDS === 0) await new Promise((resolve) => setImmediate(resolve));
      if (!isBoardId(id)) continue;
      const user = boardUser(id);
      let disabled: boolean;
      try {
        disabled = Boolean((JSON.parse(json) as { disabled?: unknown }).disabled);
      } catch {
        continue;
      }
      const plan = planUser(
        listed.map((users) => users?.get(user)),
        !disabled,
      );
      if (!plan.wanted) {
        // Once per user and process: the comparison runs every 30 s.
        if (plan.disputed && !reported.has(user)) {
          reported.add(user);
          report('board users', new Error(`the nodes hold different passwords for ${user}: issue new credentials (mbm board-enroll --rotate)`));
        }
        continue;
      }
      reported.delete(user);
      for (const index of plan.stale) {
        if (!listed[index]) continue;
        const { node, address } = nodes[index]!;
        try {
          await node.call('ACL', 'SETUSER', user, 'reset', ...aclRulesOf(plan.wanted));
          changed++;
        } catch (error) {
          report(address, error as Error);
        }
      }
    }
    if (changed > 0) {
      report('board users', new Error(`${changed} board user(s) copied to the nodes that lacked them or differed`));
      for (const { node } of nodes) {
        await node.call('ACL', 'SAVE').catch(() => node.config('REWRITE').catch(() => undefined));
      }
    }
    return changed;
  });
}

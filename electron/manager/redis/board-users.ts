/**
 * The boards' Redis ACL users on every node. Redis does not replicate ACLs, so each change
 * goes to every primary and replica (a promoted replica must know the boards as the primary
 * did), is saved on each, and with a Cluster or Sentinel the nodes are compared at start and
 * every 30 s to catch a change a node missed (acl-sync.ts).
 */
import type { Redis } from 'ioredis';
import { boardAclRules, boardAclUpgrade, boardUser } from './acl.js';
import { managerKeys } from './keys.js';
import { syncBoardUsers } from './acl-sync.js';
import type { RedisClient } from './redis-connection.js';
import type { RedisNodes } from './redis-nodes.js';

export const ACL_SYNC_INTERVAL_MS = 30_000;

/** CLIENT KILL USER on one node; a user that does not exist (removed meanwhile) has no connections. */
async function killClientsOfUser(node: Redis, id: string): Promise<number> {
  try {
    return Number(await node.call('CLIENT', 'KILL', 'USER', boardUser(id)));
  } catch (error) {
    if (/no such user/i.test((error as Error).message)) return 0;
    throw error;
  }
}

export class BoardUsers {
  private syncTimer: NodeJS.Timeout | undefined;
  /** Board users whose password differs between nodes, already reported. */
  private readonly disputed = new Set<string>();
  /** The running comparison: at most one at a time. */
  private running: Promise<number> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly nodes: RedisNodes,
    /** Told about a replica that missed a change; the primaries' failures are thrown. */
    private readonly replicaFailed: (address: string, error: Error) => void,
  ) {}

  /** With several nodes: compares them now and every ACL_SYNC_INTERVAL_MS. */
  async start(): Promise<void> {
    if (this.nodes.kind === 'single') return;
    const sync = () => this.sync().catch((error: Error) => this.replicaFailed('board users', error));
    await sync();
    this.syncTimer = setInterval(() => void sync(), ACL_SYNC_INTERVAL_MS);
    this.syncTimer.unref();
  }

  stop(): void {
    clearInterval(this.syncTimer);
  }

  /** Copies board users to the nodes that missed a change (down at that moment, or new); resolves with how many it set. */
  sync(): Promise<number> {
    this.running ??= syncBoardUsers({
      nodes: this.nodes,
      records: () => this.redis.hgetall(managerKeys.boards),
      reported: this.disputed,
      report: this.replicaFailed,
    }).finally(() => (this.running = undefined));
    return this.running;
  }

  /**
   * Creates (or re-keys) boards' users, one pass over the nodes for all boards. A re-keyed
   * board's open connections (`rekeyed`) are closed: its old password is no longer good, and
   * a live connection must not outlast it. Not saved: the caller saves once it is done.
   */
  async create(boards: Array<{ id: string; password: string; rekeyed?: boolean }>): Promise<void> {
    await this.nodes.onEveryNode(
      (node) =>
        Promise.all(
          boards.map(async ({ id, password, rekeyed }) => {
            await node.call('ACL', 'SETUSER', boardUser(id), ...boardAclRules(id, password));
            if (rekeyed) await killClientsOfUser(node, id);
          }),
        ),
      this.replicaFailed,
    );
  }

  /** Gives users created by an older version today's (narrower) permissions; password and on/off stay. */
  async upgrade(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    // Per node: a node may lack users another has (it was down when they were made).
    const upgraded = await this.nodes.onEveryNode(async (node) => {
      const existing = new Set((await node.call('ACL', 'USERS')) as string[]);
      const present = ids.filter((id) => existing.has(boardUser(id)));
      await Promise.all(present.map((id) => node.call('ACL', 'SETUSER', boardUser(id), ...boardAclUpgrade(id))));
      return present.length;
    }, this.replicaFailed);
    if (upgraded.some((count) => count > 0)) await this.save();
  }

  /**
   * Turns a board's user off (it can no longer log in) and closes its connections at once:
   * ACL SETUSER off leaves open connections working, so CLIENT KILL USER ends them.
   */
  async disable(id: string): Promise<number> {
    await this.set(id, 'off');
    const killed = await this.killClients(id);
    await this.save();
    return killed;
  }

  async enable(id: string): Promise<void> {
    await this.set(id, 'on');
    await this.save();
  }

  /** Off, disconnected, then deleted (DELUSER disconnects on Redis 7, but do not rely on it). */
  async delete(id: string): Promise<void> {
    await this.set(id, 'off');
    await this.killClients(id);
    await this.nodes.onEveryNode((node) => node.call('ACL', 'DELUSER', boardUser(id)), this.replicaFailed);
    await this.save();
  }

  /** Closes every connection logged in as the board's user, on every node (a board may sit on a replica's port after a failover); how many. */
  async killClients(id: string): Promise<number> {
    const killed = await this.nodes.onEveryNode((node) => killClientsOfUser(node, id), this.replicaFailed);
    return killed.reduce((sum, count) => sum + count, 0);
  }

  /** Makes ACL changes survive a restart: ACL SAVE with an ACL file, else CONFIG REWRITE. */
  async save(): Promise<void> {
    await this.nodes.onEveryNode(async (node) => {
      try {
        await node.call('ACL', 'SAVE');
      } catch {
        await node.config('REWRITE').catch(() => undefined);
      }
    });
  }

  private async set(id: string, ...rules: string[]): Promise<void> {
    await this.nodes.onEveryNode((node) => node.call('ACL', 'SETUSER', boardUser(id), ...rules), this.replicaFailed);
  }
}

/**
 * The data nodes behind the manager's client, for what Redis keeps per node rather than
 * per key: the function library (on every primary; replicas get it by replication, so a
 * promoted replica has it), keyspace notifications (each node publishes only its own keys'
 * events, and the setting is per node), ACL users (per node and NOT replicated: a board's
 * user must exist on every primary and replica, or a failover locks the board out), and
 * the node that serves a board's keys (the address a board is given).
 *
 * One server: that server. Cluster: the nodes of ioredis's slot map, followed as it changes.
 * Sentinel: the current primary (the client) and its replicas as the sentinels list them.
 */
import { EventEmitter } from 'node:events';
import { Command, Redis, type Cluster, type RedisOptions } from 'ioredis';
import { defaultRetryDelay, isCluster, nodeConnectionOptions, type RedisClient } from './redis-connection.js';

export interface NodeAddress {
  host: string;
  port: number;
}

export interface RedisNodesEvents {
  /** The set of primaries changed (a failover, a node added or gone). */
  primaries: [];
}

/** How long a command on a replica may take before it counts as failed (a dead replica must not hold up an enrolment). */
const REPLICA_TIMEOUT_MS = 3_000;

export class RedisNodes extends EventEmitter<RedisNodesEvents> {
  /** Sentinel: where the client is connected now (the primary), from its last 'ready'. */
  private sentinelPrimary: NodeAddress | undefined;
  private readonly onTopology = () => this.emit('primaries');
  private readonly onReady = () => this.rememberSentinelPrimary();

  constructor(readonly client: RedisClient) {
    super();
    if (isCluster(client)) {
      client.on('refresh', this.onTopology);
      client.on('+node', this.onTopology);
      client.on('-node', this.onTopology);
    } else if (this.sentinels) {
      client.on('ready', this.onReady);
      this.rememberSentinelPrimary();
    }
  }

  get kind(): 'single' | 'cluster' | 'sentinel' {
    return isCluster(this.client) ? 'cluster' : this.sentinels ? 'sentinel' : 'single';
  }

  private get sentinels(): RedisOptions['sentinels'] {
    return isCluster(this.client) ? undefined : this.client.options.sentinels?.length ? this.client.options.sentinels : undefined;
  }

  /** Connections to every primary: one server or the Sentinel-backed client is one; a Cluster's from its slot map. */
  primaries(): Redis[] {
    return isCluster(this.client) ? this.client.nodes('master') : [this.client];
  }

  /**
   * Runs `action` on every data node: it must succeed on every primary (the error of the
   * first that failed is thrown); a replica that fails is reported to `replicaFailed` only,
   * so a replica that is down does not stop an enrolment (it lacks that change when it
   * comes back: ACL users are not replicated).
   */
  async onEveryNode<T>(action: (node: Redis) => Promise<T>, replicaFailed: (address: string, error: Error) => void = () => {}): Promise<T[]> {
    const primaries = this.primaries();
    const replicas = await this.replicaConnections();
    try {
      const [primaryResults, replicaResults] = await Promise.all([
        Promise.allSettled(primaries.map(action)),
        Promise.allSettled(replicas.map(({ node }) => withTimeout(action(node), REPLICA_TIMEOUT_MS))),
      ]);
      replicaResults.forEach((result, index) => {
        if (result.status === 'rejected') replicaFailed(replicas[index]!.address, result.reason as Error);
      });
      const failed = primaryResults.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
      return primaryResults.map((result) => (result as PromiseFulfilledResult<T>).value);
    } finally {
      for (const { node, owned } of replicas) if (owned) node.disconnect();
    }
  }

  /**
   * Runs `action` with a connection to every data node at once (primaries first), for work
   * that compares the nodes before it changes any (acl-sync.ts); replica connections are
   * closed afterwards.
   */
  async withEveryNode<T>(action: (nodes: Array<{ node: Redis; address: string; primary: boolean }>) => Promise<T>): Promise<T> {
    const replicas = await this.replicaConnections();
    try {
      return await action([
        ...this.primaries().map((node) => ({ node, address: nodeKey(node), primary: true })),
        ...replicas.map(({ node, address }) => ({ node, address, primary: false })),
      ]);
    } finally {
      for (const { node, owned } of replicas) if (owned) node.disconnect();
    }
  }

  /**
   * Short-lived connections to the replicas the Cluster or the sentinels list now (commands
   * to them are rare: enrolment, revocation, start).
   */
  private async replicaConnections(): Promise<Array<{ node: Redis; address: string; owned: boolean }>> {
    if (!isCluster(this.client) && !this.sentinels) return [];
    // Not ioredis's slot map for a Cluster: CLUSTER SLOTS leaves out a replica that has not
    // acknowledged any replication offset yet (a fresh cluster's), and ioredis would not know it.
    const addresses = await (isCluster(this.client) ? this.clusterReplicas() : this.sentinelReplicas()).catch(() => [] as NodeAddress[]);
    return addresses.map(({ host, port }) => ({
      node: new Redis({
        ...nodeConnectionOptions(this.client),
        host,
        port,
        connectionName: 'cm-manager-replica',
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
        connectTimeout: REPLICA_TIMEOUT_MS,
      }),
      address: `${host}:${port}`,
      owned: true,
    }));
  }

  /** The replicas CLUSTER NODES lists as connected and not failing, asked of the first primary that answers. */
  private async clusterReplicas(): Promise<NodeAddress[]> {
    for (const primary of this.primaries()) {
      let text: string;
      try {
        text = String(await withTimeout(primary.call('CLUSTER', 'NODES') as Promise<unknown>, REPLICA_TIMEOUT_MS));
      } catch {
        continue;
      }
      return parseClusterReplicas(text);
    }
    return [];
  }

  /** The replicas the sentinels know and consider up (SENTINEL REPLICAS, asked of the first sentinel that answers). */
  private async sentinelReplicas(): Promise<NodeAddress[]> {
    const options = (this.client as Redis).options;
    for (const sentinel of this.sentinels ?? []) {
      const connection = new Redis({
        host: sentinel.host ?? '127.0.0.1',
        port: sentinel.port ?? 26379,
        username: options.sentinelUsername,
        password: options.sentinelPassword,
        tls: options.enableTLSForSentinelMode ? (options.sentinelTLS ?? {}) : undefined,
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
        connectTimeout: REPLICA_TIMEOUT_MS,
        lazyConnect: true,
      });
      connection.on('error', () => {});
      try {
        await connection.connect();
        const replies = (await connection.call('SENTINEL', 'REPLICAS', options.name ?? 'mymaster')) as string[][];
        return replies
          .map(
            (fields) => Object.fromEntries(fields.flatMap((value, index) => (index % 2 === 0 ? [[value, fields[index + 1]]] : []))) as Record<string, string>,
          )
          .filter((replica) => !/s_down|o_down|disconnected/.test(replica.flags ?? ''))
          .map((replica) => ({ host: replica.ip!, port: Number(replica.port) }));
      } catch {
        // The next sentinel may answer.
      } finally {
        connection.disconnect();
      }
    }
    return [];
  }

  private rememberSentinelPrimary(): void {
    const stream = (this.client as Redis).stream;
    if (stream?.remoteAddress && stream.remotePort) this.sentinelPrimary = { host: stream.remoteAddress.replace(/^::ffff:/, ''), port: stream.remotePort };
  }

  /**
   * Where a board should connect to reach `key` (one of its hash-tagged keys): Cluster, the
   * primary serving the key's slot now; Sentinel, the current primary; one server: undefined
   * (the caller's advertised address applies).
   */
  addressOf(key: string): NodeAddress | undefined {
    if (isCluster(this.client)) {
      const owner = this.client.slots[slotOf(key)]?.[0];
      if (!owner) return undefined;
      const colon = owner.lastIndexOf(':');
      return { host: owner.slice(0, colon), port: Number(owner.slice(colon + 1)) };
    }
    return this.sentinels ? this.sentinelPrimary : undefined;
  }

  /**
   * A new connection to one primary for a subscriber (notifications are node-local). It
   * reconnects by itself; a Cluster's caller drops it once the node is no longer a primary.
   */
  subscriberFor(primary: Redis, connectionName: string): Redis {
    return new Redis({
      ...nodeConnectionOptions(this.client),
      host: primary.options.host,
      port: primary.options.port,
      connectionName,
      maxRetriesPerRequest: null,
      retryStrategy: defaultRetryDelay,
    });
  }

  close(): void {
    if (isCluster(this.client)) {
      this.client.off('refresh', this.onTopology);
      this.client.off('+node', this.onTopology);
      this.client.off('-node', this.onTopology);
    } else this.client.off('ready', this.onReady);
  }
}

/**
 * Replicas in a CLUSTER NODES reply: `<id> <ip:port@bus[,hostname]> <flags> <primary id> …`,
 * flags with `slave` and without `fail`, `fail?`, `handshake` or `noaddr`.
 */
export function parseClusterReplicas(text: string): NodeAddress[] {
  const replicas: NodeAddress[] = [];
  for (const line of text.split('\n')) {
    const [, address, flags] = line.trim().split(' ');
    if (!address || !flags) continue;
    const flagList = flags.split(',');
    if (!flagList.includes('slave') || flagList.some((flag) => ['fail', 'fail?', 'handshake', 'noaddr'].includes(flag))) continue;
    const hostPort = address.split('@')[0]!;
    const colon = hostPort.lastIndexOf(':');
    const port = Number(hostPort.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(port) || port <= 0) continue;
    replicas.push({ host: hostPort.slice(0, colon).replace(/^\[|\]$/g, ''), port });
  }
  return replicas;
}

/** The Cluster slot of a key (hash tag included), as ioredis computes it (its cluster-key-slot is not our dependency). */
export function slotOf(key: string): number {
  return new Command('exists', [key]).getSlot() ?? 0;
}

/** The primary serving `key`'s slot now, as ioredis last learnt the topology. */
export function primaryOf(cluster: Cluster, key: string): Redis | undefined {
  const owner = cluster.slots[slotOf(key)]?.[0];
  return owner === undefined ? undefined : cluster.nodes('master').find((node) => nodeKey(node) === owner);
}

/**
 * Items grouped by the primary serving their key's slot, as the client's slot map says
 * (one server: all on it); under `undefined` those whose primary is not known. For calls
 * that carry the keys of many boards to one node (uplink-calls.ts, fcall-batcher.ts).
 */
export function groupByPrimary<T>(client: RedisClient, items: readonly T[], keyOf: (item: T) => string): Map<Redis | undefined, T[]> {
  if (!isCluster(client)) return new Map([[client, [...items]]]);
  const primaries = new Map(client.nodes('master').map((node) => [nodeKey(node), node]));
  const groups = new Map<Redis | undefined, T[]>();
  for (const item of items) {
    const owner = client.slots[slotOf(keyOf(item))]?.[0];
    const node = owner === undefined ? undefined : primaries.get(owner);
    const group = groups.get(node);
    if (group) group.push(item);
    else groups.set(node, [item]);
  }
  return groups;
}

/** A node's refusal that is about where a key's slot is now (moved, or the node gone), not about the call: send it again on its own. */
export const SLOT_ELSEWHERE = /non local key|^(MOVED|ASK|CLUSTERDOWN|TRYAGAIN)\b|Connection is closed/i;

/** The node's key as ioredis writes it (`host:port`). */
export function nodeKey(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

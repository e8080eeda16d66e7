/**
 * The connections that listen to keyspace notifications. Redis publishes a key's events
 * only on the node that holds the key, so a Cluster needs one subscriber per primary, and
 * the set follows the topology (a replica promoted after a failover gets one; a node that
 * stopped being a primary loses its). One server or Sentinel: one subscriber, a duplicate
 * of the client (with Sentinel it follows the primary by itself).
 *
 * Whatever was published while a subscriber was not connected is lost, so every new or
 * reconnected subscriber calls `resync` (the fleet then reads every uplink once).
 */
import type { Redis } from 'ioredis';
import { isCluster } from './redis-connection.js';
import { nodeKey, type RedisNodes } from './redis-nodes.js';

export interface KeyspaceSubscribersOptions {
  nodes: RedisNodes;
  patterns: string[];
  connectionName: string;
  message: (channel: string, message: string) => void;
  resync: () => void;
  /** Called for each primary before its subscriber is opened (turns its notifications on). */
  preparePrimary: (primary: Redis) => Promise<void>;
  failed: (error: Error) => void;
}

export class KeyspaceSubscribers {
  /** Node key (`host:port`) → its subscriber; one entry ('*') for one server or Sentinel. */
  private readonly subscribers = new Map<string, Redis>();
  private started = false;
  private closed = false;
  /** Serialises topology follow-ups: two refreshes must not open two subscribers for one node. */
  private following: Promise<void> = Promise.resolve();
  private readonly onPrimaries = () => void this.follow();

  constructor(private readonly options: KeyspaceSubscribersOptions) {}

  async start(): Promise<void> {
    this.started = true;
    const client = this.options.nodes.client;
    if (!isCluster(client)) {
      if (!this.subscribers.has('*')) {
        // A duplicate keeps the client's options: the embedded server's reserved slot, the sentinels.
        const subscriber = client.duplicate({ connectionName: this.options.connectionName });
        this.attach('*', subscriber);
        await subscriber.psubscribe(...this.options.patterns);
      }
      return;
    }
    this.options.nodes.on('primaries', this.onPrimaries);
    await this.follow();
  }

  /** The subscribers open now (one per primary with a Cluster). */
  get count(): number {
    return this.subscribers.size;
  }

  private follow(): Promise<void> {
    const step = async () => {
      if (this.closed || !this.started) return;
      const primaries = new Map(this.options.nodes.primaries().map((node) => [nodeKey(node), node]));
      for (const [key, subscriber] of this.subscribers) {
        if (primaries.has(key)) continue;
        this.subscribers.delete(key);
        subscriber.disconnect();
      }
      await Promise.all(
        [...primaries]
          .filter(([key]) => !this.subscribers.has(key))
          .map(async ([key, primary]) => {
            await this.options.preparePrimary(primary);
            if (this.closed || this.subscribers.has(key)) return;
            const subscriber = this.options.nodes.subscriberFor(primary, this.options.connectionName);
            this.attach(key, subscriber);
            await subscriber.psubscribe(...this.options.patterns);
          }),
      );
    };
    this.following = this.following.then(step).catch((error: Error) => this.options.failed(error));
    return this.following;
  }

  private attach(key: string, subscriber: Redis): void {
    this.subscribers.set(key, subscriber);
    subscriber.on('pmessage', (_pattern: string, channel: string, message: string) => this.options.message(channel, message));
    // ioredis resubscribes by itself after a reconnect; 'ready' fires after each connect.
    subscriber.on('ready', () => this.options.resync());
    // Errors are retried by ioredis; the listener keeps them from being thrown.
    subscriber.on('error', () => {});
  }

  close(): void {
    this.closed = true;
    this.options.nodes.off('primaries', this.onPrimaries);
    for (const subscriber of this.subscribers.values()) subscriber.disconnect();
    this.subscribers.clear();
  }
}

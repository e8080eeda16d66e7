/**
 * The Redis side of the manager bridge (manager-bridge.ts): how standby managers reach the
 * active one through the Redis they share, without a network path between their computers
 * (each one's API listens on its own loopback). All keys are `{mgr}` keys: one slot of a
 * Cluster, so a blocking read may name several.
 *
 * - Requests: one stream, read by the consumer group `active`, so each request is delivered
 *   to one active manager once (a manager superseded mid-way cannot take it again).
 * - Answers: one stream per standby manager; events: one stream for all. Both written only
 *   with the writer's lease epoch still the newest (cm_mgr_publish, fenced), and expiring
 *   when nobody writes (a standby that went away leaves nothing behind for long).
 */
import { managerAttachmentKey, managerKeys, managerRepliesKey } from './keys.js';
import { callLoadingFunctions } from './function-call.js';
import type { RedisClient } from './redis-connection.js';

const GROUP = 'active';
/** About how many requests, answers and event frames the streams keep. */
const KEEP_REQUESTS = 1_000;
const KEEP_REPLIES = 1_000;
/** Frames hold up to 1,000 events (~0.5 MB): ~200 bound the stream near 100 MB at worst; a standby reads them at once. */
const KEEP_EVENT_FRAMES = 200;
/** How long an answers or events stream outlives its last entry. */
const STREAM_TTL_MS = 60_000;

/** A standby manager's request, as the active one reads it. */
export interface BridgeRequest {
  id: string;
  /** The standby manager's id (its answers stream). */
  from: string;
  route: string;
  /** The route's input, JSON. */
  input: string;
  /** When the standby stops waiting (epoch ms): later, the request is dropped unanswered. */
  deadline: number;
  /** Files staged on the standby that the request names wait under their own key (attachFiles). */
  files?: boolean;
}

/** What the active manager answered (`ok`: `body` is the result's JSON, else the error's: api-errors.ts). */
export interface BridgeReply {
  id: string;
  status: number;
  body: string;
}

type StreamEntries = Array<[id: string, fields: string[]]>;
type StreamRead = Array<[key: string, entries: StreamEntries]> | null;

function fieldsOf(fields: string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i]!, fields[i + 1]!);
  return map;
}

export class ManagerBridgeStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly loadFunctions: () => Promise<void>,
  ) {}

  /** A connection of its own, for reads that block. */
  blockingConnection(): RedisClient {
    return this.redis.duplicate();
  }

  async addRequest(request: BridgeRequest): Promise<void> {
    const { id, from, route, input, deadline, files } = request;
    await this.redis.xadd(
      managerKeys.requests,
      'MAXLEN',
      '~',
      String(KEEP_REQUESTS),
      '*',
      'id',
      id,
      'from',
      from,
      'route',
      route,
      'input',
      input,
      'deadline',
      String(deadline),
      ...(files ? ['files', '1'] : []),
    );
  }

  /**
   * The files a request names (JSON: staged id → base64), under a key of their own until the
   * active manager takes them or `ttlMs` passes: taken one request at a time, so a batch of
   * requests never makes a reply larger than Redis lets a client have (redis-server-config.ts).
   */
  async attachFiles(requestId: string, files: string, ttlMs: number): Promise<void> {
    await this.redis.set(managerAttachmentKey(requestId), files, 'PX', ttlMs);
  }

  async takeFiles(requestId: string): Promise<string | null> {
    return (await this.redis.call('GETDEL', managerAttachmentKey(requestId))) as string | null;
  }

  /** The consumer group the active manager reads requests with; made once, new requests only. */
  async ensureRequestGroup(): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', managerKeys.requests, GROUP, '$', 'MKSTREAM');
    } catch (error) {
      if (!/BUSYGROUP/.test((error as Error).message)) throw error;
    }
  }

  /**
   * The next requests nobody was given yet, waiting up to `blockMs` on `connection` (a
   * blocking one). Acknowledged at once: a request is handed out once, never again, even
   * if the manager dies while answering it (its standby times out and says so).
   */
  async takeRequests(connection: RedisClient, consumer: string, blockMs: number): Promise<BridgeRequest[]> {
    const read = (await connection.xreadgroup(
      'GROUP',
      GROUP,
      consumer,
      'COUNT',
      '64',
      'BLOCK',
      String(blockMs),
      'STREAMS',
      managerKeys.requests,
      '>',
    )) as StreamRead;
    const entries = read?.[0]?.[1] ?? [];
    if (entries.length === 0) return [];
    await this.redis.xack(managerKeys.requests, GROUP, ...entries.map(([id]) => id));
    return entries.map(([, fields]) => {
      const map = fieldsOf(fields);
      return {
        id: map.get('id') ?? '',
        from: map.get('from') ?? '',
        route: map.get('route') ?? '',
        input: map.get('input') ?? '',
        deadline: Number(map.get('deadline') ?? 0),
        files: map.get('files') === '1',
      };
    });
  }

  /** Answers a standby manager; false when `epoch` is no longer the newest (STALE: nothing written). */
  async reply(epoch: number, to: string, reply: BridgeReply): Promise<boolean> {
    return this.publish(epoch, managerRepliesKey(to), KEEP_REPLIES, ['id', reply.id, 'status', String(reply.status), 'body', reply.body]);
  }

  /** One frame of the active manager's events (a JSON array); false when `epoch` is no longer the newest. */
  async publishEvents(epoch: number, seq: number, frame: string): Promise<boolean> {
    return this.publish(epoch, managerKeys.events, KEEP_EVENT_FRAMES, ['epoch', String(epoch), 'seq', String(seq), 'events', frame]);
  }

  private async publish(epoch: number, key: string, keep: number, fields: string[]): Promise<boolean> {
    const send = () => this.redis.call('FCALL', 'cm_mgr_publish', '2', managerKeys.epoch, key, String(epoch), String(keep), String(STREAM_TTL_MS), ...fields);
    try {
      await callLoadingFunctions(send, this.loadFunctions);
      return true;
    } catch (error) {
      if (/^STALE /.test((error as Error).message)) return false;
      throw error;
    }
  }

  /** Says a standby manager listens to the events until `until` (epoch ms). */
  async follow(managerId: string, until: number): Promise<void> {
    await this.redis.zadd(managerKeys.followers, String(until), managerId);
  }

  async unfollow(managerId: string): Promise<void> {
    await this.redis.zrem(managerKeys.followers, managerId);
  }

  /** Until when (epoch ms) some standby manager listens to the events; 0 when none does. */
  async followedUntil(): Promise<number> {
    await this.redis.zremrangebyscore(managerKeys.followers, '-inf', String(Date.now()));
    const last = await this.redis.zrange(managerKeys.followers, -1, -1, 'WITHSCORES');
    return last.length === 2 ? Number(last[1]) : 0;
  }

  /** Where the events stream and a standby's answers stream end now (what a reader starts after). */
  async tailPositions(managerId: string): Promise<{ replies: string; events: string }> {
    const last = async (key: string) => ((await this.redis.xrevrange(key, '+', '-', 'COUNT', 1)) as StreamEntries)[0]?.[0] ?? '0-0';
    const [replies, events] = await Promise.all([last(managerRepliesKey(managerId)), last(managerKeys.events)]);
    return { replies, events };
  }

  /**
   * The answers and event frames after `after`, waiting up to `blockMs` on `connection`
   * (a blocking one). Answers come first: one read's answer is handled before its events.
   */
  async tail(
    connection: RedisClient,
    managerId: string,
    after: { replies: string; events: string },
    blockMs: number,
  ): Promise<{ replies: Array<BridgeReply & { entry: string }>; frames: Array<{ entry: string; epoch: number; seq: number; frame: string }> }> {
    const repliesKey = managerRepliesKey(managerId);
    const read = (await connection.xread(
      'COUNT',
      '256',
      'BLOCK',
      String(blockMs),
      'STREAMS',
      repliesKey,
      managerKeys.events,
      after.replies,
      after.events,
    )) as StreamRead;
    const replies: Array<BridgeReply & { entry: string }> = [];
    const frames: Array<{ entry: string; epoch: number; seq: number; frame: string }> = [];
    for (const [key, entries] of read ?? []) {
      for (const [entry, fields] of entries) {
        const map = fieldsOf(fields);
        if (key === repliesKey) replies.push({ entry, id: map.get('id') ?? '', status: Number(map.get('status') ?? 500), body: map.get('body') ?? '' });
        else frames.push({ entry, epoch: Number(map.get('epoch') ?? 0), seq: Number(map.get('seq') ?? 0), frame: map.get('events') ?? '' });
      }
    }
    // Read answers hold results (a board's credentials, say): not kept once taken.
    if (replies.length > 0) await this.redis.xdel(repliesKey, ...replies.map((reply) => reply.entry));
    return { replies, frames };
  }
}

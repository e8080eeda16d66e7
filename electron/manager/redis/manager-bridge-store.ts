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
 * - Sizes: the embedded Redis refuses any command over 1 MB (proto-max-bulk-len,
 *   client-query-buffer-limit: redis-server-config.ts) and closes the connection that sent
 *   it; a stream read returns many entries at once, and Redis closes a client whose reply
 *   outgrows its output buffer (32 MiB), after which the same read would fail forever. So
 *   entries stay small: a request's or an answer's body over INLINE_BYTES goes under keys
 *   of its own (`cm:{mgr}:body:<id>:<request|answer>:<n>`, 512 KB each: Redis refuses a
 *   longer string, APPEND included; taken and deleted by the one reader), and event frames stay near FRAME_BYTES (a single event over MAX_EVENT_BYTES is
 *   not sent: the writer sends a resync in its place).
 */
import { managerBodyKey, managerKeys, managerRepliesKey } from './keys.js';
import { callLoadingFunctions, isStaleReply } from './function-call.js';
import type { RedisClient } from './redis-connection.js';

const GROUP = 'active';
/** About how many requests, answers and event frames the streams keep. */
const KEEP_REQUESTS = 1_000;
const KEEP_REPLIES = 1_000;
/** About 200 frames of FRAME_BYTES: the stream stays near 100 MB at worst; a standby reads them as they come. */
const KEEP_EVENT_FRAMES = 200;
/** A body longer than this (UTF-8 bytes) goes under its own key. */
export const INLINE_BYTES = 64 * 1024;
/** What an event frame should not exceed (the writer packs events up to it)... */
export const FRAME_BYTES = 256 * 1024;
/** ...unless one event alone is larger, up to this (well under the 1 MB a command may have). */
export const MAX_EVENT_BYTES = 512 * 1024;
/** The longest body passed on (under 32 MiB: the parts' MGET reply must fit a client's output buffer). */
export const MAX_BODY_BYTES = 24 * 1024 * 1024;
/** A long body is written in parts of this size (each command and string under 1 MB). */
const BODY_CHUNK_BYTES = 512 * 1024;
/** Entries per stream a read takes: requests and answers inline ≤ 64 KB, frames ≤ 512 KB. */
const READ_COUNT = 16;

const bytesOf = (text: string) => Buffer.byteLength(text, 'utf8');
/** How long an answers or events stream outlives its last entry. */
const STREAM_TTL_MS = 60_000;

/** A standby manager's request, as the active one reads it. */
export interface BridgeRequest {
  id: string;
  /** The standby manager's id (its answers stream). */
  from: string;
  route: string;
  /** When the standby stops waiting (epoch ms): later, the request is dropped unanswered. */
  deadline: number;
  /** Its body (manager-bridge.ts: the input and any files, JSON); null: in `parts` keys of its own (`requestBody`). */
  body: string | null;
  parts: number;
}

/** What the active manager answered: `body` is the result's JSON (status 200), else the error's (api-errors.ts). */
export interface BridgeReply {
  id: string;
  status: number;
  /** null: in `parts` keys of its own (`answerBody`). */
  body: string | null;
  parts: number;
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

  /** Sends a request; a long body waits under its own key until taken or `ttlMs` passed. */
  async addRequest(request: Omit<BridgeRequest, 'body' | 'parts'>, body: string, ttlMs: number): Promise<void> {
    const { id, from, route, deadline } = request;
    const inline = bytesOf(body) <= INLINE_BYTES;
    const parts = inline ? [] : ['parts', String(await this.writeBody(managerBodyKey(id, 'request'), body, ttlMs))];
    const fields = ['id', id, 'from', from, 'route', route, 'deadline', String(deadline), ...(inline ? ['body', body] : parts)];
    await this.redis.xadd(managerKeys.requests, 'MAXLEN', '~', String(KEEP_REQUESTS), '*', ...fields);
  }

  /** Writes a long body in parts (`<key>:0`, `<key>:1`, …), each expiring after `ttlMs`; how many. */
  private async writeBody(key: string, body: string, ttlMs: number): Promise<number> {
    const bytes = Buffer.from(body, 'utf8');
    const parts = Math.ceil(bytes.length / BODY_CHUNK_BYTES);
    for (let part = 0; part < parts; part++) {
      await this.redis.set(`${key}:${part}`, bytes.subarray(part * BODY_CHUNK_BYTES, (part + 1) * BODY_CHUNK_BYTES), 'PX', ttlMs);
    }
    return parts;
  }

  /** Takes a body written in parts (deleting them); null when one is gone (expired). */
  private async takeBody(key: string, parts: number): Promise<string | null> {
    if (!Number.isInteger(parts) || parts < 1 || parts > Math.ceil(MAX_BODY_BYTES / BODY_CHUNK_BYTES) + 1) return null;
    const keys = Array.from({ length: parts }, (_, part) => `${key}:${part}`);
    const values = await this.redis.mgetBuffer(...keys);
    await this.redis.del(...keys);
    return values.every((value) => value !== null) ? Buffer.concat(values as Buffer[]).toString('utf8') : null;
  }

  /** A request's body (null: gone, its parts expired). */
  async requestBody(request: BridgeRequest): Promise<string | null> {
    return request.body ?? this.takeBody(managerBodyKey(request.id, 'request'), request.parts);
  }

  /** An answer's body (null: gone, its parts expired). */
  async answerBody(reply: BridgeReply): Promise<string | null> {
    return reply.body ?? this.takeBody(managerBodyKey(reply.id, 'answer'), reply.parts);
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
      String(READ_COUNT),
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
        deadline: Number(map.get('deadline') ?? 0),
        body: map.get('body') ?? null,
        parts: Number(map.get('parts') ?? 0),
      };
    });
  }

  /** Answers a standby manager; false when `epoch` is no longer the newest (STALE: nothing written). */
  async reply(epoch: number, to: string, reply: { id: string; status: number; body: string }): Promise<boolean> {
    const inline = bytesOf(reply.body) <= INLINE_BYTES;
    // Written before the (fenced) answer that names them; a superseded manager's expire unread.
    const parts = inline ? [] : ['parts', String(await this.writeBody(managerBodyKey(reply.id, 'answer'), reply.body, STREAM_TTL_MS))];
    return this.publish(epoch, managerRepliesKey(to), KEEP_REPLIES, [
      'id',
      reply.id,
      'status',
      String(reply.status),
      ...(inline ? ['body', reply.body] : parts),
    ]);
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
      if (isStaleReply(error)) return false;
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
      String(READ_COUNT),
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
        if (key === repliesKey) {
          replies.push({
            entry,
            id: map.get('id') ?? '',
            status: Number(map.get('status') ?? 500),
            body: map.get('body') ?? null,
            parts: Number(map.get('parts') ?? 0),
          });
        } else frames.push({ entry, epoch: Number(map.get('epoch') ?? 0), seq: Number(map.get('seq') ?? 0), frame: map.get('events') ?? '' });
      }
    }
    // Read answers hold results (a board's credentials, say): not kept once taken.
    if (replies.length > 0) await this.redis.xdel(repliesKey, ...replies.map((reply) => reply.entry));
    return { replies, frames };
  }
}

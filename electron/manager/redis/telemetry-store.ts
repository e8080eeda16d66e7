/**
 * The only code that touches Redis for board telemetry: one string per board,
 * `cm:{ID}:tm` (firmware/PROTOCOL.md §2), written slot by slot with SETRANGE and always
 * 1,920 bytes long. The layout of the value (a ring of 240 slots of 8 bytes) belongs to
 * electron/manager/fleet/telemetry.ts; this class only moves bytes.
 */
import { boardKeys } from './keys.js';
import { isCluster, type RedisClient } from './redis-connection.js';

/** The value of `cm:{ID}:tm` is always exactly this long (240 slots of 8 bytes). */
export const TELEMETRY_VALUE_BYTES = 1_920;
/** Without writes for this long every slot of a 24 h ring is stale, so the key may go. */
export const TELEMETRY_TTL_MS = 25 * 3_600_000;

/**
 * Writes slots into one board's ring. SETRANGE alone would leave a new key shorter than
 * the ring (it pads only up to the bytes it writes), so a missing key — or one someone
 * gave another length or type — first becomes a zeroed ring of the full length.
 *   KEYS[1]  cm:{ID}:tm
 *   ARGV[1]  value length (1920)
 *   ARGV[2]  expiry in ms after this write
 *   ARGV[3…] pairs: byte offset, bytes
 * Returns the number of slots written.
 */
const WRITE_SLOTS_LUA = `
local key = KEYS[1]
local size = tonumber(ARGV[1])
if redis.call('TYPE', key).ok ~= 'string' or redis.call('STRLEN', key) ~= size then
  redis.call('SET', key, string.rep('\\0', size))
end
local written = 0
for i = 3, #ARGV, 2 do
  redis.call('SETRANGE', key, tonumber(ARGV[i]), ARGV[i + 1])
  written = written + 1
end
redis.call('PEXPIRE', key, ARGV[2])
return written
`;
const WRITE_SLOTS_COMMAND = 'cmTelemetryWriteSlots';

type WriteSlotsPipeline = { [WRITE_SLOTS_COMMAND]: (key: string, ...args: Array<string | number | Buffer>) => unknown };

export class TelemetryStoreError extends Error {
  override name = 'TelemetryStoreError';
}

export interface TelemetryStoreOptions {
  /** How long a key lives after its last write (default 25 h). */
  ttlMs?: number;
}

export class TelemetryStore {
  private readonly ttlMs: number;

  constructor(
    private readonly redis: RedisClient,
    options: TelemetryStoreOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? TELEMETRY_TTL_MS;
    // ioredis sends EVALSHA, and the script itself once per connection when Redis lacks it.
    redis.defineCommand(WRITE_SLOTS_COMMAND, { numberOfKeys: 1, lua: WRITE_SLOTS_LUA });
  }

  /**
   * Writes every slot in one pipeline (with a Cluster, one call per board, batched per node
   * by auto-pipelining: a Cluster pipeline must stay on one node): one script call per
   * board, which does a SETRANGE per slot and renews the key's expiry. Throws when any
   * board's write failed; the others are kept.
   */
  async writeSlots(slots: Array<{ boardId: string; offset: number; bytes: Buffer }>): Promise<void> {
    if (slots.length === 0) return;
    // Check everything first: a bad id or slot fails the call before anything is sent.
    const byKey = new Map<string, Array<number | Buffer>>();
    for (const { boardId, offset, bytes } of slots) {
      if (!Number.isInteger(offset) || offset < 0 || offset + bytes.length > TELEMETRY_VALUE_BYTES) {
        throw new TelemetryStoreError(`telemetry slot of board ${boardId} at ${offset} (+${bytes.length}) lies outside the ${TELEMETRY_VALUE_BYTES}-byte ring`);
      }
      const key = boardKeys(boardId).telemetry;
      const args = byKey.get(key) ?? [];
      args.push(offset, bytes);
      byKey.set(key, args);
    }
    let results: Array<[Error | null, unknown]>;
    if (isCluster(this.redis)) {
      const write = this.redis as unknown as {
        [WRITE_SLOTS_COMMAND]: (...args: Parameters<WriteSlotsPipeline[typeof WRITE_SLOTS_COMMAND]>) => Promise<unknown>;
      };
      results = await Promise.all(
        [...byKey].map(([key, args]) =>
          write[WRITE_SLOTS_COMMAND](key, TELEMETRY_VALUE_BYTES, this.ttlMs, ...args).then(
            (reply): [null, unknown] => [null, reply],
            (error: Error): [Error, null] => [error, null],
          ),
        ),
      );
    } else {
      const pipeline = this.redis.pipeline();
      const write = pipeline as unknown as WriteSlotsPipeline;
      for (const [key, args] of byKey) write[WRITE_SLOTS_COMMAND](key, TELEMETRY_VALUE_BYTES, this.ttlMs, ...args);
      results = (await pipeline.exec()) ?? [];
    }
    const failures = results.filter(([error]) => error);
    if (failures.length > 0) {
      throw new TelemetryStoreError(`telemetry writes of ${failures.length} of ${results.length} boards failed: ${failures[0]![0]!.message}`);
    }
  }

  /** The raw value, or null when the board has none. */
  async read(boardId: string): Promise<Buffer | null> {
    return this.redis.getBuffer(boardKeys(boardId).telemetry);
  }

  async delete(boardId: string): Promise<void> {
    await this.redis.del(boardKeys(boardId).telemetry);
  }
}

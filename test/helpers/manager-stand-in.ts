/**
 * Tests that play the manager's part over ioredis directly (the board-side cluster and
 * failover tests): what the manager would write, without a manager.
 */
import type { Redis } from 'ioredis';
import { boardKeys } from '../../electron/manager/redis/keys.js';

/** Queues `exec` of `code` for board `id` through cm_enqueue on `redis` (the node serving its slot), as the manager does. */
export async function enqueueExec(redis: Redis, id: string, cid: string, code: string, timeoutMs = 20_000): Promise<void> {
  const keys = boardKeys(id);
  const meta = JSON.stringify({ op: 'exec' });
  const fields = ['o', 'exec', 'c', code, 't', String(timeoutMs)];
  const reply = (await redis.call('FCALL', 'cm_enqueue', '3', keys.cmd, keys.seen, keys.pending, cid, String(Date.now()), '100', meta, ...fields)) as string[];
  if (reply[0] !== 'ok') throw new Error(`cm_enqueue of ${cid} answered ${JSON.stringify(reply)}`);
}

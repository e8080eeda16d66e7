/**
 * A FleetStore on a plain redis-server of the test's own, with the function library loaded:
 * for tests of the store and the uplink reader against real Redis, without a manager.
 */
import { Redis } from 'ioredis';
import { FleetStore } from '../../electron/manager/redis/fleet-store.js';
import { startPlainRedis, type PlainRedis } from './plain-redis.js';

export interface StoreLab {
  server: PlainRedis;
  redis: Redis;
  store: FleetStore;
  close(): Promise<void>;
}

export async function startStoreLab(): Promise<StoreLab> {
  const server = await startPlainRedis();
  const redis = new Redis(server.url());
  const store = new FleetStore(redis);
  await store.loadFunctions();
  return {
    server,
    redis,
    store,
    async close() {
      await store.close();
      redis.disconnect();
      server.kill();
    },
  };
}

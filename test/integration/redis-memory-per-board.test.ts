/**
 * What an idle board costs in the embedded Redis once it has run commands: its queue and
 * its history are short streams, and redis-server 7.0 allocates every new stream node at
 * its full size (stream-node-max-bytes), so the node size decides what a short stream takes.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANAGER_USER } from '../../electron/manager/redis/acl.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import { createRedisClient } from '../../electron/manager/redis/redis-connection.js';
import { startLab, type Lab } from '../helpers/lab.js';

let lab: Lab;
let redis: Redis;

beforeAll(async () => {
  lab = await startLab({ boards: 3, prefix: 'mem' });
  const password = (await readFile(path.join(lab.dataDir, 'secrets', 'redis-manager.password'), 'utf8')).trim();
  redis = createRedisClient({ host: '127.0.0.1', port: lab.redisPort, username: MANAGER_USER, password }, 'cm-test-memory') as Redis;
});

afterAll(async () => {
  redis?.disconnect();
  await lab?.close();
});

describe('Redis memory per board', () => {
  it('keeps the queue and history of a board that ran two commands under 2 KB each', async () => {
    for (let round = 0; round < 2; round++) {
      const { commands } = await lab.api.call('commands.send', { boards: 'mem-*', request: { op: 'exec', code: 'print(6*7)' } });
      const done = await lab.api.call('commands.wait', { cids: commands.map((command) => command.cid), timeoutMs: 30_000 });
      expect(done.map((view) => view.status)).toEqual(['ok', 'ok', 'ok']);
    }
    for (const name of ['mem-1', 'mem-2', 'mem-3']) {
      const keys = boardKeys((await lab.api.call('boards.get', { board: name })).id);
      const queueBytes = Number(await redis.memory('USAGE', keys.cmd, 'SAMPLES', '0'));
      const historyBytes = Number(await redis.memory('USAGE', keys.log, 'SAMPLES', '0'));
      // With Redis's default 4 KB stream nodes each was about 4.7 KB.
      expect(queueBytes, `${name}'s queue`).toBeGreaterThan(0);
      expect(queueBytes, `${name}'s queue`).toBeLessThan(2048);
      expect(historyBytes, `${name}'s history`).toBeGreaterThan(0);
      expect(historyBytes, `${name}'s history`).toBeLessThan(2048);
    }
  });
});

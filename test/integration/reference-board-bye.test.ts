/**
 * A reference board switched off on purpose says bye (firmware/PROTOCOL.md §6), also when
 * it is waiting in XREAD BLOCK for its next heartbeat: Redis runs nothing of a blocked
 * client's, so a bye queued on that connection used to wait for the heartbeat and be lost
 * when stop() gave up. A real redis-server with the function library and the board's ACL
 * user; the test plays the manager's part and reads the uplink as the manager would.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { boardAclRules } from '../../electron/manager/redis/acl.js';
import { boardKeys, boardUser } from '../../electron/manager/redis/keys.js';
import { ReferenceBoard } from '../../electron/manager/virtual/reference-board.js';
import { waitFor } from '../helpers/lab.js';
import { startPlainRedis } from '../helpers/plain-redis.js';
import { FUNCTION_LIBRARY as LIBRARY } from '../../electron/manager/redis/function-library.js';

const cleanups: Array<() => Promise<unknown> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('a reference board shut down while it waits for work', () => {
  it('says bye at once, not after its next heartbeat', { timeout: 60_000 }, async () => {
    const server = await startPlainRedis();
    cleanups.push(() => server.kill());
    const redis = new Redis({ host: '127.0.0.1', port: server.port, maxRetriesPerRequest: 1 });
    cleanups.push(() => redis.disconnect());
    await redis.call('FUNCTION', 'LOAD', 'REPLACE', LIBRARY);
    const id = `bye-${randomBytes(3).toString('hex')}`;
    const password = randomBytes(32).toString('base64url');
    await redis.call('ACL', 'SETUSER', boardUser(id), ...boardAclRules(id, password));
    // A heartbeat far beyond the test's patience: the board's XREAD BLOCK outlasts it.
    const credentials = { v: 1, id, name: id, user: boardUser(id), password, server: '127.0.0.1', port: server.port, hb: 300 };
    const board = new ReferenceBoard({ credentials });
    board.start();
    cleanups.push(() => board.powerOff());

    const kinds = async () => ((await redis.xrange(boardKeys(id).up, '-', '+')) as Array<[string, string[]]>).map(([, fields]) => fields[1]);
    await waitFor(async () => (await kinds()).includes('hello'), 20_000, 'the hello');
    const blocked = async () =>
      ((await redis.call('CLIENT', 'LIST')) as string).split('\n').some((line) => line.includes(`user=${boardUser(id)}`) && /flags=b\b/.test(line));
    await waitFor(blocked, 20_000, 'the board waiting in XREAD BLOCK');

    await board.stop();
    expect(await kinds()).toEqual(['hello', 'bye']);
  });
});

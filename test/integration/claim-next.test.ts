/**
 * `cm_next` (PROTOCOL.md §4.2): a board's result and heartbeat ride in its next claim. Run
 * as a board's own ACL user on a real redis-server, as a board calls it: the entries land in
 * the board's uplink in order before the claim, malformed entries change nothing, and the
 * function reaches no other board's uplink.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { RespError } from '../../electron/manager/redis/resp-codec.js';
import { boardAclRules } from '../../electron/manager/redis/acl.js';
import { boardKeys, boardUser } from '../../electron/manager/redis/keys.js';
import { startStoreLab, type StoreLab } from '../helpers/store-lab.js';

const ID = 'nextb1';
const OTHER = 'nextb2';
const PASSWORD = 'board-password-1';

async function uplink(lab: StoreLab, id: string): Promise<string[][]> {
  const entries = (await lab.redis.xrange(boardKeys(id).up, '-', '+')) as Array<[string, string[]]>;
  return entries.map(([, fields]) => fields);
}

describe('cm_next: report and claim in one call', () => {
  let lab: StoreLab;
  let board: RespConnection;
  const keys = boardKeys(ID);
  const next = (...args: Array<string | number>) => board.call('FCALL', 'cm_next', '2', keys.cmd, keys.state, ...args.map(String));

  beforeAll(async () => {
    lab = await startStoreLab();
    for (const id of [ID, OTHER]) await lab.redis.call('ACL', 'SETUSER', boardUser(id), ...boardAclRules(id, PASSWORD));
    board = await RespConnection.connect({ host: '127.0.0.1', port: lab.server.port });
    await board.call('AUTH', boardUser(ID), PASSWORD);
  });
  afterAll(async () => {
    board?.destroy();
    await lab?.close();
  });

  it('appends the result and the heartbeat before claiming, and hands out the next command', async () => {
    const cursor = String(((await board.call('FCALL', 'cm_claim', '2', keys.cmd, keys.state, '')) as Buffer[])[0]);
    const queued = String(await lab.redis.xadd(keys.cmd, '*', 'i', 'c2', 'o', 'exec', 'c', 'print(2)'));
    const claimed = (await next(cursor, 8, 'k', 'res', 'i', 'c1', 'ok', '1', 'n', '0', 4, 'k', 'hb', 'mf', '5000')) as Buffer[];
    expect(claimed.map(String)).toEqual([queued, 'i', 'c2', 'o', 'exec', 'c', 'print(2)']);
    expect(await uplink(lab, ID)).toEqual([
      ['k', 'res', 'i', 'c1', 'ok', '1', 'n', '0'],
      ['k', 'hb', 'mf', '5000'],
    ]);
    // Nothing more to run: the cursor comes back, as from cm_claim.
    expect(((await next(queued, 4, 'k', 'hb', 'mf', '4000')) as Buffer[]).map(String)).toEqual([queued]);
    expect((await uplink(lab, ID)).length).toBe(3);
  });

  it('refuses malformed entries and appends none of them', async () => {
    const before = (await uplink(lab, ID)).length;
    const malformed: Array<Array<string | number>> = [
      ['0-0', 3, 'k', 'hb', 'mf'], // odd count
      ['0-0', 4, 'k', 'hb'], // count beyond the arguments
      ['0-0', 2, 'k', 'hb', 2, 'x', 'y'], // the second entry does not start with k
      ['0-0', 'two', 'k', 'hb'],
    ];
    for (const args of malformed) {
      const error = await next(...args).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(RespError);
      expect(String((error as RespError).message)).toMatch(/cm_next: malformed uplink entry/);
    }
    expect((await uplink(lab, ID)).length).toBe(before);
  });

  it("reaches no other board's keys: another board's queue is refused, and the uplink is always the caller's", async () => {
    const other = boardKeys(OTHER);
    const refused = await board.call('FCALL', 'cm_next', '2', other.cmd, other.state, '0-0', 2, 'k', 'hb').then(
      () => 'ALLOWED',
      (e: unknown) => (e instanceof RespError ? e.code : String(e)),
    );
    expect(refused).toBe('NOPERM');
    expect(await uplink(lab, OTHER)).toEqual([]);
  });
});

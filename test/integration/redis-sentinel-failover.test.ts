/**
 * The manager behind Sentinel (one primary, one replica, three sentinels on loopback):
 * `--redis-url redis+sentinel://…/mymaster`. The board's user is made on the replica too
 * (ACL users are not replicated), so when the primary is killed (-9) and the replica takes
 * over, the manager follows by itself, the discovery responder tells the board the new
 * primary, and the board logs in there and runs the next command.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceBoard } from '../../electron/manager/virtual/reference-board.js';
import { MicroPythonInterpreter } from '../../electron/manager/virtual/micropython-interpreter.js';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';
import { startSentinelLab, type RedisLab } from '../helpers/redis-cluster-lab.js';
import { DiscoveryClient, freeUdpPort } from '../helpers/discovery-client.js';
import { redisCommand } from '../../scripts/redis-cluster-lib.mjs';

describe('manager behind Sentinel', () => {
  let lab: RedisLab & { name: string };
  let service: Awaited<ReturnType<typeof startManager>>;
  let interpreter: MicroPythonInterpreter;
  let discoveryPort: number;
  const boards: ReferenceBoard[] = [];

  beforeAll(async () => {
    lab = await startSentinelLab();
    discoveryPort = await freeUdpPort();
    service = await startManager({ redisUrl: lab.url, redisPort: undefined, discoveryPort });
    interpreter = new MicroPythonInterpreter();
    await interpreter.start();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(boards.map((board) => board.stop()));
    await interpreter?.close();
    await service?.close();
    await lab?.stop();
  });

  async function startBoard(credentials: BoardCredentials): Promise<ReferenceBoard> {
    const board = new ReferenceBoard({ credentials, interpreter, reconnectMinMs: 100 });
    boards.push(board);
    const connected = new Promise<void>((resolve) => board.once('connected', () => resolve()));
    board.start();
    await connected;
    return board;
  }

  const exec = async (code: string) => {
    const { commands } = await service.api.call('commands.send', { boards: 'sent-1', request: { op: 'exec', code } });
    const [done] = await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 20_000 });
    return done!;
  };

  it('runs commands before and after the primary is killed and the replica takes over', async () => {
    const [credentials] = await service.api.call('boards.enrollMany', { names: ['sent-1'], virtual: true });
    const primary = lab.nodes.find((node) => node.role === 'primary')!.port;
    expect(credentials!.port).toBe(primary);
    // The board's user is on the replica too, or the board could not log in there after the failover.
    const replica = lab.nodes.find((node) => node.role === 'replica')!.port;
    expect(((await redisCommand(replica, ['ACL', 'USERS'])) as unknown[]).map(String)).toContain(credentials!.user);
    const first = await startBoard(credentials!);
    await waitFor(async () => (await service.api.call('boards.get', { board: 'sent-1' })).online, 10_000, 'board online');
    expect((await exec('print("before")')).output).toEqual([{ stream: 'stdout', text: 'before\n' }]);

    const killedAt = Date.now();
    const failover = await lab.killPrimary();
    const promotedAt = Date.now();
    expect(failover.promoted).toBe(replica);

    // What the board does when its server is gone: ask on the discovery port, check the signature.
    const client = await DiscoveryClient.open();
    let answer: string[];
    try {
      answer = await waitFor(
        async () => {
          const nonce = await client.request(credentials!.id, discoveryPort);
          const fields = (await client.answerTo(nonce, 1_000).catch(() => '')).split(' ');
          return fields[5] === String(replica) ? fields : undefined;
        },
        20_000,
        'discovery names the new primary',
      );
    } finally {
      await client.close();
    }
    const mac = createHmac('sha256', Buffer.from(credentials!.dk!, 'ascii')).update(answer.slice(0, 6).join(' ')).digest('hex');
    expect(answer[6]).toBe(mac);
    await first.stop();
    await startBoard({ ...credentials!, server: answer[4]!, port: Number(answer[5]) });
    const done = await exec('print("after")');
    const recoveredMs = Date.now() - killedAt;
    expect([done.status, done.output]).toEqual(['ok', [{ stream: 'stdout', text: 'after\n' }]]);
    console.log(`sentinel failover: promoted after ${promotedAt - killedAt} ms, a command ran on the new primary ${recoveredMs} ms after the kill`);
  }, 90_000);
});

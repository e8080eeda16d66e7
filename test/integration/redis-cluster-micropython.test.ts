/**
 * MicroPython boards (the board lab: our firmware in the WebAssembly port, 36 KB heap)
 * through the manager on a Redis Cluster (3 primaries, 1 replica each, on loopback): the
 * fleet loop a user drives through the API — exec with output, upload then download with
 * the same sha256, a command kept for a board that is off — on boards of all three
 * primaries. redis-cluster-fleet.test.ts does the same with the reference boards.
 *
 * Board ids are drawn by the manager, so which primary serves a board is not ours to pick:
 * boards are enrolled one at a time until every primary has one, and the surplus ones are
 * removed again. The spread is then certain, not likely.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiCommandRequest } from '../../electron/manager/api/contract.js';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { boardKeys, boardUser } from '../../electron/manager/redis/keys.js';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { LAB_WIFI, provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import { redisCommand } from '../../scripts/redis-cluster-lib.mjs';
import { startManager, waitFor } from '../helpers/lab.js';
import { startClusterLab, type RedisLab } from '../helpers/redis-cluster-lab.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const text = (reply: unknown) => (Buffer.isBuffer(reply) ? reply.toString() : String(reply));
/** Commands on a 36 KB board in a loaded lab take seconds, not milliseconds: wait generously. */
const COMMAND_MS = 30_000;
/** Enrolments tried before giving up on covering every primary (a miss after 40 draws is ~(2/3)^40 × 3). */
const MAX_DRAWS = 40;

interface LabBoard {
  credentials: BoardCredentials;
  board: MicroPythonBoard;
}

describe('MicroPython boards through the manager on a Redis Cluster', () => {
  let lab: RedisLab;
  let service: Awaited<ReturnType<typeof startManager>>;
  let root: string;
  const boards: LabBoard[] = [];

  const primaries = () => lab.nodes.filter((node) => node.role === 'primary').map((node) => node.port);

  /** The primary serving `key`'s slot, as the cluster itself says (not the manager's view of it). */
  async function primaryOf(key: string): Promise<number> {
    const anyNode = primaries()[0]!;
    const slot = Number(await redisCommand(anyNode, ['CLUSTER', 'KEYSLOT', key]));
    const ranges = (await redisCommand(anyNode, ['CLUSTER', 'SLOTS'])) as Array<[number, number, [unknown, number], ...unknown[]]>;
    const [, , [, port]] = ranges.find(([first, last]) => first <= slot && slot <= last)!;
    return Number(port);
  }

  /** Enrolls virtual boards one at a time until each primary serves one; the others are removed. */
  async function enrolOnePerPrimary(): Promise<BoardCredentials[]> {
    const kept = new Map<number, BoardCredentials>();
    for (let draw = 1; kept.size < primaries().length; draw++) {
      if (draw > MAX_DRAWS) throw new Error(`${MAX_DRAWS} enrolments did not cover all ${primaries().length} primaries`);
      const [credentials] = await service.api.call('boards.enrollMany', { names: [`mpc-${draw}`], virtual: true });
      if (kept.has(credentials!.port)) await service.api.call('boards.remove', { board: credentials!.id });
      else kept.set(credentials!.port, credentials!);
    }
    return [...kept.values()];
  }

  beforeAll(async () => {
    lab = await startClusterLab({ masters: 3, replicas: 1 });
    service = await startManager({ redisUrl: lab.url, redisPort: undefined });
    root = await mkdtemp(path.join(os.tmpdir(), 'cm-cluster-mpy-'));
    for (const credentials of await enrolOnePerPrimary()) {
      const folder = path.join(root, credentials.name);
      // As provisioning a real board would: the address the manager gave it (its slot's primary).
      await provisionFolder(folder, credentials, { host: credentials.server, port: credentials.port });
      boards.push({ credentials, board: new MicroPythonBoard({ folder, wifi: LAB_WIFI, label: credentials.name, timing: 'fast' }) });
    }
    await Promise.all(boards.map(({ board }) => board.start()));
    await waitFor(async () => (await service.api.call('status', {})).boards.online === boards.length, 60_000, 'the MicroPython boards online');
  }, 120_000);
  afterAll(async () => {
    await Promise.all(boards.map(({ board }) => board.powerOff()));
    await service?.close();
    await lab?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  const run = async (board: string, request: ApiCommandRequest) => {
    const { commands } = await service.api.call('commands.send', { boards: board, request });
    const [done] = await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: COMMAND_MS });
    return done!;
  };
  const printed = (done: { output: Array<{ stream: string; text: string }> }) => done.output.map((chunk) => `${chunk.stream}:${chunk.text}`).join('');

  it('gives each board the primary of its slot, the boards cover every primary, and each is logged in there', async () => {
    expect(boards.map(({ credentials }) => credentials.port).sort()).toEqual(primaries().sort());
    for (const { credentials } of boards) {
      expect(credentials.port, `${credentials.name}'s node`).toBe(await primaryOf(boardKeys(credentials.id).cmd));
      // Online says a hello arrived; the connection is looked for on the node itself (a loaded lab may be mid-reconnect).
      const user = `user=${boardUser(credentials.id)} `;
      await waitFor(
        async () => text(await redisCommand(credentials.port, ['CLIENT', 'LIST'])).includes(user),
        20_000,
        `${credentials.name} connected to its primary`,
      );
    }
    // Only the boards kept: the surplus enrolments are gone.
    expect((await service.api.call('boards.list', {})).map((board) => board.name).sort()).toEqual(boards.map(({ credentials }) => credentials.name).sort());
  });

  it('runs code with output on the board of every primary, one by one and all at once', async () => {
    for (const { credentials } of boards) {
      const done = await run(credentials.name, { op: 'exec', code: 'print(6 * 7)' });
      expect([credentials.name, done.status, printed(done)]).toEqual([credentials.name, 'ok', 'stdout:42\n']);
    }
    const { commands } = await service.api.call('commands.send', { boards: 'mpc-*', request: { op: 'exec', code: "print('all', 3)" } });
    const results = await service.api.call('commands.wait', { cids: commands.map((command) => command.cid), timeoutMs: COMMAND_MS });
    expect(results.map((result) => [result.status, printed(result)])).toEqual(boards.map(() => ['ok', 'stdout:all 3\n']));
  });

  it('uploads a file past one chunk to the board of every primary and downloads it with the same sha256', async () => {
    for (const { credentials } of boards) {
      // 5,000 bytes: the MicroPython client moves files in 1,024-byte chunks, so five each way.
      const data = randomBytes(5_000);
      const put = await run(credentials.name, { op: 'put', path: '/cluster.bin', dataBase64: data.toString('base64') });
      expect([credentials.name, put.status, put.result]).toEqual([credentials.name, 'ok', { size: data.length, sha256: sha256(data) }]);
      const got = await run(credentials.name, { op: 'get', path: '/cluster.bin' });
      expect([credentials.name, got.status]).toEqual([credentials.name, 'ok']);
      const file = await service.api.call('commands.file', { cid: got.cid });
      expect(sha256(Buffer.from(file.dataBase64, 'base64')), `${credentials.name}'s download`).toBe(sha256(data));
    }
  });

  it('keeps a command for a board that is off and runs it exactly once when the board is back', async () => {
    const { credentials, board } = boards[1]!;
    await board.powerOff();
    await waitFor(async () => (await service.api.call('boards.get', { board: credentials.name })).online === false, 20_000, 'the board offline');
    // Each run appends a line to a file in flash: the file says how many times it ran.
    const code = "with open('runs.txt', 'a') as f:\n    f.write('ran\\n')\nprint('later')";
    const { commands } = await service.api.call('commands.send', { boards: credentials.name, request: { op: 'exec', code } });
    const cid = commands[0]!.cid;
    expect((await service.api.call('commands.get', { cid })).status).toBe('queued');

    await board.start();
    const [done] = await service.api.call('commands.wait', { cids: [cid], timeoutMs: COMMAND_MS });
    expect([done!.status, printed(done!)]).toEqual(['ok', 'stdout:later\n']);
    const runs = await run(credentials.name, { op: 'exec', code: "print(open('runs.txt').read(), end='')" });
    expect([runs.status, printed(runs)]).toEqual(['ok', 'stdout:ran\n']);
  });
});

/**
 * Kill -9 of a Cluster primary during a burst of 500 commands to boards on all three
 * primaries. The manager follows the new slot map by itself; boards of the killed node ask
 * discovery where their slot went (what the MicroPython client does when its node is gone)
 * and log in at the promoted replica. Every command is then accounted for: ran once, ran
 * twice, or lost — what the service reported for it, and what the boards actually ran.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceBoard } from '../../electron/manager/virtual/reference-board.js';
import { MicroPythonInterpreter } from '../../electron/manager/virtual/micropython-interpreter.js';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';
import { startClusterLab, type RedisLab } from '../helpers/redis-cluster-lab.js';
import { DiscoveryClient, freeUdpPort } from '../helpers/discovery-client.js';

const BOARDS = 12;
const COMMANDS = 500;

describe('kill -9 of a Cluster primary during a burst of commands', () => {
  let lab: RedisLab;
  let service: Awaited<ReturnType<typeof startManager>>;
  let interpreter: MicroPythonInterpreter;
  let discoveryPort: number;
  const boards = new Map<string, ReferenceBoard>();
  /** Every board instance that ever ran, by board id (a board restarted at its new node is a second instance). */
  const executed = new Map<string, string[][]>();

  beforeAll(async () => {
    lab = await startClusterLab({ masters: 3, replicas: 1 });
    discoveryPort = await freeUdpPort();
    service = await startManager({ redisUrl: lab.url, redisPort: undefined, discoveryPort });
    interpreter = new MicroPythonInterpreter();
    await interpreter.start();
  }, 60_000);
  afterAll(async () => {
    await Promise.all([...boards.values()].map((board) => board.stop()));
    await interpreter?.close();
    await service?.close();
    await lab?.stop();
  });

  async function startBoard(credentials: BoardCredentials): Promise<void> {
    const board = new ReferenceBoard({ credentials, interpreter, reconnectMinMs: 100 });
    boards.set(credentials.id, board);
    executed.set(credentials.id, [...(executed.get(credentials.id) ?? []), board.executed]);
    const connected = new Promise<void>((resolve) => board.once('connected', () => resolve()));
    board.start();
    await connected;
  }

  /** Asks discovery where board `credentials` should go now, as the board would. */
  async function rediscover(client: DiscoveryClient, credentials: BoardCredentials, avoid: number): Promise<{ host: string; port: number }> {
    return waitFor(
      async () => {
        const nonce = await client.request(credentials.id, discoveryPort);
        const fields = (await client.answerTo(nonce, 1_000).catch(() => '')).split(' ');
        const port = Number(fields[5]);
        return port && port !== avoid ? { host: fields[4]!, port } : undefined;
      },
      20_000,
      `discovery for ${credentials.name}`,
    );
  }

  it('accounts for every command: each ran exactly once', async () => {
    const credentials = await service.api.call('boards.enrollMany', {
      names: Array.from({ length: BOARDS }, (_, index) => `burst-${index + 1}`),
      virtual: true,
    });
    await Promise.all(credentials.map((item) => startBoard(item)));
    await waitFor(async () => (await service.api.call('status', {})).boards.online === BOARDS, 15_000, 'boards online');
    // The victim: the primary serving the most boards.
    const perPort = new Map<number, BoardCredentials[]>();
    for (const item of credentials) perPort.set(item.port, [...(perPort.get(item.port) ?? []), item]);
    const [victim, stranded] = [...perPort].sort((a, b) => b[1].length - a[1].length)[0]!;

    const sent: Array<{ board: string; cid?: string; error?: string }> = [];
    const send = async (index: number) => {
      const board = credentials[index % BOARDS]!;
      try {
        const { commands } = await service.api.call('commands.send', { boards: board.name, request: { op: 'exec', code: `n = ${index}` } });
        sent.push({ board: board.id, cid: commands[0]!.cid });
      } catch (error) {
        sent.push({ board: board.id, error: (error as Error).message });
      }
    };
    const firstHalf = Array.from({ length: COMMANDS / 2 }, (_, index) => send(index));
    // Killed in the middle: some commands done, some running, some queued, the rest still to send.
    await waitFor(() => sent.length >= COMMANDS / 5, 20_000, 'the first commands queued');
    const queuedBeforeKill = sent.length;
    let queuedBeforePromotion = 0;
    const killed = lab.killPrimary(victim).then((failover) => ((queuedBeforePromotion = sent.length), failover));
    const secondHalf = Array.from({ length: COMMANDS / 2 }, (_, index) => send(COMMANDS / 2 + index));
    await Promise.all([...firstHalf, ...secondHalf]);
    await killed;

    // A board keeps its boot (cursor, running command) across a reconnect: it only changes the
    // address it retries (the MicroPython client saves the discovered one in its config).
    const client = await DiscoveryClient.open();
    try {
      for (const item of stranded) {
        const next = await rediscover(client, item, victim);
        Object.assign(boards.get(item.id)!.config, { server: next.host, port: next.port });
      }
    } finally {
      await client.close();
    }

    const cids = sent.flatMap((item) => (item.cid ? [item.cid] : []));
    const results = await service.api.call('commands.wait', { cids, timeoutMs: 30_000 });
    const status = new Map(results.map((result) => [result.cid, result.status]));
    const ranCount = (board: string, cid: string) => (executed.get(board) ?? []).reduce((sum, log) => sum + log.filter((ran) => ran === cid).length, 0);
    const tally = { ranOnce: 0, ranTwice: 0, lost: 0, refused: 0 };
    const lost: string[] = [];
    for (const item of sent) {
      if (!item.cid) {
        tally.refused++;
        continue;
      }
      const runs = ranCount(item.board, item.cid);
      if (runs === 1 && status.get(item.cid) === 'ok') tally.ranOnce++;
      else if (runs > 1) tally.ranTwice++;
      else {
        tally.lost++;
        lost.push(`${item.cid}: ran ${runs}×, service says ${status.get(item.cid)}`);
      }
    }
    console.log(
      `cluster primary ${victim} killed during ${COMMANDS} commands (${stranded.length} of ${BOARDS} boards on it; ` +
        `${queuedBeforeKill} queued before the kill, ${queuedBeforePromotion} before the replica took over):`,
      tally,
      lost.slice(0, 5),
    );
    expect(tally).toEqual({ ranOnce: COMMANDS, ranTwice: 0, lost: 0, refused: 0 });
  }, 120_000);
});

/**
 * One board cannot exhaust Redis or stall the manager (issue 11, point 3): a board using its
 * own credentials as an attacker would — megabyte values in its state hash, entries in its
 * own command queue, replies it never reads, megabyte uplink entries — is refused by Redis,
 * or suspended (its connection closed, an alarm naming it), while the other boards keep
 * answering every command.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { RespError, encodeCommand } from '../../electron/manager/redis/resp-codec.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';
import { loginRefusal } from '../helpers/board-login.js';

const MiB = 1024 * 1024;
/** Values just under Redis's 1 MiB bulk limit (proto-max-bulk-len). */
const MEGABYTE = Buffer.alloc(1_000_000, 0x41);

/**
 * A board connection written to directly, as an attacker would: commands go out as fast as
 * the socket takes them (waiting for 'drain', so this process never holds them), and its
 * replies are read only when `reading` is on.
 */
class RawBoard {
  closed = false;
  private readonly socket: net.Socket;
  private readonly gone: Promise<void>;

  private constructor(socket: net.Socket, reading: boolean) {
    this.socket = socket;
    this.gone = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
    if (!reading) socket.pause();
  }

  static async connect(lab: Lab, credentials: BoardCredentials, reading = true): Promise<RawBoard> {
    const socket = net.connect(lab.redisPort, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const board = new RawBoard(socket, true);
    const answer = new Promise<string>((resolve) => socket.once('data', (data: Buffer) => resolve(data.toString())));
    socket.write(encodeCommand(['AUTH', credentials.user, credentials.password]));
    expect(await answer).toBe('+OK\r\n');
    if (!reading) socket.pause();
    return board;
  }

  /** Sends `count` commands (until the server closes the connection); resolves with how many went out. */
  async send(count: number, command: (index: number) => Array<string | Buffer>): Promise<number> {
    for (let index = 0; index < count; index++) {
      if (this.closed) return index;
      let flushed = true;
      // RESP written piece by piece: a large value goes out as it is, never copied.
      const args = command(index).map((arg) => (Buffer.isBuffer(arg) ? arg : Buffer.from(arg)));
      this.socket.write(`*${args.length}\r\n`);
      for (const arg of args) {
        this.socket.write(`$${arg.length}\r\n`);
        this.socket.write(arg);
        flushed = this.socket.write('\r\n');
      }
      if (!flushed && !this.closed) {
        await new Promise<void>((resolve) => {
          const done = () => {
            this.socket.off('drain', done).off('close', done);
            resolve();
          };
          this.socket.on('drain', done).on('close', done);
        });
      }
    }
    return count;
  }

  /** Resolves when the server has closed the connection. */
  async waitClosed(): Promise<void> {
    // A paused socket only notices the server's close when it reads or writes: read now.
    this.socket.resume();
    this.socket.on('data', () => undefined);
    await this.gone;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

describe('one board cannot exhaust Redis or stall the manager', () => {
  let lab: Lab;
  /** Commands sent to the well-behaved boards while the attacks ran, and how each ended. */
  const calmResults: string[] = [];
  let calmLoop: Promise<void> | undefined;
  let attacking = true;

  beforeAll(async () => {
    lab = await startLab({ boards: 2, prefix: 'calm' });
    // The other boards are asked to work all the time, one command after another.
    calmLoop = (async () => {
      while (attacking) {
        const { commands } = await lab.api.call('commands.send', { boards: 'calm-[1-2]', request: { op: 'exec', code: 'print(6*7)' }, timeoutMs: 20_000 });
        const done = await lab.api.call('commands.wait', { cids: commands.map((command) => command.cid), timeoutMs: 30_000 });
        for (const view of done)
          calmResults.push(view.status === 'ok' && view.output[0]?.text === '42\n' ? 'ok' : `${view.board}: ${view.status} ${view.error ?? ''}`);
      }
    })();
  });
  afterAll(async () => {
    attacking = false;
    await calmLoop?.catch(() => undefined);
    await lab?.close();
  });

  async function enrollAttacker(name: string): Promise<BoardCredentials> {
    return lab.api.call('boards.enroll', { name });
  }

  async function expectSuspended(name: string, credentials: BoardCredentials, reason: RegExp): Promise<void> {
    const status = await lab.api.call('status', {});
    expect(status.alarms).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: 'board-suspended', board: name, reason: expect.stringMatching(reason) })]),
    );
    expect((await lab.api.call('boards.get', { board: name })).disabled).toMatchObject({ kind: 'suspended' });
    expect(await loginRefusal(lab.redisPort, credentials)).toBe('WRONGPASS');
  }

  it('a board cannot add entries to its own command queue (or give its state another type)', async () => {
    const credentials = await enrollAttacker('queue-writer');
    const keys = boardKeys(credentials.id);
    const connection = await RespConnection.connect({ host: '127.0.0.1', port: lab.redisPort });
    await connection.call('AUTH', credentials.user, credentials.password);
    const refused = async (...args: string[]) =>
      connection.call(...args).then(
        () => 'ALLOWED',
        (error: RespError) => error.code,
      );
    expect(await refused('XADD', keys.cmd, '*', 'i', 'self', 'o', 'exec', 'c', 'x'.repeat(1000))).toBe('NOPERM');
    expect(await refused('XADD', keys.state, '*', 'k', 'v')).toBe('NOPERM');
    // Its own protocol still works.
    expect(await refused('XADD', keys.up, 'MAXLEN', '~', '1000', '*', 'k', 'hb')).toBe('ALLOWED');
    expect(await refused('FCALL', 'cm_claim', '2', keys.cmd, keys.state, '')).toBe('ALLOWED');
    connection.destroy();
  });

  it('megabyte values in its state hash: the board is suspended and what it wrote is dropped; enabling lets it in again', async () => {
    const credentials = await enrollAttacker('state-filler');
    const board = await RawBoard.connect(lab, credentials, true);
    await board.send(300, (index) => ['HSET', boardKeys(credentials.id).state, `junk${index}`, MEGABYTE]);
    await board.waitClosed();
    await expectSuspended('state-filler', credentials, /of its status record/);
    const status = await lab.api.call('status', {});
    expect(status.redis.memoryBytes).toBeLessThan(64 * MiB);

    await lab.api.call('boards.enable', { board: 'state-filler' });
    expect(await loginRefusal(lab.redisPort, credentials)).toBe('ACCEPTED');
    expect((await lab.api.call('status', {})).alarms.some((alarm) => alarm.kind === 'board-suspended' && alarm.board === 'state-filler')).toBe(false);
  });

  it('replies it never reads: the connection is closed by the output buffer limit and Redis memory stays bounded', async () => {
    const credentials = await enrollAttacker('slow-reader');
    // Something in its queue to read: a 60 KiB program waiting for it.
    await lab.api.call('commands.send', { boards: 'slow-reader', request: { op: 'exec', code: `# ${'x'.repeat(60 * 1024)}` } });
    const board = await RawBoard.connect(lab, credentials, false);
    let peak = 0;
    const sampler = setInterval(() => {
      void lab.api.call('status', {}).then((status) => (peak = Math.max(peak, status.redis.memoryBytes)));
    }, 50);
    try {
      // 4,000 replies of 60 KiB = 240 MB if Redis kept them all.
      await board.send(4_000, () => ['XRANGE', boardKeys(credentials.id).cmd, '-', '+']);
      peak = Math.max(peak, (await lab.api.call('status', {})).redis.memoryBytes);
      await board.waitClosed();
    } finally {
      clearInterval(sampler);
    }
    console.log(`slow reader: Redis peak ${(peak / MiB).toFixed(1)} MiB`);
    expect(peak).toBeLessThan(96 * MiB);
    expect((await lab.api.call('status', {})).redis.memoryBytes).toBeLessThan(64 * MiB);
  });

  it('600 uplink entries of 1 MB: the board is suspended, the manager holds a bounded amount, Redis memory comes back', async () => {
    const credentials = await enrollAttacker('uplink-flooder');
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 20);
    const board = await RawBoard.connect(lab, credentials, true);
    let sent: number;
    try {
      sent = await board.send(600, () => ['XADD', boardKeys(credentials.id).up, '*', 'k', 'out', 'i', 'c1', 'n', '0', 's', '1', 'd', MEGABYTE]);
      await board.waitClosed();
    } finally {
      clearInterval(sampler);
    }
    console.log(`uplink flood: ${sent} of 600 entries sent before the close, manager RSS +${((rssPeak - rssBefore) / MiB).toFixed(1)} MiB at the peak`);
    expect(sent).toBeLessThan(600);
    await expectSuspended('uplink-flooder', credentials, /to the service within a second|messages waiting for the service/);
    // The manager never fetched a 1 MB entry: what it holds grew by far less than what was sent.
    expect(rssPeak - rssBefore).toBeLessThan(96 * MiB);
    await waitFor(async () => (await lab.api.call('status', {})).redis.memoryBytes < 64 * MiB, 10_000, 'Redis memory back under 64 MiB');
  });

  it('the other boards answered every command throughout', async () => {
    attacking = false;
    await calmLoop;
    expect(calmResults.length).toBeGreaterThan(0);
    expect(calmResults.filter((result) => result !== 'ok')).toEqual([]);
  });
});

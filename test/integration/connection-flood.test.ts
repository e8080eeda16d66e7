/**
 * Connection exhaustion (issue 11, point 2), scaled down: the embedded Redis is sized for a
 * tiny fleet (40 slots), and a flood of 90 connections that never log in, re-opened as soon
 * as they are closed, holds it. An enrolled board still connects, the boards already online
 * keep working, and `status` carries the alarm with the count. Also: maxclients follows the
 * fleet's size, and a lone connection that never logs in is closed.
 */
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { MicroPythonInterpreter } from '../../electron/manager/virtual/micropython-interpreter.js';
import { MemoryFs } from '../../electron/manager/virtual/board-fs.js';
import { ReferenceBoard } from '../../electron/manager/virtual/reference-board.js';
import { GUARD_USER, MANAGER_USER } from '../../electron/manager/redis/acl.js';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';

const LIMITS = { minClients: 1000, perBoard: 4, headroom: 16, unauthenticatedIdleMs: 1_000 };

/** Idle connections that never send a byte, each re-opened as soon as it is closed. */
class Flood {
  private readonly sockets = new Set<net.Socket>();
  private stopped = false;

  constructor(
    private readonly port: number,
    count: number,
  ) {
    for (let index = 0; index < count; index++) this.open();
  }

  private open(): void {
    if (this.stopped) return;
    const socket = net.connect({ host: '127.0.0.1', port: this.port });
    this.sockets.add(socket);
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.on('close', () => {
      this.sockets.delete(socket);
      setImmediate(() => this.open());
    });
  }

  stop(): void {
    this.stopped = true;
    for (const socket of this.sockets) socket.destroy();
  }
}

describe('connection exhaustion', () => {
  let lab: Lab;
  let admin: RespConnection;
  const maxClients = async () => Number(((await admin.call('CONFIG', 'GET', 'maxclients')) as Buffer[])[1]);
  /** The names of the service's connections (all types: the notifications connection is `pubsub` once it has subscribed). */
  const serviceConnections = async () =>
    String(await admin.call('CLIENT', 'LIST'))
      .split('\n')
      .filter((line) => line.includes(` user=${MANAGER_USER} `) || line.includes(` user=${GUARD_USER} `))
      .map((line) => /(?:^| )name=(\S*)/.exec(line)?.[1] ?? '');
  const allServiceConnectionsBack = async () => {
    const names = await serviceConnections();
    return ['cm-manager', 'cm-manager-notify', 'cm-manager-guard'].every((name) => names.includes(name));
  };
  /** What Redis says first to a new connection. */
  const answerToNewConnection = () =>
    new Promise<string>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: lab.redisPort });
      let text = '';
      // A refused connection gets the error unasked; an accepted one only PING's answer (NOAUTH), then is closed.
      socket.on('connect', () => socket.write('PING\r\n'));
      socket.on('data', (chunk) => {
        text += chunk.toString();
        socket.end();
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve(text));
    });

  beforeAll(async () => {
    lab = await startLab({ boards: 1, prefix: 'steady', manager: { connectionLimits: LIMITS } });
    admin = await RespConnection.connect({ host: '127.0.0.1', port: lab.redisPort });
    await admin.call('AUTH', 'cm-manager', (await readFile(lab.manager.paths.managerPassword, 'utf8')).trim());
  });
  afterAll(async () => {
    admin?.destroy();
    await lab?.close();
  });

  it('sizes maxclients from the fleet and follows it as boards are enrolled', async () => {
    expect(await maxClients()).toBe(1000); // 1 board: max(1000, 4 × 1 + 16)
    const names = Array.from({ length: 300 }, (_, index) => `grow-${index + 1}`);
    await lab.api.call('boards.enrollMany', { names });
    await waitFor(async () => (await maxClients()) === 4 * 301 + 16, 5_000, 'maxclients for 301 boards');
    for (const board of names) await lab.api.call('boards.remove', { board });
    await waitFor(async () => (await maxClients()) === 1000, 5_000, 'maxclients back to its floor');
  });

  it('closes a connection that never logs in', async () => {
    const idle = net.connect({ host: '127.0.0.1', port: lab.redisPort });
    idle.on('error', () => {});
    const closed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
    await new Promise((resolve) => idle.once('connect', resolve));
    const opened = Date.now();
    let closedAfter = 0;
    void closed.then(() => (closedAfter = Date.now() - opened));
    await waitFor(() => closedAfter, 10_000, 'the idle connection closed');
    // Closed once it had waited its second without AUTH, not before.
    expect(closedAfter).toBeGreaterThanOrEqual(1_000);
  });

  it("a board's password cannot hold more than its share of the slots", async () => {
    const { user, password } = lab.fleet.boards[0]!.config as { user: string; password: string };
    const extra = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const connection = await RespConnection.connect({ host: '127.0.0.1', port: lab.redisPort });
        await connection.call('AUTH', user, password);
        return connection;
      }),
    );
    try {
      const held = async () =>
        String(await admin.call('CLIENT', 'LIST', 'TYPE', 'normal'))
          .split('\n')
          .filter((line) => line.includes(` user=${user} `)).length;
      await waitFor(async () => (await held()) === LIMITS.perBoard, 10_000, `${user} down to ${LIMITS.perBoard} connections`);
      await waitFor(() => lab.logs.some((log) => log.message.includes(`board user ${user} held`)), 5_000, 'the warning');
    } finally {
      for (const connection of extra) connection.destroy();
    }
  });

  it('an enrolled board connects while a flood of unauthenticated connections holds every slot; status raises the alarm', async () => {
    const slots = await maxClients();
    // (Bounded, so that on a server not sized from the fleet this test fails on the missing alarm, not on open files.)
    const flood = new Flood(lab.redisPort, Math.min(slots, 1000) + 50);
    const interpreter = new MicroPythonInterpreter();
    let board: ReferenceBoard | undefined;
    try {
      // The flood has filled the slots: Redis refuses connections, and says so in status.
      const alarm = await waitFor(
        async () => (await lab.api.call('status', {})).alarms.find((item) => item.kind === 'connections-refused'),
        15_000,
        'the connections-refused alarm',
      );
      expect(alarm).toMatchObject({ kind: 'connections-refused', maxClients: slots });
      expect(alarm.kind === 'connections-refused' && alarm.count).toBeGreaterThan(0);
      await waitFor(() => lab.logs.some((log) => log.level === 'warn' && /Redis refused \d+ connections/.test(log.message)), 5_000, 'the warning in the log');

      // A board enrolled now connects (with the protocol's own backoff, 1 s doubling) while the flood goes on.
      // Each attempt is a race: it gets in only when it lands while the guard's last sweep has
      // freed slots the flood has not refilled yet. On a loaded machine 2 attempts in 3 lost
      // (measured: online at the 1st to the 6th attempt), so the wait covers 8 attempts
      // (0, 1, 3, 7, 15, 31, 63 and 123 s), not 6.
      const credentials = await lab.api.call('boards.enroll', { name: 'late-1' });
      await interpreter.start();
      board = new ReferenceBoard({ credentials, fs: new MemoryFs(), interpreter, host: '127.0.0.1', bootDelayMs: 0 });
      board.start();
      const started = Date.now();
      await waitFor(async () => (await lab.api.call('boards.get', { board: 'late-1' })).online, 135_000, 'late-1 online during the flood');
      const online = Date.now();
      console.log(`late-1 online ${online - started} ms after it started`);
      // The flood went on all along: Redis still refuses connections after the board got in.
      await waitFor(
        async () => (await lab.api.call('status', {})).alarms.some((item) => item.kind === 'connections-refused' && item.at > online),
        10_000,
        'refusals after the board came online',
      );

      // The board that was online all along still runs commands.
      const { commands } = await lab.api.call('commands.send', { boards: 'steady-1', request: { op: 'exec', code: 'print(6*7)' } });
      const [done] = await lab.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 20_000 });
      expect(done?.status).toBe('ok');
    } finally {
      flood.stop();
      await board?.stop();
      await interpreter.close();
    }
  }, 180_000);

  it("the guard's user may watch and close connections but reads no key", async () => {
    const dry = async (...command: string[]) => String(await admin.call('ACL', 'DRYRUN', GUARD_USER, ...command));
    expect(await dry('CLIENT', 'KILL', 'USER', 'default')).toBe('OK');
    expect(await dry('CONFIG', 'SET', 'maxclients', '1000')).toBe('OK');
    expect(await dry('GET', 'cm:{mgr}:boards')).toMatch(/no permissions/);
    expect(await dry('ACL', 'SETUSER', 'someone', 'on')).toMatch(/no permissions/);
  });

  it("the service's own connections get back in when they drop while a flood holds every slot", async () => {
    const slots = await maxClients();
    const flood = new Flood(lab.redisPort, Math.min(slots, 1000) + 50);
    try {
      await waitFor(
        async () => (await lab.api.call('status', {})).alarms.some((item) => item.kind === 'connections-refused'),
        15_000,
        'the flood holding every slot',
      );
      // Every connection of the service's user drops (its commands and its notifications); the admin connection,
      // made before the flood, is spared (CLIENT KILL skips the caller).
      const killed = Number(await admin.call('CLIENT', 'KILL', 'USER', MANAGER_USER));
      expect(killed).toBeGreaterThanOrEqual(2);

      // The guard, the commands connection and the notifications connection are all back, while the flood goes on.
      await waitFor(allServiceConnectionsBack, 60_000, "the service's connections back");
      const { commands } = await lab.api.call('commands.send', { boards: 'steady-1', request: { op: 'exec', code: 'print(6*7)' } });
      const [done] = await lab.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 30_000 });
      expect(done?.status).toBe('ok');
      const status = await lab.api.call('status', {});
      expect(status.alarms.some((item) => item.kind === 'connections-refused')).toBe(true);
    } finally {
      flood.stop();
    }
  }, 120_000);

  it("the service's own connections get back in even when Redis frees no slot at all: they take the spares it holds", async () => {
    // No flood to sweep: Redis is sized to exactly the connections open minus the two the service is about to lose,
    // so after they drop every slot is still taken and nothing the guard does frees one (a flood that always wins).
    const before = await maxClients();
    const spares = async () => (await serviceConnections()).filter((name) => name === 'cm-spare').length;
    // (And no connection left over from a flood, closing meanwhile: that would free a slot.)
    const settled = async () => (await spares()) === 3 && !String(await admin.call('CLIENT', 'LIST')).includes(' user=default ');
    await waitFor(settled, 10_000, 'the service holding its three spares, no unauthenticated connection left');
    const managerOwn = async () => (await serviceConnections()).filter((name) => name === 'cm-manager' || name === 'cm-manager-notify').length;
    expect(await managerOwn()).toBe(2);
    const open = String(await admin.call('CLIENT', 'LIST'))
      .trim()
      .split('\n').length;
    await admin.call('CONFIG', 'SET', 'maxclients', String(open - 2));
    try {
      expect(await answerToNewConnection()).toMatch(/max number of clients reached/);
      const killed = Number(await admin.call('CLIENT', 'KILL', 'USER', MANAGER_USER));
      expect(killed).toBe(2);
      expect(await answerToNewConnection()).toMatch(/max number of clients reached/);

      await waitFor(allServiceConnectionsBack, 30_000, "the service's connections back over its spares");
      // Over two of the three spares: the third is still held, and Redis still refuses anyone else.
      expect(await spares()).toBe(1);
      expect(await answerToNewConnection()).toMatch(/max number of clients reached/);
      const { commands } = await lab.api.call('commands.send', { boards: 'steady-1', request: { op: 'exec', code: 'print(6*7)' } });
      const [done] = await lab.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 30_000 });
      expect(done?.status).toBe('ok');
    } finally {
      await admin.call('CONFIG', 'SET', 'maxclients', String(before));
    }
    // With slots free again, the reserve is whole again.
    await waitFor(async () => (await spares()) === 3, 10_000, 'three spares again');
  }, 90_000);
});

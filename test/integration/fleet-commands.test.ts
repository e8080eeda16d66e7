/**
 * What a user notices about commands, against a real redis-server and virtual boards
 * running real MicroPython: streamed output, files that arrive intact, reboots, renames,
 * and commands waiting for offline boards.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from '../../electron/manager/api/contract.js';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('commands on virtual boards', () => {
  let lab: Lab;
  const events: Array<ApiEvent & { at: number }> = [];
  let closeEvents: () => void;

  beforeAll(async () => {
    lab = await startLab({ boards: 3, heartbeatS: 1 });
    const subscription = await lab.api.events((event) => events.push({ ...event, at: Date.now() }));
    closeEvents = () => subscription.close();
  });
  afterAll(async () => {
    closeEvents?.();
    await lab?.close();
  });

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- requests of every op
  const send = async (boards: string, request: any, extra = {}) =>
    (await lab.api.call('commands.send', { boards, request, ...extra })).commands;
  const wait = (cids: string[], timeoutMs = 10_000) => lab.api.call('commands.wait', { cids, timeoutMs });

  it('streams output in order while the code runs', async () => {
    const code = 'import time\nfor i in range(10):\n    print("line", i)\n    time.sleep(0.05)\n';
    const [command] = await send('sim-1', { op: 'exec', code });
    const [done] = await wait([command!.cid]);
    expect(done!.status).toBe('ok');
    const expected = Array.from({ length: 10 }, (_, i) => `line ${i}\n`).join('');
    const chunks = events.filter((event) => event.type === 'output' && event.cid === command!.cid) as Array<Extract<ApiEvent, { type: 'output' }> & { at: number }>;
    expect(chunks.map((chunk) => chunk.text).join('')).toBe(expected);
    expect(chunks.length).toBeGreaterThan(3);
    const result = events.find((event) => event.type === 'command' && event.command.cid === command!.cid && event.command.status === 'ok')!;
    // The first line arrived well before the code finished (~500 ms of sleeping).
    expect(result.at - chunks[0]!.at).toBeGreaterThan(250);
    expect(done!.output.map((chunk) => chunk.text).join('')).toBe(expected);
  });

  it('reports an exception with its traceback and a failing status', async () => {
    const [command] = await send('sim-1', { op: 'exec', code: 'x = 1\n1/0' });
    const [done] = await wait([command!.cid]);
    expect(done!.status).toBe('error');
    expect(done!.error).toBe('ZeroDivisionError: divide by zero');
    expect(done!.output.find((chunk) => chunk.stream === 'stderr')?.text).toContain('Traceback');
  });

  it('uploads a 100 KB random file and downloads it back with the same sha256', async () => {
    const data = randomBytes(100 * 1024);
    const [put] = await send('sim-2', { op: 'put', path: '/data/random.bin', dataBase64: data.toString('base64') });
    const [putDone] = await wait([put!.cid]);
    expect(putDone!.status).toBe('ok');
    expect(putDone!.result).toEqual({ size: data.length, sha256: sha256(data) });
    const onBoard = await lab.fleet.byName('sim-2')!.fs.readFile('/data/random.bin');
    expect(sha256(onBoard)).toBe(sha256(data));
    expect(await lab.fleet.byName('sim-2')!.fs.stat('/data/random.bin.part').catch((error) => error.code)).toBe('ENOENT');
    const [get] = await send('sim-2', { op: 'get', path: '/data/random.bin' });
    const [getDone] = await wait([get!.cid]);
    expect(getDone!.status).toBe('ok');
    const file = await lab.api.call('commands.file', { cid: get!.cid });
    expect(file.sha256).toBe(sha256(data));
    expect(sha256(Buffer.from(file.dataBase64, 'base64'))).toBe(sha256(data));
  });

  it('lists, stats, moves and removes files', async () => {
    const board = lab.fleet.byName('sim-3')!;
    await board.fs.mkdir('/lib');
    await board.fs.writeFile('/lib/a.py', Buffer.from('print(1)\n'));
    const run = async (request: object) => (await wait([(await send('sim-3', request))[0]!.cid]))[0]!;
    expect((await run({ op: 'ls', path: '/lib' })).result).toEqual([['a.py', 'f', 9]]);
    expect((await run({ op: 'stat', path: '/lib/a.py' })).result).toEqual({ type: 'f', size: 9 });
    expect((await run({ op: 'mv', path: '/lib/a.py', to: '/lib/b.py' })).status).toBe('ok');
    const missing = await run({ op: 'stat', path: '/lib/a.py' });
    expect([missing.status, missing.errorCode]).toEqual(['error', 'ENOENT']);
    expect((await run({ op: 'rm', path: '/lib' })).errorCode).toBe('ENOTEMPTY');
    expect((await run({ op: 'rm', path: '/lib', recursive: true })).status).toBe('ok');
    expect((await run({ op: 'ls', path: '/' })).result).toEqual([]);
  });

  it('reboot: offline within two heartbeat periods, then online again', async () => {
    const board = (await lab.api.call('boards.get', { board: 'sim-3' }));
    const heartbeatMs = board.heartbeatS * 1000;
    const sentAt = Date.now();
    const [command] = await send('sim-3', { op: 'reboot' });
    expect((await wait([command!.cid]))[0]!.status).toBe('ok');
    const offline = await waitFor(() => events.find((event) => event.type === 'board.offline' && event.board.name === 'sim-3' && event.at >= sentAt), 5_000, 'offline');
    expect(offline.at - sentAt).toBeLessThanOrEqual(2 * heartbeatMs);
    const online = await waitFor(() => events.find((event) => event.type === 'board.online' && event.board.name === 'sim-3' && event.at >= offline.at), 5_000, 'online');
    expect(online.at).toBeGreaterThanOrEqual(offline.at);
  });

  it('a board that loses power turns offline within two heartbeat periods', async () => {
    const board = lab.fleet.byName('sim-2')!;
    const heartbeatMs = Number(board.config.hb) * 1000;
    const offAt = Date.now();
    await board.powerOff();
    const offline = await waitFor(() => events.find((event) => event.type === 'board.offline' && event.board.name === 'sim-2' && event.at >= offAt), 5_000, 'offline');
    expect(offline.at - offAt).toBeLessThanOrEqual(2 * heartbeatMs);
    board.start();
    await waitFor(async () => (await lab.api.call('boards.get', { board: 'sim-2' })).online, 5_000, 'online again');
  });

  it('a command sent to an offline board runs once when it comes back', async () => {
    const board = lab.fleet.byName('sim-1')!;
    await board.powerOff();
    await waitFor(async () => !(await lab.api.call('boards.get', { board: 'sim-1' })).online, 5_000, 'offline');
    const [command] = await send('sim-1', { op: 'exec', code: 'print("back")' });
    expect(command!.boardOnline).toBe(false);
    expect((await lab.api.call('commands.get', { cid: command!.cid })).status).toBe('queued');
    board.start();
    const [done] = await wait([command!.cid]);
    expect(done!.status).toBe('ok');
    expect(done!.output).toEqual([{ stream: 'stdout', text: 'back\n' }]);
    // Power-cycle again: the command must not run a second time.
    await board.powerOff();
    board.start();
    await waitFor(() => board.connected, 5_000, 'reconnected');
    const [probe] = await send('sim-1', { op: 'exec', code: 'pass' });
    await wait([probe!.cid]);
    expect(board.executed.filter((cid) => cid === command!.cid)).toHaveLength(1);
  });

  it('rename keeps the board\'s queue and history', async () => {
    const board = lab.fleet.byName('sim-1')!;
    const [before] = await send('sim-1', { op: 'exec', code: 'print("before")' });
    await wait([before!.cid]);
    await board.powerOff();
    await waitFor(async () => !(await lab.api.call('boards.get', { board: 'sim-1' })).online, 5_000, 'offline');
    const [queued] = await send('sim-1', { op: 'exec', code: 'print("queued")' });
    const renamed = await lab.api.call('boards.rename', { board: 'sim-1', name: 'kitchen-1' });
    expect(renamed.name).toBe('kitchen-1');
    await expect(lab.api.call('boards.get', { board: 'sim-1' })).rejects.toThrow(/no board named/);
    board.start();
    const [done] = await wait([queued!.cid]);
    expect(done!.status).toBe('ok');
    expect(done!.output[0]!.text).toBe('queued\n');
    await waitFor(() => board.config.name === 'kitchen-1', 5_000, 'board learns its name');
    const history = await lab.api.call('boards.history', { board: 'kitchen-1' });
    const cids = history.map((entry) => entry.cid);
    expect(cids).toContain(before!.cid);
    expect(cids).toContain(queued!.cid);
    expect((await lab.api.call('boards.list', {})).map((entry) => entry.name)).toContain('kitchen-1');
  });

  it('expires a command that waits too long for an offline board', async () => {
    const board = lab.fleet.byName('sim-3')!;
    await board.powerOff();
    const [command] = await send('sim-3', { op: 'exec', code: 'print("too late")' }, { expireMs: 1_000 });
    const [done] = await wait([command!.cid], 5_000);
    expect(done!.status).toBe('expired');
    board.start();
    await waitFor(async () => (await lab.api.call('boards.get', { board: 'sim-3' })).online, 5_000, 'online');
    const [probe] = await send('sim-3', { op: 'exec', code: 'pass' });
    await wait([probe!.cid]);
    expect(board.executed).not.toContain(command!.cid);
  });
});

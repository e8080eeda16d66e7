/**
 * The one network entry point is secured by the host: per-board ACL users, no default
 * user, a board's bad data refused without harm to others, and a token-protected API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { RespError } from '../../electron/manager/redis/resp-codec.js';
import { boardKeys, managerKeys } from '../../electron/manager/redis/keys.js';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';

async function connectAs(lab: Lab, credentials: BoardCredentials): Promise<RespConnection> {
  const connection = await RespConnection.connect({ host: '127.0.0.1', port: lab.redisPort });
  await connection.call('AUTH', credentials.user, credentials.password);
  return connection;
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof RespError) return error.code;
    throw error;
  }
  return 'ALLOWED';
}

describe('security of the entry point and the API', () => {
  let lab: Lab;
  let boardA: BoardCredentials;
  let boardB: BoardCredentials;
  let a: RespConnection;

  beforeAll(async () => {
    lab = await startLab({ boards: 1, prefix: 'good' });
    const enrolled = await lab.api.call('boards.enrollMany', { names: ['board-a', 'board-b'] });
    boardA = enrolled[0]!;
    boardB = enrolled[1]!;
    a = await connectAs(lab, boardA!);
  });
  afterAll(async () => {
    a?.destroy();
    await lab?.close();
  });

  it("board A cannot read or write board B's keys, queue commands for B, or read the manager's data", async () => {
    const b = boardKeys(boardB.id);
    const own = boardKeys(boardA.id);
    const attempts: Record<string, Promise<unknown>> = {
      'read B queue': a.call('XRANGE', b.cmd, '-', '+'),
      'wait on B queue': a.call('XREAD', 'COUNT', '1', 'STREAMS', b.cmd, '0'),
      'claim B commands': a.call('FCALL', 'cm_claim', '2', b.cmd, b.state, ''),
      'queue for B (XADD)': a.call('XADD', b.cmd, '*', 'i', 'evil', 'o', 'exec', 'c', 'print(1)'),
      'queue for B (enqueue function)': a.call('FCALL', 'cm_enqueue', '3', b.cmd, b.seen, b.pending, 'evil', '0', '10', '{}', 'o', 'exec'),
      'write B uplink': a.call('XADD', b.up, '*', 'k', 'hb'),
      'write B state': a.call('HSET', b.state, 'cur', '0-0'),
      'read B blobs': a.call('GETRANGE', `${b.blobPrefix('c1')}:0`, '0', '10'),
      'read own uplink': a.call('XREAD', 'COUNT', '1', 'STREAMS', own.up, '0'),
      'read the registry': a.call('HGETALL', managerKeys.boards),
      'read registry via GET': a.call('HGET', managerKeys.boards, boardB.id),
      'list keys': a.call('KEYS', '*'),
      'scan keys': a.call('SCAN', '0'),
      'read the config': a.call('CONFIG', 'GET', '*'),
      'list ACL users': a.call('ACL', 'LIST'),
      'replace functions': a.call('FUNCTION', 'FLUSH'),
      'subscribe to notifications': a.call('PSUBSCRIBE', '*'),
      'flush everything': a.call('FLUSHALL'),
    };
    const results: Record<string, string> = {};
    for (const [what, attempt] of Object.entries(attempts)) results[what] = await refusal(attempt);
    expect(Object.entries(results).filter(([, code]) => code !== 'NOPERM')).toEqual([]);
    // Positive control: the board can do its own work.
    expect(await a.call('FCALL', 'cm_claim', '2', own.cmd, own.state, '')).toEqual([Buffer.from('0-0')]);
    expect(typeof (await a.call('XADD', own.up, 'MAXLEN', '~', '1000', '*', 'k', 'hb'))).not.toBe('string');
  });

  it('the default user is off and a wrong password is refused', async () => {
    const anonymous = await RespConnection.connect({ host: '127.0.0.1', port: lab.redisPort });
    try {
      expect(await refusal(anonymous.call('PING'))).toBe('NOAUTH');
      expect(await refusal(anonymous.call('AUTH', 'default', ''))).toBe('WRONGPASS');
      expect(await refusal(anonymous.call('AUTH', 'anything'))).toBe('WRONGPASS');
      expect(await refusal(anonymous.call('AUTH', boardA.user, 'not-the-password'))).toBe('WRONGPASS');
    } finally {
      anonymous.destroy();
    }
  });

  it('malformed and oversized board data is refused and logged; the manager and other boards carry on', async () => {
    const up = boardKeys(boardA.id).up;
    const garbage = [
      ['k', 'res', 'i', 'nope', 'ok', 'maybe', 'n', 'x'],
      ['k', 'hello', 'v', 'one'],
      ['k', 'out', 'i', 'c1', 'n', '0', 's', '1', 'd', Buffer.alloc(600 * 1024)],
      [Buffer.from([0xff, 0xfe, 0x00]), Buffer.from([1, 2, 3])],
      ['k', 'res', 'i', 'cunknown', 'ok', '1', 'n', '0'],
    ];
    for (const fields of garbage) await a.call('XADD', up, '*', ...fields);
    // A 10 MB value is refused by Redis itself (proto-max-bulk-len), and the connection dropped.
    const tenMegabytes = Buffer.alloc(10 * 1024 * 1024, 0x41);
    const big = await a.call('XADD', up, '*', 'k', 'out', 'd', tenMegabytes).then(
      () => 'accepted',
      (error: Error) => error.constructor.name,
    );
    expect(big).not.toBe('accepted');
    // Raw garbage on a fresh connection: a protocol error.
    const raw = await RespConnection.connect({ host: '127.0.0.1', port: lab.redisPort });
    await raw.writeRaw(Buffer.from('*1\r\n$99999999999\r\n'), 1).catch(() => undefined);
    raw.destroy();

    await waitFor(() => lab.logs.filter((log) => log.message.includes('refused data from board board-a')).length >= 5, 5_000, 'refusals logged');
    await waitFor(() => lab.logs.some((log) => log.message.startsWith('Redis refused malformed data')), 5_000, 'protocol error logged');
    const refusals = lab.logs.filter((log) => log.message.includes('refused data from board board-a')).map((log) => log.message);
    expect(refusals.join('\n')).toMatch(/field "ok" must be 0 or 1|is not an integer/);
    expect(refusals.join('\n')).toMatch(/entry is larger than 32768 bytes/);

    const status = await lab.api.call('status', {});
    expect(status.boards.online).toBeGreaterThanOrEqual(1);
    const { commands } = await lab.api.call('commands.send', { boards: 'good-1', request: { op: 'exec', code: 'print("still fine")' } });
    const [done] = await lab.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 5_000 });
    expect(done!.output).toEqual([{ stream: 'stdout', text: 'still fine\n' }]);
  });

  it('refuses API requests without the right token, from another host name, and a DEST with ..', async () => {
    const url = `${lab.manager.apiUrl}/api/status`;
    expect((await fetch(url, { method: 'POST', body: '{}' })).status).toBe(401);
    expect((await fetch(url, { method: 'POST', body: '{}', headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const port = new URL(lab.manager.apiUrl).port;
    // fetch() will not send a foreign Host header; a plain request does (DNS rebinding).
    const { request } = await import('node:http');
    const reboundStatus = await new Promise<number>((resolve, reject) => {
      const call = request(url, { method: 'POST', headers: { authorization: `Bearer ${lab.manager.apiToken}`, host: `evil.example:${port}` } }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      call.on('error', reject);
      call.end('{}');
    });
    expect(reboundStatus).toBe(403);
    const socketRefused = await new Promise<boolean>((resolve) => {
      const socket = new WebSocket(lab.manager.apiUrl.replace('http', 'ws') + '/api/events');
      socket.on('open', () => resolve(false));
      socket.on('error', () => resolve(true));
    });
    expect(socketRefused).toBe(true);
    await expect(
      lab.api.call('commands.send', { boards: 'good-1', request: { op: 'put', path: '/lib/../../etc/passwd', dataBase64: 'AA==' } }),
    ).rejects.toMatchObject({ code: 'bad_request', message: expect.stringMatching(/\.\./) });
    await expect(lab.api.call('commands.send', { boards: 'good-1', request: { op: 'exec' } as never })).rejects.toMatchObject({ code: 'bad_request' });
  });

  it('keeps secrets out of listings and credentials files private', async () => {
    const listing = JSON.stringify(await lab.api.call('boards.list', {}));
    expect(listing).not.toContain(boardA.password);
    const { commands } = await lab.api.call('commands.send', { boards: 'good-1', request: { op: 'cfg_get' } });
    const [config] = await lab.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 5_000 });
    expect((config!.result as Record<string, unknown>).password).toBe('********');
    const { stat } = await import('node:fs/promises');
    for (const file of ['secrets/api.token', 'secrets/redis-manager.password', 'redis/users.acl']) {
      expect(((await stat(`${lab.dataDir}/${file}`)).mode & 0o077).toString(8)).toBe('0');
    }
    expect(lab.logs.map((log) => log.message).join('\n')).not.toContain(boardA.password);
  });
});

/**
 * Revocation is immediate (issue 11, point 9): `board-revoke` and `board-remove` close a
 * board's open Redis connection at once, not at its next login; a revoked board keeps its
 * record, cannot log in, and logs in again once enabled.
 */
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { main } from '../../electron/cli/main.js';
import { startManager } from '../helpers/lab.js';
import { loginRefusal } from '../helpers/board-login.js';

type Lab = Awaited<ReturnType<typeof startManager>>;

async function connectAs(lab: Lab, credentials: BoardCredentials): Promise<RespConnection> {
  const connection = await RespConnection.connect({ host: '127.0.0.1', port: lab.redisPort });
  await connection.call('AUTH', credentials.user, credentials.password);
  return connection;
}

function closed(connection: RespConnection): Promise<void> {
  return new Promise((resolve) => connection.once('close', () => resolve()));
}

async function mbm(lab: Lab, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let outText = '';
  let errText = '';
  out.on('data', (chunk) => (outText += chunk));
  err.on('data', (chunk) => (errText += chunk));
  const stdin = new PassThrough();
  stdin.end();
  const code = await main([...args, '--data-dir', lab.dataDir], { out, err, stdin } as never);
  return { code, out: outText, err: errText };
}

describe('revoking and removing a board closes its connections at once', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await startManager();
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('board-revoke closes the open connection, refuses the login, keeps the record; board-enable lets it in again', async () => {
    const credentials = await lab.api.call('boards.enroll', { name: 'revoked-1' });
    const connection = await connectAs(lab, credentials);
    await connection.call('XADD', boardKeys(credentials.id).up, 'MAXLEN', '~', '1000', '*', 'k', 'hb');
    const gone = closed(connection);

    const revoked = await mbm(lab, ['board-revoke', 'revoked-1']);
    expect(revoked.err).toBe('');
    expect(revoked.code).toBe(0);
    expect(revoked.out).toContain('1 open connection closed');
    await gone;

    expect(await loginRefusal(lab.redisPort, credentials)).toBe('WRONGPASS');
    const listed = await lab.api.call('boards.get', { board: 'revoked-1' });
    expect(listed.disabled).toMatchObject({ kind: 'revoked' });

    const enabled = await mbm(lab, ['board-enable', 'revoked-1']);
    expect(enabled.code).toBe(0);
    expect(await loginRefusal(lab.redisPort, credentials)).toBe('ACCEPTED');
    expect((await lab.api.call('boards.get', { board: 'revoked-1' })).disabled).toBeNull();
  });

  it('board-remove closes the open connection', async () => {
    const credentials = await lab.api.call('boards.enroll', { name: 'removed-1' });
    const connection = await connectAs(lab, credentials);
    // A board waiting for work, as it does most of the time.
    const waiting = connection.call('XREAD', 'COUNT', '1', 'BLOCK', '0', 'STREAMS', boardKeys(credentials.id).cmd, '$').catch((error: Error) => error);
    const gone = closed(connection);
    await lab.api.call('boards.remove', { board: 'removed-1' });
    await gone;
    expect(await waiting).toBeInstanceOf(Error);
    expect(await loginRefusal(lab.redisPort, credentials)).toBe('WRONGPASS');
  });

  it('new credentials (enroll --rotate) close the connection made with the old ones', async () => {
    const old = await lab.api.call('boards.enroll', { name: 'rotated-1' });
    const connection = await connectAs(lab, old);
    const gone = closed(connection);
    const fresh = await lab.api.call('boards.enroll', { name: 'rotated-1', rotate: true });
    await gone;
    expect(await loginRefusal(lab.redisPort, old)).toBe('WRONGPASS');
    expect(await loginRefusal(lab.redisPort, fresh)).toBe('ACCEPTED');
  });
});

/**
 * A plain redis-server of the test's own, as a user's "external Redis" would be: an admin
 * user with every permission, no persistence, on a free port.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { freePort } from './free-port.js';
import { waitFor } from './lab.js';

export interface PlainRedis {
  port: number;
  /** `redis://admin:…@127.0.0.1:<port>`, or at another port (a proxy in front). */
  url(port?: number): string;
  kill(): void;
}

export async function startPlainRedis(): Promise<PlainRedis> {
  const port = await freePort();
  const password = 'admin-secret';
  // Its own folder: a replica (tests that swap roles) writes the RDB it syncs into its working folder.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cm-plain-redis-'));
  const server = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--user',
      'admin',
      'on',
      `>${password}`,
      '~*',
      '&*',
      '+@all',
    ],
    { stdio: 'ignore', cwd: dir },
  );
  server.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  await waitFor(
    async () => {
      const probe = await RespConnection.connect({ host: '127.0.0.1', port }).catch(() => null);
      probe?.destroy();
      return probe !== null;
    },
    5_000,
    'redis-server up',
  );
  return { port, url: (at = port) => `redis://admin:${password}@127.0.0.1:${at}`, kill: () => server.kill('SIGKILL') };
}

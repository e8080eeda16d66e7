/**
 * Secrets stay secret on the user's disk: every file holding one is 0600 in a 0700 folder
 * whatever the umask, also when the folders were there already (made by hand, or by an
 * older version), and no log line carries a board's password, even with --verbose. The
 * service runs in the background as `mbm server-start` starts it, under a umask of 022.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { freePort, freeUdpPort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/lab.js';
import { MBM, runMbm, type Run } from '../helpers/mbm-cli.js';

const modeOf = async (file: string) => (await stat(file)).mode & 0o777;

/** Every folder and file under `dir`, with its mode. */
async function modesUnder(dir: string): Promise<Array<{ path: string; dir: boolean; mode: number }>> {
  const found: Array<{ path: string; dir: boolean; mode: number }> = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const full = path.join(entry.parentPath, entry.name);
    found.push({ path: full, dir: entry.isDirectory(), mode: await modeOf(full) });
  }
  return found;
}

/** Every folder under `dir` is 0700, and every file that holds `secret` 0600. */
async function expectSecretsPrivate(dir: string, secret: string): Promise<void> {
  for (const entry of await modesUnder(dir)) {
    if (entry.dir) expect({ path: entry.path, mode: entry.mode }).toEqual({ path: entry.path, mode: 0o700 });
    else if ((await readFile(entry.path, 'latin1')).includes(secret)) expect({ path: entry.path, mode: entry.mode }).toEqual({ path: entry.path, mode: 0o600 });
  }
}

/** Sends raw bytes on a new connection to Redis and waits until Redis has answered them. */
function sendRaw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
    socket.on('connect', () => socket.write(bytes, 'latin1'));
  });
}

describe('secrets on disk and in the log', () => {
  let dataDir: string;
  let work: string;
  let redisPort: number;
  let previousUmask: number;
  let sim: ChildProcess | undefined;

  const mbm = (args: string[]): Promise<Run> => runMbm(args, { dataDir, cwd: work });

  beforeAll(async () => {
    // The service and sim inherit it, as they would from a user's shell.
    previousUmask = process.umask(0o022);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-secret-files-'));
    work = await mkdtemp(path.join(os.tmpdir(), 'cm-secret-files-work-'));
    // A data folder that was there already, open to everyone, as an older version (or a hand) left it.
    await chmod(dataDir, 0o755);
    for (const folder of ['redis', 'secrets', 'logs']) await mkdir(path.join(dataDir, folder), { mode: 0o755 });
    await writeFile(path.join(dataDir, 'logs', 'manager.log'), 'an older line\n', { mode: 0o644 });
    redisPort = await freePort();
    const started = await mbm(['server-start', '--verbose', '--port', String(redisPort), '--discovery-port', String(await freeUdpPort())]);
    expect(started.stderr).toBe('');
    expect(started.code).toBe(0);
    expect((await mbm(['board-enroll', 'kitchen', '--out', 'kitchen.json'])).code).toBe(0);
  });
  afterAll(async () => {
    sim?.kill('SIGKILL');
    await mbm(['server-stop']).catch(() => undefined);
    process.umask(previousUmask);
    await rm(dataDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('the data folder and every folder in it are 0700, every file holding a secret 0600', async () => {
    expect(await modeOf(dataDir)).toBe(0o700);
    for (const folder of ['redis', 'secrets', 'logs']) expect(await modeOf(path.join(dataDir, folder)), folder).toBe(0o700);
    expect(await modeOf(path.join(dataDir, 'logs', 'manager.log'))).toBe(0o600);
    const secretFiles = [...(await modesUnder(path.join(dataDir, 'secrets'))), ...(await modesUnder(path.join(dataDir, 'redis')))];
    expect(secretFiles.filter((entry) => !entry.dir).map((entry) => path.basename(entry.path))).toEqual(
      expect.arrayContaining(['api.token', 'redis-manager.password', 'users.acl']),
    );
    for (const entry of secretFiles) expect({ path: entry.path, mode: entry.mode }).toEqual({ path: entry.path, mode: entry.dir ? 0o700 : 0o600 });
    expect(await modeOf(path.join(work, 'kitchen.json'))).toBe(0o600);
  });

  it("a virtual board's flash folder is 0700 and its cm_config.json 0600, also after the board rewrites it", async () => {
    sim = spawn(process.execPath, [MBM, 'sim', '--micropython', '--boards', '1', '--prefix', 'vb', '--data-dir', dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let simOut = '';
    sim.stdout!.on('data', (chunk) => (simOut += chunk));
    sim.stderr!.on('data', (chunk) => (simOut += chunk));
    await waitFor(() => simOut.includes('running'), 60_000, `mbm sim to start its board (${simOut})`);
    const folder = path.join(dataDir, 'virtual-boards', 'vb-1');
    const config = path.join(folder, 'cm_config.json');
    expect(await modeOf(folder)).toBe(0o700);
    expect(await modeOf(config)).toBe(0o600);
    expect(JSON.parse(await readFile(config, 'utf8'))).toHaveProperty('password');
    await waitFor(
      async () =>
        (JSON.parse((await mbm(['board-list', '--json'])).stdout) as Array<{ name: string; online: boolean }>).some((b) => b.name === 'vb-1' && b.online),
      30_000,
      'the virtual board online',
    );
    // The board replaces its config file itself (a temporary file, then a rename) for cfg_set.
    const set = await mbm(['board', 'vb-1', 'set', 'colour="green"']);
    expect(set.stderr).toBe('');
    await waitFor(async () => JSON.parse(await readFile(config, 'utf8')).colour === 'green', 20_000, 'the board to write its config back');
    expect(await modeOf(config)).toBe(0o600);
    await expectSecretsPrivate(folder, JSON.parse(await readFile(config, 'utf8')).password as string);
  });

  it('a flash folder provisioned again is tightened: a folder and config left open before are 0700 and 0600', async () => {
    const folder = path.join(work, 'old-flash');
    await mkdir(folder, { mode: 0o755 });
    await writeFile(path.join(folder, 'cm_config.json'), '{}', { mode: 0o644 });
    const credentials = JSON.parse(await readFile(path.join(work, 'kitchen.json'), 'utf8')) as BoardCredentials;
    await provisionFolder(folder, credentials, { host: '127.0.0.1', port: redisPort });
    expect(await modeOf(folder)).toBe(0o700);
    expect(await modeOf(path.join(folder, 'cm_config.json'))).toBe(0o600);
    await expectSecretsPrivate(folder, credentials.password);
  });

  it("no line of manager.log carries a board's password from a malformed AUTH, even with --verbose", async () => {
    const credentials = JSON.parse(await readFile(path.join(work, 'kitchen.json'), 'utf8')) as BoardCredentials;
    const { user, password } = credentials;
    // Inline with an unbalanced quote, and RESP with a broken bulk length: Redis refuses both as protocol errors.
    expect(await sendRaw(redisPort, `AUTH ${user} "${password}\r\n`)).toContain('Protocol error');
    expect(await sendRaw(redisPort, `*3\r\n$4\r\nAUTH\r\n$${user.length}\r\n${user}\r\n$x${password.length}\r\n${password}\r\n`)).toContain('Protocol error');
    const log = path.join(dataDir, 'logs', 'manager.log');
    const text = await waitFor(
      async () => {
        const content = await readFile(log, 'utf8');
        return content.includes('redis: ') && content.includes('unbalanced quotes') && content.includes('invalid bulk length') ? content : null;
      },
      20_000,
      "redis-server's protocol error lines in manager.log",
    );
    expect(text).toContain('Protocol error');
    expect(text).not.toContain(password);
    expect(text).not.toContain(password.slice(0, 12));
  });
});

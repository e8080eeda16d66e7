/** The desktop log file: rotated by size, never holding a secret, never breaking the app. */
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileLog, formatLogLine, redactSecrets } from '../../electron/manager/file-log.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cm-file-log-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('file log', () => {
  it('creates the logs folder and the file (readable by the user only) and appends lines in order', async () => {
    const file = path.join(dir, 'logs', 'desktop.log');
    const log = createFileLog({ file, now: () => new Date('2025-01-02T03:04:05.000Z') });
    for (let index = 0; index < 50; index++) log.log('info', `line ${index}`);
    await log.close();
    const lines = (await readFile(file, 'utf8')).trimEnd().split('\n');
    expect(lines).toHaveLength(50);
    expect(lines[0]).toBe('2025-01-02T03:04:05.000Z INFO  line 0');
    expect(lines[49]).toBe('2025-01-02T03:04:05.000Z INFO  line 49');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('rotates past maxBytes, keeping `keep` old files and dropping the oldest', async () => {
    const file = path.join(dir, 'desktop.log');
    const log = createFileLog({ file, maxBytes: 400, keep: 2 });
    // Each flush is one write; 10 rounds of ~150 bytes rotate several times.
    for (let round = 0; round < 10; round++) {
      log.log('warn', `round ${round} ${'x'.repeat(100)}`);
      await log.flush();
    }
    await log.close();
    expect((await readdir(dir)).sort()).toEqual(['desktop.log', 'desktop.log.1', 'desktop.log.2']);
    for (const name of ['desktop.log', 'desktop.log.1', 'desktop.log.2']) expect((await stat(path.join(dir, name))).size).toBeLessThanOrEqual(400);
    const current = await readFile(file, 'utf8');
    expect(current).toContain('round 9');
    // The newest lines are kept, the oldest went with the dropped file.
    const all = (await Promise.all(['desktop.log.2', 'desktop.log.1', 'desktop.log'].map((name) => readFile(path.join(dir, name), 'utf8')))).join('');
    expect(all).not.toContain('round 0 ');
    const rounds = [...all.matchAll(/round (\d)/g)].map((match) => Number(match[1]));
    expect(rounds).toEqual(Array.from({ length: rounds.length }, (_, index) => 10 - rounds.length + index));
  });

  it('continues an existing file after a restart, counting its size', async () => {
    const file = path.join(dir, 'desktop.log');
    const first = createFileLog({ file, maxBytes: 300 });
    first.log('info', 'a'.repeat(200));
    await first.close();
    const second = createFileLog({ file, maxBytes: 300 });
    second.log('info', 'b'.repeat(200));
    await second.close();
    expect(await readFile(`${file}.1`, 'utf8')).toContain('a'.repeat(200));
    expect(await readFile(file, 'utf8')).not.toContain('a'.repeat(200));
  });

  it('drops lines below its level', async () => {
    const file = path.join(dir, 'desktop.log');
    const log = createFileLog({ file, minLevel: 'info' });
    log.log('debug', 'noise');
    log.log('error', 'it broke');
    await log.close();
    const text = await readFile(file, 'utf8');
    expect(text).not.toContain('noise');
    expect(text).toContain('ERROR it broke');
  });

  it('never writes a secret: masked fields, Redis URL passwords, AUTH arguments, bearer tokens, sign-in codes', async () => {
    const file = path.join(dir, 'desktop.log');
    const log = createFileLog({ file });
    log.log('info', 'connecting to redis://cm-manager:hunter2-secret@10.0.0.5:18266 and rediss://:pw-only@host:1', {
      password: 'field-secret',
      apiToken: 'tok-123',
      boardId: 'kitchen',
    });
    log.log('warn', 'sent AUTH cm-manager s3cr3t-pass to redis, then AUTH lonely-pass');
    log.log('info', 'Authorization: Bearer abc.def-ghi');
    log.log('info', 'window loads http://127.0.0.1:18267/signin?code=one-time-code#/flash');
    await log.close();
    const text = await readFile(file, 'utf8');
    for (const secret of ['hunter2-secret', 'pw-only', 'field-secret', 'tok-123', 's3cr3t-pass', 'lonely-pass', 'abc.def-ghi', 'one-time-code']) {
      expect(text).not.toContain(secret);
    }
    // What helps a reader stays.
    expect(text).toContain('redis://cm-manager:****@10.0.0.5:18266');
    expect(text).toContain('"boardId":"kitchen"');
    expect(text).toContain('/signin?code=****#/flash');
  });

  it('indents the continuation of a multi-line message, so a message cannot forge a line', () => {
    const line = formatLogLine(new Date(0), 'info', 'board says hi\n1970-01-01T00:00:00.000Z ERROR forged');
    expect(line).toBe('1970-01-01T00:00:00.000Z INFO  board says hi\n    1970-01-01T00:00:00.000Z ERROR forged\n');
    expect(redactSecrets('authentication failed')).toBe('authentication failed');
  });

  it("masks a password in redis-server's protocol error lines and in AUTH however it is written", () => {
    const redisLine =
      '3100:M 01 Dec 2026 21:32:44.027 - Protocol error (invalid bulk length) from client: id=4 addr=127.0.0.1:58806 laddr=127.0.0.1:17999 ' +
      "fd=8 name= age=1 idle=0 flags=N db=0 cmd=NULL user=default redir=-1 resp=2. Query buffer during protocol error: '$x14..s3cret-resp..'";
    expect(redactSecrets(redisLine)).toBe(redisLine.replace("'$x14..s3cret-resp..'", '****'));
    const lines = [
      'auth cmb-abc "s3cret quoted" then more',
      'AUTH cmb-abc "s3cret-cut',
      "AUTH 's3cret-single'",
      'HELLO 3 AUTH cmb-abc s3cret-hello SETNAME x',
      'AUTH2 s3cret-two',
      'ACL SETUSER cmb-x reset on >s3cret-acl #s3cret-hash ~* +@all',
      'CONFIG SET requirepass s3cret-config',
    ].map(redactSecrets);
    expect(lines.join('\n')).not.toMatch(/s3cret/);
    expect(lines[0]).toBe('auth **** then more');
    // A client description names the command it ran: that is no password, and its user stays.
    expect(redactSecrets('id=5 cmd=auth user=cmb-x redir=-1')).toBe('id=5 cmd=auth user=cmb-x redir=-1');
  });

  it('escapes control characters, so a line read in a terminal cannot drive it', () => {
    expect(formatLogLine(new Date(0), 'warn', 'board says \x1b[2Jhi\x07\r\nnext\rover')).toBe(
      '1970-01-01T00:00:00.000Z WARN  board says \\u001b[2Jhi\\u0007\n    next\\u000dover\n',
    );
  });

  it('reports a file it cannot write once and keeps the app running', async () => {
    const blocker = path.join(dir, 'not-a-folder');
    await writeFile(blocker, '');
    const errors: Error[] = [];
    const log = createFileLog({ file: path.join(blocker, 'desktop.log'), onWriteError: (error) => errors.push(error) });
    log.log('info', 'one');
    log.log('info', 'two');
    await log.flush();
    log.log('info', 'three');
    await log.close();
    expect(errors).toHaveLength(1);
  });
});

/**
 * One suite of protocol behaviours (firmware/PROTOCOL.md), run against every board
 * implementation: the TypeScript reference board and the MicroPython client in the lab.
 * It only uses what a user has — the manager's API and the board's files — plus
 * power switches, so both kinds of board are judged by the same evidence.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiClient } from '../../electron/manager/api/client.js';
import type { ApiCommandRequest, ApiEvent, CommandView } from '../../electron/manager/api/contract.js';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { RespError } from '../../electron/manager/redis/resp-codec.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import { waitFor } from './lab.js';
import { isClaimOfCommand, type RedisFaultProxy } from '../lab/redis-fault-proxy.js';

/** A running manager with three boards named `<prefix>-1` … `<prefix>-3`, heartbeat 1 s. */
export interface BoardLab {
  api: ApiClient;
  redisPort: number;
  /** Every board reaches Redis through this proxy, which can lose or hold back replies. */
  proxy: RedisFaultProxy;
  names: string[];
  credentials(name: string): BoardCredentials;
  powerOff(name: string): Promise<void>;
  powerOn(name: string): Promise<void>;
  /** A file as it is on the board's flash. */
  readFile(name: string, path: string): Promise<Buffer>;
  close(): Promise<void>;
}

/** Python that counts its own runs in a file of the board (survives reboots) and prints the count. */
function countingCode(counter: string): string {
  return (
    `try:\n    n = int(open(${JSON.stringify(counter)}).read())\nexcept OSError:\n    n = 0\n` +
    `f = open(${JSON.stringify(counter)}, 'w')\nf.write(str(n + 1))\nf.close()\nprint('run', n + 1)`
  );
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

export function describeBoardConformance(kind: string, createLab: () => Promise<BoardLab>, timeouts = { command: 15_000 }): void {
  describe(`protocol conformance: ${kind}`, () => {
    let lab: BoardLab;
    const events: Array<ApiEvent & { at: number }> = [];
    let closeEvents: () => void = () => undefined;

    beforeAll(async () => {
      lab = await createLab();
      const subscription = await lab.api.events((event) => events.push({ ...event, at: Date.now() }));
      closeEvents = () => subscription.close();
    }, 60_000);
    afterAll(async () => {
      closeEvents();
      await lab?.close();
    }, 30_000);

    const board = (index: number) => lab.names[index]!;
    const send = async (name: string, request: ApiCommandRequest, extra: { expireMs?: number } = {}) =>
      (await lab.api.call('commands.send', { boards: name, request, ...extra })).commands[0]!;
    const wait = async (cid: string, timeoutMs = timeouts.command): Promise<CommandView> =>
      (await lab.api.call('commands.wait', { cids: [cid], timeoutMs }))[0]!;
    const run = async (name: string, request: ApiCommandRequest) => wait((await send(name, request)).cid);
    const online = async (name: string) => (await lab.api.call('boards.get', { board: name })).online;
    const text = (view: CommandView, stream = 'stdout') =>
      view.output
        .filter((chunk) => chunk.stream === stream)
        .map((chunk) => chunk.text)
        .join('');

    it('runs code and streams its output in order while it runs', async () => {
      const code = 'import time\nfor i in range(8):\n    print("line", i)\n    time.sleep(0.15)\n';
      const command = await send(board(0), { op: 'exec', code });
      const done = await wait(command.cid);
      expect(done.status).toBe('ok');
      const expected = Array.from({ length: 8 }, (_, i) => `line ${i}\n`).join('');
      expect(text(done)).toBe(expected);
      const chunks = events.filter((event) => event.type === 'output' && event.cid === command.cid) as Array<
        Extract<ApiEvent, { type: 'output' }> & { at: number }
      >;
      expect(chunks.map((chunk) => chunk.text).join('')).toBe(expected);
      expect(chunks.length).toBeGreaterThan(2);
      const finished = events.find((event) => event.type === 'command' && event.command.cid === command.cid && event.command.status === 'ok')!;
      expect(finished.at - chunks[0]!.at).toBeGreaterThan(500); // the first line arrived long before the end
    });

    it('reports an exception with its traceback and a failing status, and keeps its globals', async () => {
      expect((await run(board(0), { op: 'exec', code: 'kept = 41' })).status).toBe('ok');
      const failed = await run(board(0), { op: 'exec', code: 'print(kept + 1)\n1/0' });
      expect(failed.status).toBe('error');
      expect(failed.error).toBe('ZeroDivisionError: divide by zero');
      expect(text(failed)).toBe('42\n');
      expect(text(failed, 'stderr')).toMatch(/Traceback[\s\S]*ZeroDivisionError/);
    });

    it('reports a MemoryError in user code as ENOMEM and keeps running', async () => {
      const failed = await run(board(1), { op: 'exec', code: 'x = bytearray(2**31 - 64)' });
      expect([failed.status, failed.errorCode]).toEqual(['error', 'ENOMEM']);
      const after = await run(board(1), { op: 'exec', code: 'print("alive")' });
      expect(text(after)).toBe('alive\n');
    });

    it('uploads a 300 KB random file that lands with the same sha256, and downloads it back (past the flow-control window of §7.3)', async () => {
      const data = randomBytes(300 * 1024);
      const put = await run(board(1), { op: 'put', path: '/data/random.bin', dataBase64: data.toString('base64') });
      expect([put.status, put.error]).toEqual(['ok', null]);
      expect(put.result).toEqual({ size: data.length, sha256: sha256(data) });
      expect(sha256(await lab.readFile(board(1), '/data/random.bin'))).toBe(sha256(data));
      await expect(lab.readFile(board(1), '/data/random.bin.part')).rejects.toThrow();
      const get = await run(board(1), { op: 'get', path: '/data/random.bin' });
      expect([get.status, get.error]).toEqual(['ok', null]);
      const file = await lab.api.call('commands.file', { cid: get.cid });
      expect(sha256(Buffer.from(file.dataBase64, 'base64'))).toBe(sha256(data));
    });

    it("lists, stats, moves and removes files with the protocol's error codes", async () => {
      const name = board(2);
      expect((await run(name, { op: 'put', path: '/lib/a.py', dataBase64: Buffer.from('print(1)\n').toString('base64') })).status).toBe('ok');
      expect((await run(name, { op: 'ls', path: '/lib' })).result).toEqual([['a.py', 'f', 9]]);
      expect((await run(name, { op: 'stat', path: '/lib/a.py' })).result).toEqual({ type: 'f', size: 9 });
      expect((await run(name, { op: 'stat', path: '/lib' })).result).toMatchObject({ type: 'd' });
      expect((await run(name, { op: 'mv', path: '/lib/a.py', to: '/lib/b.py' })).status).toBe('ok');
      expect((await run(name, { op: 'stat', path: '/lib/a.py' })).errorCode).toBe('ENOENT');
      expect((await run(name, { op: 'rm', path: '/lib' })).errorCode).toBe('ENOTEMPTY');
      expect((await run(name, { op: 'mkdir', path: '/lib/sub/deeper' })).status).toBe('ok');
      expect((await run(name, { op: 'rm', path: '/lib', recursive: true })).status).toBe('ok');
      expect((await run(name, { op: 'stat', path: '/lib' })).errorCode).toBe('ENOENT');
    });

    it('answers the edge cases of §7.4 as the protocol says', async () => {
      const name = board(2);
      const file = Buffer.from('x = 1\n').toString('base64');
      expect((await run(name, { op: 'put', path: '/edge/f.py', dataBase64: file })).status).toBe('ok');
      expect((await run(name, { op: 'mkdir', path: '/edge/d' })).status).toBe('ok');
      const codes = async (request: ApiCommandRequest) => (await run(name, request)).errorCode;
      expect(await codes({ op: 'ls', path: '/edge/f.py' })).toBe('ENOTDIR');
      expect(await codes({ op: 'rm', path: '/' })).toBe('EINVAL');
      expect(await codes({ op: 'mv', path: '/edge/f.py', to: '/edge/d' })).toBe('EISDIR');
      expect(await codes({ op: 'put', path: '/edge/d', dataBase64: file })).toBe('EISDIR');
      // A directory is not moved into itself (or not moved at all).
      expect(['EISDIR', 'EINVAL']).toContain(await codes({ op: 'mv', path: '/edge/d', to: '/edge/d/inner' }));
      expect(await codes({ op: 'rm', path: '/edge/missing.py' })).toBe('ENOENT');
      // Directories list with size 0, sorted by name as bytes; the file is untouched.
      expect((await run(name, { op: 'ls', path: '/edge' })).result).toEqual([
        ['d', 'd', 0],
        ['f.py', 'f', 6],
      ]);
      expect((await run(name, { op: 'rm', path: '/edge', recursive: true })).status).toBe('ok');
    });

    it('hashes the files it has, null for a missing path or a directory (§7.4 hash)', async () => {
      const name = board(2);
      // 5,000 bytes: several of a small board's read chunks and more than one of its steps.
      const files: Array<[string, Buffer]> = [
        ['/hash/small.py', Buffer.from('print("hello")\n')],
        ['/hash/sub/large.bin', randomBytes(5000)],
        ['/hash/été.txt', Buffer.alloc(0)],
      ];
      for (const [path, data] of files) expect((await run(name, { op: 'put', path, dataBase64: data.toString('base64') })).status).toBe('ok');
      // A name with quotes travels escaped in the command's JSON, and comes back as it was sent.
      const paths = [...files.map(([path]) => path), '/hash/missing.py', '/hash/no "such" file.py', '/hash/sub', '/hash/small.py/inner'];
      const done = await run(name, { op: 'hash', paths });
      expect([done.status, done.error]).toEqual(['ok', null]);
      expect(done.result).toEqual({
        ...Object.fromEntries(files.map(([path, data]) => [path, sha256(data)])),
        '/hash/missing.py': null,
        '/hash/no "such" file.py': null,
        '/hash/sub': null,
        '/hash/small.py/inner': null,
      });
      // What no board should be asked is refused before it is queued.
      const tooMany = Array.from({ length: 33 }, (_, index) => `/hash/${index}.py`);
      const tooLong = Array.from({ length: 32 }, (_, index) => `/hash/${index}${'n'.repeat(150)}.py`); // over 4 KiB: more than a small board answers
      for (const bad of [[], tooMany, tooLong, ['/hash/../x.py'], ['relative.py'], ['/hash/a.py', '/hash//a.py']]) {
        await expect(lab.api.call('commands.send', { boards: name, request: { op: 'hash', paths: bad } })).rejects.toMatchObject({ code: 'bad_request' });
      }
      expect((await run(name, { op: 'rm', path: '/hash', recursive: true })).status).toBe('ok');
    });

    it('keeps a listing within 16 KiB, marking it truncated', async () => {
      const name = board(2);
      // 120 names of 150 bytes: about 20 KiB of listing.
      const names = Array.from({ length: 120 }, (_, index) => `${String(index).padStart(3, '0')}${'n'.repeat(147)}`);
      const outcomes: string[] = [];
      for (const file of names) outcomes.push((await run(name, { op: 'put', path: `/many/${file}`, dataBase64: '' })).error ?? 'ok');
      expect(outcomes).toEqual(names.map(() => 'ok'));
      const listing = await run(name, { op: 'ls', path: '/many' });
      expect(listing.status).toBe('ok');
      expect(listing.outputTruncated).toBe(true);
      const entries = listing.result as Array<[string, string, number]>;
      expect(entries.length).toBeGreaterThan(10);
      expect(entries.length).toBeLessThan(names.length);
      expect(Buffer.byteLength(JSON.stringify(entries))).toBeLessThanOrEqual(16 * 1024);
      expect(entries.map((entry) => entry[0])).toEqual(names.slice(0, entries.length));
      expect((await run(name, { op: 'rm', path: '/many', recursive: true })).status).toBe('ok');
    }, 180_000);

    it('gives user code the errno a board has for a missing file', async () => {
      const done = await run(board(0), {
        op: 'exec',
        code: "import errno\ntry:\n    open('/no-such-file')\nexcept OSError as e:\n    print(e.errno == errno.ENOENT, e.errno)",
      });
      expect(text(done)).toBe('True 2\n');
    });

    it('ends code that calls sys.exit() as finished, its output kept (§7.1)', async () => {
      const done = await run(board(0), { op: 'exec', code: 'import sys\nprint("before")\nsys.exit()\nprint("after")' });
      expect([done.status, text(done), text(done, 'stderr')]).toEqual(['ok', 'before\n', '']);
    });

    it('output split inside a UTF-8 character arrives whole', async () => {
      const done = await run(board(0), { op: 'exec', code: 'print("€" * 100)\nprint("ok")' });
      expect(text(done)).toBe(`${'€'.repeat(100)}\nok\n`);
    });

    it('shows its settings with secrets hidden and keeps settings it is given', async () => {
      expect((await run(board(2), { op: 'cfg_set', key: 'note', value: 'attic' })).status).toBe('ok');
      const settings = await run(board(2), { op: 'cfg_get' });
      expect(settings.result).toMatchObject({ name: board(2), note: 'attic', password: '********' });
      expect(JSON.stringify(settings.result)).not.toContain(lab.credentials(board(2)).password);
      await expect(lab.api.call('commands.send', { boards: board(2), request: { op: 'cfg_set', key: 'password', value: 'x' } })).rejects.toMatchObject({
        code: 'bad_request',
      });
      for (const key of ['name', 'hb']) {
        await expect(lab.api.call('commands.send', { boards: board(2), request: { op: 'cfg_set', key, value: key === 'hb' ? 0 : 'x' } })).rejects.toMatchObject(
          { code: 'bad_request' },
        );
      }
      const info = await run(board(2), { op: 'info' });
      // The .mpy ABI it loads (sys.implementation._mpy): its low byte is the .mpy version, 6 since MicroPython 1.19.
      expect((info.result as { mpy: number }).mpy & 0xff).toBe(6);
      expect(info.result).toMatchObject({
        mv: expect.stringMatching(/^\d+\.\d+\.\d+$/),
        p: expect.stringMatching(/^[a-z0-9_-]+$/),
        cv: expect.any(String),
        mf: expect.any(Number),
        ip: expect.any(String),
        boot: expect.any(String),
        mpy: expect.any(Number),
      });
    });

    // How soon a board turns offline (two heartbeat periods) is not asserted: on a busy
    // machine any limit fails. That it does, and comes back, is.
    it('reboots: offline, then online again with fresh globals', async () => {
      expect((await run(board(2), { op: 'exec', code: 'before_reboot = 1' })).status).toBe('ok');
      const sentAt = Date.now();
      expect((await run(board(2), { op: 'reboot' })).status).toBe('ok');
      const offline = await waitFor(
        () => events.find((event) => event.type === 'board.offline' && event.board.name === board(2) && event.at >= sentAt),
        10_000,
        'offline',
      );
      await waitFor(() => events.find((event) => event.type === 'board.online' && event.board.name === board(2) && event.at >= offline.at), 20_000, 'online');
      const after = await run(board(2), { op: 'exec', code: 'print(globals().get("before_reboot"))' });
      expect(text(after)).toBe('None\n');
      expect((await run(board(2), { op: 'cfg_get' })).result).toMatchObject({ note: 'attic' }); // settings survive
    });

    it('turns offline when it loses power', async () => {
      const offAt = Date.now();
      await lab.powerOff(board(1));
      await waitFor(() => events.find((event) => event.type === 'board.offline' && event.board.name === board(1) && event.at >= offAt), 10_000, 'offline');
      await lab.powerOn(board(1));
      await waitFor(() => online(board(1)), 20_000, 'online again');
    });

    it('runs a command sent while it was offline exactly once when it comes back', async () => {
      const name = board(0);
      // A counter in a file of the board's own: survives reboots, counts real runs.
      const counter = `/runs-${name}.txt`;
      const code = countingCode(counter);
      await lab.powerOff(name);
      await waitFor(async () => !(await online(name)), 10_000, 'offline');
      const command = await send(name, { op: 'exec', code });
      expect(command.boardOnline).toBe(false);
      await lab.powerOn(name);
      const done = await wait(command.cid, 30_000);
      expect([done.status, text(done)]).toEqual(['ok', 'run 1\n']);
      // A power cycle later, the command has not run again.
      await lab.powerOff(name);
      await lab.powerOn(name);
      await waitFor(() => online(name), 20_000, 'online again');
      const probe = await run(name, { op: 'exec', code: `print(open(${JSON.stringify(counter)}).read())` });
      expect(text(probe)).toBe('1\n');
    });

    /** Sends counting code through an armed fault: once it hit, the command ends ok and ran exactly once. */
    const runsOnceThrough = async (name: string, counter: string, fault: { hit: Promise<unknown> }) => {
      const command = await send(name, { op: 'exec', code: countingCode(counter) });
      await fault.hit;
      const done = await wait(command.cid, 30_000);
      expect([done.status, text(done)]).toEqual(['ok', 'run 1\n']);
      const probe = await run(name, { op: 'exec', code: `print(open(${JSON.stringify(counter)}).read())` });
      expect(text(probe)).toBe('1\n');
    };

    it('runs a command whose claim reply was lost exactly once, after reconnecting (§4.2)', async () => {
      const name = board(1);
      const counter = `/runs-lost-claim.txt`;
      // Redis moved the cursor; the board never heard of the command.
      await runsOnceThrough(name, counter, lab.proxy.dropReply(isClaimOfCommand));
    });

    it('sends a result that never reached Redis again after reconnecting; the command ran once (§6)', async () => {
      const name = board(1);
      const counter = `/runs-lost-result.txt`;
      const carriesResult = (request: string[]) => request[0]?.toUpperCase() === 'XADD' && request.includes('res');
      // The link went down with the result.
      await runsOnceThrough(name, counter, lab.proxy.dropRequest(carriesResult));
    });

    it('ends a command whose connection dropped while it printed, and takes the next one', async () => {
      const name = board(1);
      const command = await send(name, { op: 'exec', code: 'import time\nfor i in range(20):\n    print("tick", i)\n    time.sleep(0.1)\n' });
      await waitFor(() => events.find((event) => event.type === 'output' && event.cid === command.cid), 15_000, 'output');
      lab.proxy.cutAll(); // the wifi drops while the code runs
      const done = await wait(command.cid, 30_000);
      expect(done.status).toBe('ok');
      expect(text(done)).toContain('tick 0\n');
      const next = await run(name, { op: 'exec', code: 'print("next")' });
      expect([next.status, text(next)]).toEqual(['ok', 'next\n']);
    });

    it('runs a command only once its start reached Redis, so "not run" is always true (§4.2)', async () => {
      const name = board(1);
      const counter = `/runs-start-lost.txt`;
      const isStart = (request: string[]) => request[0]?.toUpperCase() === 'XADD' && request.includes('start');
      const fault = lab.proxy.dropRequest(isStart);
      const command = await send(name, { op: 'exec', code: countingCode(counter) });
      await fault.hit; // the start never reached Redis; the link is down
      await lab.powerOff(name);
      await lab.powerOn(name);
      const done = await wait(command.cid, 30_000);
      await waitFor(() => online(name), 20_000, 'online again');
      const probe = await run(name, { op: 'exec', code: `import os\nprint(${JSON.stringify(counter.slice(1))} in os.listdir('/'))` });
      // What the manager says and what happened agree: not run and no trace, or ran once.
      if (done.status === 'lost') expect([done.errorCode, text(probe)]).toEqual(['ENOTRUN', 'False\n']);
      else expect([done.status, text(done)]).toEqual(['ok', 'run 1\n']);
    });

    it('reports a command it took but never started before restarting as not run, at once (§4.3)', async () => {
      const name = board(1);
      const counter = `/runs-never.txt`;
      // The claim's reply is held back until the board has lost power: it took the
      // command (Redis moved its cursor) and never saw it.
      const fault = lab.proxy.delayReply(isClaimOfCommand, 120_000);
      const command = await send(name, { op: 'exec', code: countingCode(counter) }, { expireMs: 15_000 });
      await fault.hit;
      await lab.powerOff(name);
      await lab.powerOn(name);
      const done = await wait(command.cid, 30_000);
      expect(done).toMatchObject({ status: 'lost', errorCode: 'ENOTRUN' });
      expect(done.error).toMatch(/^not run: the board restarted/);
      await waitFor(() => online(name), 20_000, 'online again');
      const probe = await run(name, { op: 'exec', code: `import os\nprint(${JSON.stringify(counter.slice(1))} in os.listdir('/'))` });
      expect(text(probe)).toBe('False\n');
    });

    it('keeps its queue and history across a rename, and learns its new name', async () => {
      const name = board(0);
      const before = await run(name, { op: 'exec', code: 'print("before")' });
      await lab.powerOff(name);
      await waitFor(async () => !(await online(name)), 10_000, 'offline');
      const queued = await send(name, { op: 'exec', code: 'print("queued")' });
      const renamed = `${name}-renamed`;
      expect((await lab.api.call('boards.rename', { board: name, name: renamed })).name).toBe(renamed);
      lab.names[0] = renamed;
      await lab.powerOn(name);
      expect(text(await wait(queued.cid, 30_000))).toBe('queued\n');
      const history = (await lab.api.call('boards.history', { board: renamed })).map((entry) => entry.cid);
      expect(history).toEqual(expect.arrayContaining([before.cid, queued.cid]));
      const settings = await run(renamed, { op: 'cfg_get' });
      expect((settings.result as { name: string }).name).toBe(renamed); // the rename command ran before it
    });

    it('leaves its queue empty once it waits for work again: the command it ran is not kept (§4.2)', async () => {
      const name = board(2);
      expect((await run(name, { op: 'exec', code: 'print("queue")' })).status).toBe('ok');
      const own = lab.credentials(name);
      const connection = await RespConnection.connect({ host: '127.0.0.1', port: lab.redisPort });
      try {
        await connection.call('AUTH', own.user, own.password);
        const queued = async () => (await connection.call('XRANGE', boardKeys(own.id).cmd, '-', '+')) as unknown[];
        await waitFor(async () => (await queued()).length === 0, 20_000, 'an empty queue');
        // Still claims what comes next.
        expect(text(await run(name, { op: 'exec', code: 'print("next")' }))).toBe('next\n');
      } finally {
        connection.destroy();
      }
    });

    /** The proxy's view of one board's heartbeats and claims (any claim, with or without a command). */
    const requestsOf = (name: string) => {
      const keys = boardKeys(lab.credentials(name).id);
      return {
        heartbeat: ({ request }: { request: string[] }) => request[0] === 'XADD' && request[1] === keys.up && request.includes('hb'),
        claim: ({ request }: { request: string[] }) => request[0] === 'FCALL' && request[1] === 'cm_claim' && request[3] === keys.cmd,
      };
    };

    it('waits again after a heartbeat, without a claim: nothing came after its cursor (§4.2)', async () => {
      const { heartbeat, claim } = requestsOf(board(2));
      // The first heartbeat may be the one a board sends before the claim that follows a
      // command (§4.2: due heartbeats go first); the second ends a wait that timed out.
      await lab.proxy.delayReply(heartbeat, 0, 2).hit;
      // From one heartbeat to the next, an idle board only waits.
      const claims = lab.proxy.delayReply(claim, 0, 1_000);
      await lab.proxy.delayReply(heartbeat, 0).hit;
      claims.disarm();
      expect(claims.hits).toEqual([]);
      expect(await online(board(2))).toBe(true);
    });

    it('waits for the next command without a claim after running one (§4.2)', async () => {
      const name = board(2);
      const { heartbeat, claim } = requestsOf(name);
      const claims = lab.proxy.delayReply(claim, 0, 1_000);
      expect(text(await run(name, { op: 'exec', code: 'print("once")' }))).toBe('once\n');
      // Two heartbeats later the board is surely waiting again (the first may have been sent while it ran).
      await lab.proxy.delayReply(heartbeat, 0, 2).hit;
      claims.disarm();
      expect(claims.hits).toHaveLength(1); // the claim that took the command
      // The next command still wakes it.
      expect(text(await run(name, { op: 'exec', code: 'print("twice")' }))).toBe('twice\n');
    });

    it('its credentials work for itself only', async () => {
      const own = lab.credentials(board(1));
      const other = boardKeys(lab.credentials(board(2)).id);
      const connection = await RespConnection.connect({ host: '127.0.0.1', port: lab.redisPort });
      try {
        await connection.call('AUTH', own.user, own.password);
        const refusals = await Promise.all(
          [
            connection.call('XRANGE', other.cmd, '-', '+'),
            connection.call('XADD', other.cmd, '*', 'i', 'x', 'o', 'exec', 'c', 'print(1)'),
            connection.call('XADD', other.up, '*', 'k', 'hb'),
            connection.call('FCALL', 'cm_claim', '2', other.cmd, other.state, ''),
            connection.call('HGETALL', 'cm:{mgr}:boards'),
          ].map((attempt) =>
            attempt.then(
              () => 'ALLOWED',
              (error: unknown) => (error instanceof RespError ? error.code : String(error)),
            ),
          ),
        );
        expect(refusals).toEqual(['NOPERM', 'NOPERM', 'NOPERM', 'NOPERM', 'NOPERM']);
      } finally {
        connection.destroy();
      }
    });
  });
}

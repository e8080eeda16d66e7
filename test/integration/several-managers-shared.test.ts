/**
 * Two managers on one Redis serve one fleet (docs/ARCHITECTURE.md "Several managers"): the
 * standby forwards the fleet's routes to the active one through Redis and shows its events,
 * so a user of either sees the same boards, commands and jobs, and each command runs once
 * with one result. The active manager's embedded redis-server, the standby on it with the
 * manager's password; both in-process with their own data folders (as on two computers:
 * neither reaches the other's API); 100 virtual boards.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { dataPaths } from '../../electron/manager/data-dir.js';
import { startManager, waitFor } from '../helpers/lab.js';
import { runMbm } from '../helpers/mbm-cli.js';
import { startVirtualFleet, type VirtualFleet } from '../../electron/manager/virtual/virtual-fleet.js';
import { ApiRequestError, type EventSubscription } from '../../electron/manager/api/client.js';
import { FILES_STAGE_PATH, type ApiEvent } from '../../electron/manager/api/contract.js';

type Service = Awaited<ReturnType<typeof startManager>>;
type CommandEvent = Extract<ApiEvent, { type: 'command' }>['command'];

const BOARDS = 100;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const FINAL = new Set(['ok', 'error', 'timeout', 'expired', 'cancelled', 'lost']);

/** What one manager's event socket showed: each command's last final view. */
function watchCommands(events: ApiEvent[]): Map<string, CommandEvent> {
  const finals = new Map<string, CommandEvent>();
  for (const event of events) if (event.type === 'command' && FINAL.has(event.command.status)) finals.set(event.command.cid, event.command);
  return finals;
}

describe('two managers on one Redis, one fleet', () => {
  let active: Service;
  let standby: Service;
  let fleet: VirtualFleet;
  const subscriptions: EventSubscription[] = [];
  const activeEvents: ApiEvent[] = [];
  const standbyEvents: ApiEvent[] = [];

  beforeAll(async () => {
    // As a user would set it up: the desktop app with its embedded Redis, a second computer's
    // manager on that Redis with the manager's password (the embedded server's 1 MB command limit included).
    active = await startManager({ leaseTtlMs: 3_000 });
    const password = (await readFile(dataPaths(active.dataDir).managerPassword, 'utf8')).trim();
    const redisUrl = `redis://cm-manager:${encodeURIComponent(password)}@127.0.0.1:${active.redisPort}`;
    standby = await startManager({ redisUrl, redisPort: undefined, leaseTtlMs: 3_000 });
    expect((await standby.api.call('status', {})).manager.role).toBe('standby');
    subscriptions.push(await active.api.events((event) => activeEvents.push(event)));
    subscriptions.push(await standby.api.events((event) => standbyEvents.push(event)));
    // Enrolled through the standby: the active manager does it, once.
    fleet = await startVirtualFleet({ api: standby.api, count: BOARDS, prefix: 'two', board: { reconnectMinMs: 100 } });
    await waitFor(async () => (await standby.api.call('status', {})).boards.online === BOARDS, 30_000, 'boards online, as the standby sees them');
  }, 60_000);
  afterAll(async () => {
    for (const subscription of subscriptions) subscription.close();
    await fleet?.close();
    await standby?.close();
    await active?.close();
  });

  it('both list the same boards, and the standby shows the active one as such', async () => {
    const [onActive, onStandby] = await Promise.all([active.api.call('boards.list', {}), standby.api.call('boards.list', {})]);
    expect(onActive).toHaveLength(BOARDS);
    expect(onStandby).toEqual(onActive);
    expect((await standby.api.call('status', {})).manager).toMatchObject({ role: 'standby', active: { apiUrl: active.manager.apiUrl } });
  });

  it('a broadcast to 100 boards through each manager at once: every command runs once, one result each, both managers see every one', async () => {
    const sentAt = activeEvents.length;
    const sentAtStandby = standbyEvents.length;
    const [throughStandby, throughActive] = await Promise.all([
      standby.api.call('commands.send', { boards: 'two-*', request: { op: 'exec', code: 'print("via standby")' } }),
      active.api.call('commands.send', { boards: 'two-*', request: { op: 'exec', code: 'print("via active")' } }),
    ]);
    expect(throughStandby.commands).toHaveLength(BOARDS);
    expect(throughActive.commands).toHaveLength(BOARDS);
    const cids = [...throughStandby.commands, ...throughActive.commands].map((command) => command.cid);
    expect(new Set(cids).size).toBe(2 * BOARDS);

    // Each manager answers commands.wait for all 200, the other's included, with the same results.
    const [onStandby, onActive] = await Promise.all([
      standby.api.call('commands.wait', { cids, timeoutMs: 120_000 }),
      active.api.call('commands.wait', { cids, timeoutMs: 120_000 }),
    ]);
    expect(onStandby.map((command) => command.status)).toEqual(cids.map(() => 'ok'));
    expect(onStandby.map((command) => [command.cid, command.status, command.output.map((chunk) => chunk.text).join('')])).toEqual(
      onActive.map((command) => [command.cid, command.status, command.output.map((chunk) => chunk.text).join('')]),
    );
    const texts = new Map(onActive.map((command) => [command.cid, command.output.map((chunk) => chunk.text).join('')]));
    for (const command of throughStandby.commands) expect(texts.get(command.cid)).toBe('via standby\n');
    for (const command of throughActive.commands) expect(texts.get(command.cid)).toBe('via active\n');

    // Both event sockets showed every command end, with the same result. (An event carries the
    // command as it is when the event goes out, so a `running` sent in the turn the command
    // ended already says `ok`: ends are counted by command, not by event.)
    await waitFor(() => watchCommands(standbyEvents.slice(sentAtStandby)).size === 2 * BOARDS, 30_000, "the standby's clients saw every end");
    const seenByActive = watchCommands(activeEvents.slice(sentAt));
    const seenByStandby = watchCommands(standbyEvents.slice(sentAtStandby));
    expect([...seenByActive.keys()].sort()).toEqual([...cids].sort());
    for (const cid of cids) expect(seenByStandby.get(cid)).toEqual(seenByActive.get(cid));

    // One result per command where results are kept: each board's history has each of its two commands once.
    const names = Array.from({ length: BOARDS }, (_, i) => `two-${i + 1}`);
    const histories = await Promise.all(names.map((board) => standby.api.call('boards.history', { board, count: 50 })));
    const recorded = histories.flat().map((entry) => entry.cid);
    for (const cid of cids) expect(recorded.filter((seen) => seen === cid)).toHaveLength(1);
  }, 180_000);

  it("mbm on the standby's computer runs code on the fleet and prints its output live", async () => {
    const printed = await runMbm(['board-execute', 'two-[1-3]', '--code', 'print(6 * 7)'], { dataDir: standby.dataDir, cwd: standby.dataDir });
    expect(printed.code, printed.stdout + printed.stderr).toBe(0);
    expect(printed.stdout.match(/42/g)).toHaveLength(3);
  });

  it('a job started on the standby is one job, the same on both', async () => {
    const job = await standby.api.call('jobs.start', { kind: 'exec', boards: 'two-[1-5]', code: 'print(2 + 2)' });
    const done = await waitFor(
      async () => {
        const view = await active.api.call('jobs.get', { id: job.id });
        return view.state === 'done' ? view : undefined;
      },
      60_000,
      'job done',
    );
    expect(await standby.api.call('jobs.get', { id: job.id })).toEqual(done);
    const listed = (await standby.api.call('jobs.list', {})).filter((entry) => entry.id === job.id);
    expect(listed).toHaveLength(1);
  }, 90_000);

  it('an upload job started on the standby takes its staged files along; more than 16 MiB at once is refused before anything is sent', async () => {
    const stage = async (data: Buffer) => {
      const response = await fetch(`${standby.manager.apiUrl}${FILES_STAGE_PATH}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${standby.manager.apiToken}`, 'content-type': 'application/octet-stream' },
        body: data,
      });
      const body = (await response.json()) as { ok: boolean; result: { id: string } };
      expect(body.ok).toBe(true);
      return body.result.id;
    };
    // 3 MiB: its way through Redis is in parts (the embedded server refuses a command over 1 MB).
    const data = randomBytes(3 * 1024 * 1024);
    const file = await stage(data);
    const job = await standby.api.call('jobs.start', { kind: 'upload', boards: 'two-[1-3]', files: [{ file, path: '/along.bin' }] });
    const done = await waitFor(
      async () => {
        const view = await standby.api.call('jobs.get', { id: job.id });
        return view.state === 'done' ? view : undefined;
      },
      60_000,
      'upload job done',
    );
    expect(done.counts).toMatchObject({ ok: 3 });
    for (const name of ['two-1', 'two-2', 'two-3']) {
      expect(sha256(await fleet.byName(name)!.fs.readFile('/along.bin'))).toBe(sha256(data));
    }
    const big = [await stage(randomBytes(9 * 1024 * 1024)), await stage(randomBytes(9 * 1024 * 1024))];
    const jobsBefore = (await active.api.call('jobs.list', {})).length;
    const refused = await standby.api
      .call('jobs.start', { kind: 'upload', boards: 'two-1', files: big.map((id, index) => ({ file: id, path: `/big${index}.bin` })) })
      .catch((error: unknown) => error);
    expect((refused as ApiRequestError).status).toBe(400);
    expect((refused as ApiRequestError).message).toMatch(/more than 16 MiB, the most a standby passes on to the active manager at once/);
    expect((await active.api.call('jobs.list', {})).length).toBe(jobsBefore);
  }, 90_000);

  it("the standby answers the active one's refusals with their status, and its own hardware routes with 503", async () => {
    const unknown = await standby.api.call('boards.get', { board: 'no-such-board' }).catch((error: unknown) => error);
    expect(unknown).toBeInstanceOf(ApiRequestError);
    expect((unknown as ApiRequestError).status).toBe(404);
    expect((unknown as ApiRequestError).message).toMatch(/no-such-board/);
    const usb = await standby.api.call('usb.ports', {}).catch((error: unknown) => error);
    expect((usb as ApiRequestError).status).toBe(503);
    expect((usb as ApiRequestError).message).toMatch(/standing by; the active one is/);
  });
});

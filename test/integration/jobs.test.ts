/**
 * Jobs kept by the service: a status per board fed by real commands on virtual boards,
 * waiting while a board is offline, kept across a restart of the service, and bounded.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startLab, startManager, waitFor, type Lab } from '../helpers/lab.js';
import { ApiRequestError } from '../../electron/manager/api/client.js';
import type { JobView } from '../../electron/manager/api/contract.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function stage(lab: Lab, data: Buffer): Promise<string> {
  const response = await fetch(`${lab.manager.apiUrl}/api/files.stage`, {
    method: 'POST',
    body: data,
    headers: { authorization: `Bearer ${lab.manager.apiToken}`, 'content-type': 'application/octet-stream' },
  });
  const body = (await response.json()) as { ok: boolean; result: { id: string; size: number; sha256: string } };
  expect(body.ok).toBe(true);
  expect(body.result).toMatchObject({ size: data.length, sha256: sha256(data) });
  return body.result.id;
}

async function finished(lab: Lab, id: string, timeoutMs = 20_000): Promise<JobView> {
  return waitFor(
    async () => {
      const job = await lab.api.call('jobs.get', { id });
      return job.state === 'done' ? job : null;
    },
    timeoutMs,
    `job ${id} to finish`,
  );
}

describe('jobs', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await startLab({ boards: 3, prefix: 'job', heartbeatS: 1 });
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('an exec job reports each board; an offline board waits and runs when it returns', async () => {
    const sleeper = lab.fleet.byName('job-3')!;
    await sleeper.stop();
    await waitFor(async () => !(await lab.api.call('boards.get', { board: 'job-3' })).online, 10_000, 'job-3 offline');
    const started = await lab.api.call('jobs.start', { kind: 'exec', boards: 'job-*', code: 'print(6 * 7)' });
    expect(started).toMatchObject({ kind: 'exec', state: 'running', total: 3 });
    // Offline from the start: waiting, not queued, before its command is even sent.
    expect((await lab.api.call('jobs.get', { id: started.id })).targets.find((target) => target.board === 'job-3')?.status).toBe('waiting');
    await waitFor(async () => (await lab.api.call('jobs.get', { id: started.id })).counts.ok === 2, 10_000, 'two boards done');
    const midway = await lab.api.call('jobs.get', { id: started.id });
    expect(midway.state).toBe('running');
    expect(midway.targets.find((target) => target.board === 'job-3')?.status).toBe('waiting');
    sleeper.start();
    const done = await finished(lab, started.id);
    expect(done.counts).toMatchObject({ ok: 3, failed: 0 });
    expect(done.targets.map((target) => target.output)).toEqual(['42\n', '42\n', '42\n']);
  });

  it('an upload job writes staged files on every board with equal sha256 (folders kept)', async () => {
    const main = Buffer.from('print("hello")\n');
    const blob = Buffer.from(Array.from({ length: 50_000 }, (_, index) => (index * 13) % 256));
    const files = [
      { file: await stage(lab, main), path: '/app/main.py' },
      { file: await stage(lab, blob), path: '/app/data/blob.bin' },
    ];
    const job = await finished(lab, (await lab.api.call('jobs.start', { kind: 'upload', boards: 'job-[1-2]', files })).id);
    expect(job.targets.map((target) => [target.status, target.done, target.total])).toEqual([
      ['ok', 2, 2],
      ['ok', 2, 2],
    ]);
    expect(job.targets[0]!.message).toBe('2 files written, sha256 checked');
    for (const name of ['job-1', 'job-2']) {
      const fs = lab.fleet.byName(name)!.fs;
      expect(sha256(await fs.readFile('/app/main.py'))).toBe(sha256(main));
      expect(sha256(await fs.readFile('/app/data/blob.bin'))).toBe(sha256(blob));
    }
  });

  it("an upload job's board is done only once every file is written, even when the first is written before the next is queued", async () => {
    const fleet = lab.manager.fleet;
    const send = fleet.send.bind(fleet);
    let first: string | undefined;
    // The second file is queued only after the first is written: what a busy service does with a fast board.
    const spy = vi.spyOn(fleet, 'send').mockImplementation(async (board, request, options) => {
      if (request.op === 'put' && request.path === '/slow/b.txt') {
        await waitFor(() => first !== undefined && fleet.dispatcher.get(first)?.status === 'ok', 10_000, 'the first file written');
      }
      const view = await send(board, request, options);
      if (request.op === 'put' && request.path === '/slow/a.txt') first = view.cid;
      return view;
    });
    try {
      const a = Buffer.from('first\n');
      const b = Buffer.from('second\n');
      const files = [
        { file: await stage(lab, a), path: '/slow/a.txt' },
        { file: await stage(lab, b), path: '/slow/b.txt' },
      ];
      const job = await finished(lab, (await lab.api.call('jobs.start', { kind: 'upload', boards: 'job-1', files })).id);
      expect(job.targets.map((target) => [target.status, target.done, target.total])).toEqual([['ok', 2, 2]]);
      expect(sha256(await lab.fleet.byName('job-1')!.fs.readFile('/slow/b.txt'))).toBe(sha256(b));
    } finally {
      spy.mockRestore();
    }
  });

  it('a failing command fails its board only, with the error', async () => {
    const job = await finished(lab, (await lab.api.call('jobs.start', { kind: 'exec', boards: 'job-1,job-2', code: 'import sys\nif sys.platform: 1/0' })).id);
    expect(job.counts.failed).toBe(2);
    expect(job.targets[0]!.message).toMatch(/ZeroDivisionError/);
  });

  it('tag and remove jobs act at once; bad input changes nothing', async () => {
    const tagged = await finished(lab, (await lab.api.call('jobs.start', { kind: 'tag', boards: 'job-[1-2]', add: ['Porch'], remove: [] })).id);
    expect(tagged.counts.ok).toBe(2);
    expect((await lab.api.call('boards.get', { board: 'job-1' })).tags).toEqual(['porch']);
    expect((await lab.api.call('boards.list', {})).filter((board) => board.tags.includes('porch')).map((board) => board.name)).toEqual(['job-1', 'job-2']);
    await expect(lab.api.call('jobs.start', { kind: 'upload', boards: 'job-1', files: [{ file: 'sAAAAAAAAAAAAAAAA', path: '/x' }] })).rejects.toThrow(
      /no longer held by the service/,
    );
    await expect(lab.api.call('jobs.start', { kind: 'exec', boards: 'nope-*', code: 'print(1)' })).rejects.toBeInstanceOf(ApiRequestError);
    await lab.api.call('boards.enroll', { name: 'doomed' });
    const removed = await finished(lab, (await lab.api.call('jobs.start', { kind: 'remove', boards: 'doomed' })).id);
    expect(removed.counts.ok).toBe(1);
    await expect(lab.api.call('boards.get', { board: 'doomed' })).rejects.toThrow(/no board/);
  });
});

describe('jobs across a restart of the service', () => {
  it('a finished job is still listed, with its boards, after the service restarts', async () => {
    const first = await startManager();
    const dataDir = first.dataDir;
    const port = first.redisPort;
    await first.api.call('boards.enrollMany', { names: ['keep-1', 'keep-2'] });
    const job = await first.api.call('jobs.start', { kind: 'tag', boards: 'keep-*', add: ['shelf'], remove: [] });
    await waitFor(async () => (await first.api.call('jobs.get', { id: job.id })).state === 'done', 10_000, 'tag job done');
    // Saved within a second; stop() saves what is left.
    await first.manager.stop();
    const second = await startManager({ dataDir, redisPort: port });
    try {
      const listed = await second.api.call('jobs.list', {});
      expect(listed.map((item) => item.id)).toContain(job.id);
      const again = await second.api.call('jobs.get', { id: job.id });
      expect(again.targets.map((target) => [target.board, target.status])).toEqual([
        ['keep-1', 'ok'],
        ['keep-2', 'ok'],
      ]);
    } finally {
      await second.manager.stop();
      await first.close();
    }
  });
});

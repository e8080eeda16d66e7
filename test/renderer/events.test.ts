import { describe, expect, it } from 'vitest';
import type { BoardSummary, JobSummary, JobView, SerialPortInfo } from '../../electron/manager/api/contract.js';
import { applyBoardEvents } from '../../renderer/src/lib/board-events.js';
import { applyJobEvent, upsertSummary } from '../../renderer/src/lib/job-events.js';
import { applyPortChange } from '../../renderer/src/lib/ports.js';
import { boardPathFor, checkBoardFolder } from '../../renderer/src/lib/file-drop.js';

const board = (id: string, online = true): BoardSummary => ({
  id,
  name: `n-${id}`,
  online,
  lastSeen: 1,
  platform: null,
  micropython: null,
  client: null,
  ip: null,
  memFree: null,
  heartbeatS: 5,
  enrolledAt: 0,
  busy: null,
  tags: [],
  needsReset: false,
  virtual: false,
  disabled: null,
});

describe('board events', () => {
  it('applies a batch: replace, activity, removal; reports boards that went offline', () => {
    const boards = new Map([
      ['a', board('a')],
      ['b', board('b')],
    ]);
    const offline = applyBoardEvents(boards, [
      {
        type: 'boards.activity',
        boards: [
          { id: 'a', lastSeen: 99, memFree: 1234, busy: 'c1' },
          { id: 'zz', lastSeen: 1, memFree: 1, busy: null },
        ],
      },
      { type: 'board.offline', board: board('b', false), reason: 'no heartbeat' },
      { type: 'board.removed', boardId: 'a', name: 'n-a' },
      { type: 'board.enrolled', board: board('c', false) },
    ]);
    expect(offline).toEqual(['n-b']);
    expect([...boards.keys()]).toEqual(['b', 'c']);
  });

  it('a revoked or suspended board going offline is not reported as news (its badge says it)', () => {
    const boards = new Map([['a', board('a')]]);
    const revoked: BoardSummary = { ...board('a', false), disabled: { kind: 'revoked', reason: 'revoked by the user', at: 1 } };
    expect(applyBoardEvents(boards, [{ type: 'board.offline', board: revoked, reason: 'revoked' }])).toEqual([]);
    expect(boards.get('a')?.disabled?.kind).toBe('revoked');
  });

  it('applies activity for 10,000 boards in one batch', () => {
    const boards = new Map(Array.from({ length: 10_000 }, (_, index) => [`b${index}`, board(`b${index}`)]));
    applyBoardEvents(boards, [{ type: 'boards.activity', boards: [...boards.keys()].map((id) => ({ id, lastSeen: 5, memFree: 7, busy: null })) }]);
    expect([...boards.values()].every((item) => item.lastSeen === 5 && item.memFree === 7)).toBe(true);
  });
});

describe('job events', () => {
  const summary = (id: string, createdAt: number, state: 'running' | 'done' = 'running'): JobSummary => ({
    id,
    kind: 'exec',
    title: id,
    createdAt,
    finishedAt: null,
    state,
    total: 2,
    progress: null,
    phases: [],
    port: null,
    counts: { queued: 2, waiting: 0, running: 0, ok: 0, failed: 0 },
  });
  it('keeps the list newest first and merges changed boards into an open job', () => {
    const list = upsertSummary(upsertSummary([], summary('j1', 1)), summary('j2', 2));
    expect(list.map((job) => job.id)).toEqual(['j2', 'j1']);
    const view: JobView = {
      ...summary('j1', 1),
      targets: [
        { board: 'a', boardId: 'a', status: 'queued', message: null, done: 0, total: 1, cids: ['c1'], output: null },
        { board: 'b', boardId: 'b', status: 'queued', message: null, done: 0, total: 1, cids: ['c2'], output: null },
      ],
    };
    const next = applyJobEvent(view, {
      type: 'job',
      job: summary('j1', 1, 'running'),
      targets: [{ index: 1, board: 'b', boardId: 'b', status: 'ok', message: null, done: 1, total: 1, cids: ['c2'], output: '42\n' }],
    });
    expect(next.targets.map((target) => target.status)).toEqual(['queued', 'ok']);
    expect(view.targets[1]!.status).toBe('queued');
  });
});

describe('ports and dropped files', () => {
  it('keeps ESP adapters first as ports come and go', () => {
    const pty: SerialPortInfo = { path: '/tmp/tty', friendlyName: 'Virtual serial port (tty)', adapter: 'pty', likelyEsp: false };
    const cp2102: SerialPortInfo = { path: '/dev/ttyUSB0', friendlyName: 'CP210x (ttyUSB0)', adapter: 'cp210x', likelyEsp: true };
    let ports = applyPortChange([], { type: 'usb.port', kind: 'added', port: pty });
    ports = applyPortChange(ports, { type: 'usb.port', kind: 'added', port: cp2102 });
    expect(ports.map((port) => port.path)).toEqual(['/dev/ttyUSB0', '/tmp/tty']);
    expect(applyPortChange(ports, { type: 'usb.port', kind: 'removed', port: cp2102 }).map((port) => port.path)).toEqual(['/tmp/tty']);
  });

  it('puts dropped files under the chosen folder, folders kept, and checks typed folders', () => {
    expect(boardPathFor('/', 'main.py')).toBe('/main.py');
    expect(boardPathFor('/lib', 'project/drivers/x.py')).toBe('/lib/project/drivers/x.py');
    expect(boardPathFor('/lib/', '../../etc/x')).toBe('/lib/etc/x');
    expect(checkBoardFolder('lib')).toMatchObject({ ok: false });
    expect(checkBoardFolder('/a/../b')).toMatchObject({ ok: false });
    expect(checkBoardFolder('//lib//')).toEqual({ ok: true, folder: '/lib' });
  });
});

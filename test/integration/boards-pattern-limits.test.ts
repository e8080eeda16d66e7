/**
 * BOARDS patterns a careless or hostile caller can send (issue 11 point 1), through the
 * real API of a service running in this process: ranges that expand to billions of names
 * are refused before any is built, a glob that made a regular expression backtrack for
 * half a minute is answered, error messages name at most 10 boards, and selections larger
 * than the pattern limit still work through globs and tags (a tag job over 401 boards).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiRequestError } from '../../electron/manager/api/client.js';
import { startManager, waitFor } from '../helpers/lab.js';

const MiB = 1024 * 1024;
/** What refusing three patterns may add to this process (which runs the service): a few strings, not millions. */
const RSS_GROWTH_BOUND_BYTES = 32 * MiB;
const LONG_A = 'a'.repeat(32);
const LONG_B = 'a'.repeat(31) + 'b';
const MANY = Array.from({ length: 401 }, (_, index) => `many-${index + 1}`);

type Service = Awaited<ReturnType<typeof startManager>>;

async function refusal(call: Promise<unknown>): Promise<ApiRequestError> {
  const error = await call.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ApiRequestError);
  return error as ApiRequestError;
}

describe('BOARDS patterns cannot take the service down', () => {
  let service: Service;
  beforeAll(async () => {
    service = await startManager();
    await service.api.call('boards.enrollMany', { names: [LONG_A, LONG_B, ...MANY] });
  });
  afterAll(async () => {
    await service?.close();
  });

  const send = (boards: string) => service.api.call('commands.send', { boards, request: { op: 'ls', path: '/' } });

  it('refuses ranges of ten billion and ten million names with the count and the limit, without the service growing', async () => {
    const before = process.memoryUsage().rss;
    const billions = await refusal(send('x-[0-99999][0-99999]'));
    expect(billions.status).toBe(400);
    expect(billions.message).toContain('names 10,000,000,000 boards; at most 400 names, globs and tags at once');
    expect(billions.message).toContain('tag:NAME');
    const millions = await refusal(send('x-[0-99999][0-99]'));
    expect(millions.status).toBe(400);
    expect(millions.message).toContain('names 10,000,000 boards');
    expect(process.memoryUsage().rss - before).toBeLessThan(RSS_GROWTH_BOUND_BYTES);
    expect((await service.api.call('status', {})).boards.total).toBe(2 + MANY.length);
  });

  it('answers a glob of sixteen "*a" then "*b" against 32-character names', async () => {
    const glob = '*a'.repeat(16) + '*b';
    const started = performance.now();
    const { commands } = await send(glob);
    console.log(`bench: commands.send ${glob} over ${2 + MANY.length} boards: ${(performance.now() - started).toFixed(0)} ms`);
    expect(commands.map((command) => command.board)).toEqual([LONG_B]);
    const unmatched = await refusal(send('*a'.repeat(16) + '*c'));
    expect(unmatched.message).toContain('no boards match');
  });

  it('names at most 10 boards in a message, then says how many more', async () => {
    const unknown = await refusal(send('nope-[1-50]'));
    expect(unknown.status).toBe(404);
    expect(unknown.message).toContain(
      'no board named "nope-1", "nope-2", "nope-3", "nope-4", "nope-5", "nope-6", "nope-7", "nope-8", "nope-9", "nope-10" and 40 more',
    );
    expect(unknown.message).not.toContain('nope-11');
    const globs = await refusal(send(Array.from({ length: 12 }, (_, index) => `nope-${index}-*`).join(',')));
    expect(globs.message).toMatch(/no boards match "nope-0-\*", .*"nope-9-\*" and 2 more$/);
  });

  it('selects more boards than the pattern limit through a glob, in a tag job and in boards.tag', async () => {
    const job = await service.api.call('jobs.start', { kind: 'tag', boards: 'many-*', add: ['rack'], remove: [] });
    const done = await waitFor(
      async () => {
        const view = await service.api.call('jobs.get', { id: job.id });
        return view.state === 'done' ? view : null;
      },
      20_000,
      'the tag job to finish',
    );
    expect(done.counts.ok).toBe(MANY.length);
    expect((await service.api.call('boards.list', {})).filter((board) => board.tags.includes('rack'))).toHaveLength(MANY.length);
    expect(await service.api.call('boards.tag', { boards: 'tag:rack', add: [], remove: ['rack'] })).toHaveLength(MANY.length);
  });
});

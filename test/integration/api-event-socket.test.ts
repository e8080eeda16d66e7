/**
 * The events WebSocket on the real API server (in this process, so its memory can be
 * watched) and real sockets: a burst of events arrives complete and in order through
 * ApiClient.events (batched frames) and to a client that does not ask for batches (one event
 * per frame), a command's superseded states are dropped within a batch but no output is, and
 * a subscriber that stops reading costs a bounded amount of memory, then gets a `resync`
 * marker and the events from then on (or, not batching, is closed).
 */
import type net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ApiClient, eventsOfFrame, type EventSubscription } from '../../electron/manager/api/client.js';
import type { ApiEvent, CommandView } from '../../electron/manager/api/contract.js';
import type { ApiContext } from '../../electron/manager/api/routes.js';
import { ApiServer } from '../../electron/manager/api/server.js';
import { waitFor } from '../helpers/lab.js';

const TOKEN = 'event-socket-test-token';
const MiB = 1024 * 1024;

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

/** Memory this process holds (the server's included), after a full collection. */
function heldBytes(): number {
  collectGarbage();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function output(index: number, text = `line ${index}\n`): ApiEvent {
  return { type: 'output', cid: `c${index % 7}`, boardId: `b${index % 7}`, board: `board-${index % 7}`, stream: 'stdout', text };
}

function command(cid: string, status: CommandView['status']): ApiEvent {
  const view: CommandView = {
    cid,
    boardId: `b-${cid}`,
    board: `board-${cid}`,
    op: 'exec',
    summary: 'print(1)',
    status,
    createdAt: 1,
    startedAt: status === 'queued' ? null : 2,
    finishedAt: status === 'ok' ? 3 : null,
    expiresAt: 10,
    timeoutMs: 5,
    output: [],
    outputTruncated: false,
    stopRequested: false,
    transferredBytes: 0,
    error: null,
    errorCode: null,
    result: null,
  };
  return { type: 'command', command: view };
}

/** A raw client of the events socket: every frame's text, as it came. */
async function rawSubscriber(url: string, query = ''): Promise<{ socket: WebSocket; frames: string[] }> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/events${query}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const frames: string[] = [];
  socket.on('message', (data) => frames.push(data.toString()));
  await waitFor(() => frames.length > 0, 10_000, 'hello');
  expect(JSON.parse(frames.shift()!)).toEqual({ type: 'hello', version: '1' });
  return { socket, frames };
}

/** Stops reading the client's TCP socket (as a frozen client would), or reads again. */
function tcpOf(socket: WebSocket): net.Socket {
  return (socket as unknown as { _socket: net.Socket })._socket;
}

describe('events socket', () => {
  let server: ApiServer;
  let url: string;
  const closers: Array<() => void> = [];

  async function startServer(maxEventBufferedBytes?: number): Promise<void> {
    server = new ApiServer({ context: {} as ApiContext, token: TOKEN, log: () => undefined, uiRoot: '/nonexistent-ui', maxEventBufferedBytes });
    url = await server.listen();
  }

  beforeEach(() => {
    closers.length = 0;
  });

  afterEach(async () => {
    for (const close of closers) close();
    await server?.close();
  });

  it('hands on a burst complete and in order, batched or one event per frame', async () => {
    await startServer();
    const received: ApiEvent[] = [];
    const subscription: EventSubscription = await new ApiClient(url, TOKEN).events((event) => received.push(event));
    closers.push(() => subscription.close());
    const plain = await rawSubscriber(url);
    closers.push(() => plain.socket.close());

    // 5,000 events: some in one turn (past the size at which a batch goes out at once), the rest 50 a turn.
    const sent: ApiEvent[] = [];
    for (let index = 0; index < 5_000; index++)
      sent.push(
        index % 10 === 0 ? { type: 'board.removed', boardId: `b${index}`, name: `n${index}` } : output(index, `${index} `.repeat(index < 3_000 ? 150 : 1)),
      );
    for (let index = 0; index < 3_000; index++) server.broadcast(sent[index]!);
    for (let index = 3_000; index < sent.length; index++) {
      server.broadcast(sent[index]!);
      if (index % 50 === 0) await nextTurn();
    }
    await waitFor(() => received.length >= sent.length && plain.frames.length >= sent.length, 20_000, 'every event');
    expect(received).toEqual(sent);
    expect(plain.frames.map((frame) => JSON.parse(frame) as ApiEvent)).toEqual(sent);
  });

  it('keeps only the latest state of a command within a batch, and every output, in order', async () => {
    await startServer();
    const received: ApiEvent[] = [];
    const subscription = await new ApiClient(url, TOKEN).events((event) => received.push(event));
    closers.push(() => subscription.close());
    const first = output(1, 'a');
    const second = output(2, 'b');
    server.broadcast(command('c1', 'queued'));
    server.broadcast(command('c2', 'queued'));
    server.broadcast(command('c1', 'running'));
    server.broadcast(first);
    server.broadcast(command('c1', 'ok'));
    server.broadcast(second);
    await nextTurn();
    server.broadcast(command('c2', 'running'));
    await waitFor(() => received.length >= 5, 10_000, 'the batch and the next');
    expect(received).toEqual([command('c2', 'queued'), first, command('c1', 'ok'), second, command('c2', 'running')]);
  });

  it('reads one event or a batch from a frame, and skips what is not an event', () => {
    expect(eventsOfFrame('{"type":"resync"}')).toEqual([{ type: 'resync' }]);
    expect(eventsOfFrame('[{"type":"resync"},{"type":"hello","version":"1"}]')).toEqual([{ type: 'resync' }, { type: 'hello', version: '1' }]);
    expect(eventsOfFrame('not json')).toEqual([]);
    expect(eventsOfFrame('[null, 3, {"type":"resync"}]')).toEqual([{ type: 'resync' }]);
  });

  it('holds a bounded amount for a subscriber that stops reading, then re-syncs it', async () => {
    const limit = 1 * MiB;
    await startServer(limit);
    const slow = await rawSubscriber(url, '?batch=1');
    closers.push(() => slow.socket.terminate());
    const tcp = tcpOf(slow.socket);
    tcp.pause();
    const before = heldBytes();

    // 64 MiB of events to a client that reads none: the kernel's socket buffers take a few
    // MiB, the service at most its limit and a batch; the rest is dropped.
    const chunk = 'x'.repeat(16 * 1024);
    let published = 0;
    let maxBuffered = 0;
    while (published < 4_096) {
      for (let turn = 0; turn < 16; turn++) server.broadcast(output(published++, chunk));
      await nextTurn();
      maxBuffered = Math.max(maxBuffered, ...server.eventSubscribers().map((subscriber) => subscriber.bufferedBytes));
    }
    const [stats] = server.eventSubscribers();
    expect(stats).toMatchObject({ batched: true, behind: true, resyncs: 1 });
    expect(stats!.droppedEvents).toBeGreaterThan(0);
    expect(maxBuffered).toBeLessThanOrEqual(limit + 2 * MiB);
    expect(heldBytes() - before).toBeLessThan(8 * MiB);

    // Reading again: what was sent before the drop, in order, then the marker, then what comes next.
    tcp.resume();
    await waitFor(() => server.eventSubscribers()[0]?.behind === false, 20_000, 'the marker written out');
    const after = output(published, 'after');
    server.broadcast(after);
    const events = () => slow.frames.flatMap(eventsOfFrame);
    await waitFor(() => events().some((event) => event.type === 'output' && event.text === 'after'), 20_000, 'the event after the resync');
    const all = events();
    const marker = all.findIndex((event) => event.type === 'resync');
    expect(marker).toBeGreaterThan(0);
    expect(all.slice(0, marker)).toEqual(Array.from({ length: marker }, (_, index) => output(index, chunk)));
    expect(all.slice(marker + 1)).toEqual([after]);
    expect(server.eventSubscribers()[0]).toMatchObject({ behind: false, resyncs: 1 });
  });

  it('closes a subscriber that does not batch and stops reading, rather than buffer for it', async () => {
    await startServer(1 * MiB);
    const slow = await rawSubscriber(url);
    closers.push(() => slow.socket.terminate());
    tcpOf(slow.socket).pause();
    const chunk = 'x'.repeat(16 * 1024);
    let published = 0;
    while (server.eventSubscribers().length > 0 && published < 8_192) {
      for (let turn = 0; turn < 16; turn++) server.broadcast(output(published++, chunk));
      await nextTurn();
    }
    expect(server.eventSubscribers()).toEqual([]);
  });
});

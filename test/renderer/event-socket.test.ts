import { describe, expect, it } from 'vitest';
import { EventSocket, backoffDelay, batchedUrl, type SocketLike } from '../../renderer/src/lib/event-socket.js';
import type { ApiEvent } from '../../electron/manager/api/contract.js';

class FakeSocket implements SocketLike {
  onopen: SocketLike['onopen'] = null;
  onmessage: SocketLike['onmessage'] = null;
  onclose: SocketLike['onclose'] = null;
  onerror: SocketLike['onerror'] = null;
  closed = false;
  close(): void {
    this.closed = true;
  }
  hello(): void {
    this.onmessage?.({ data: JSON.stringify({ type: 'hello', version: '1' }) });
  }
}

describe('event socket', () => {
  it('backs off 0.5 s doubling to 10 s, with jitter', () => {
    expect(backoffDelay(0, 500, 10_000, () => 0.5)).toBe(500);
    expect(backoffDelay(3, 500, 10_000, () => 0.5)).toBe(4_000);
    expect(backoffDelay(10, 500, 10_000, () => 0.5)).toBe(10_000);
    expect(backoffDelay(0, 500, 10_000, () => 0)).toBe(375);
    expect(backoffDelay(0, 500, 10_000, () => 1)).toBe(625);
  });

  it('delivers events, reconnects after a drop, and asks for a re-sync each time it is live again', () => {
    const sockets: FakeSocket[] = [];
    const timers: Array<() => void> = [];
    const states: string[] = [];
    const syncs: boolean[] = [];
    const events: ApiEvent[] = [];
    const socket = new EventSocket({
      url: 'ws://x/api/events',
      create: () => {
        const fake = new FakeSocket();
        sockets.push(fake);
        return fake;
      },
      onEvent: (event) => events.push(event),
      onSync: (reconnected) => syncs.push(reconnected),
      onState: (state) => states.push(state),
      random: () => 0.5,
      setTimer: (callback) => timers.push(callback),
      clearTimer: () => undefined,
    });
    socket.start();
    sockets[0]!.hello();
    sockets[0]!.onmessage?.({ data: JSON.stringify({ type: 'board.removed', boardId: 'b1', name: 'x' }) });
    sockets[0]!.onmessage?.({ data: 'not json' });
    expect(events).toEqual([{ type: 'board.removed', boardId: 'b1', name: 'x' }]);
    sockets[0]!.onclose?.({ code: 1006 });
    expect(states).toEqual(['connecting', 'open', 'reconnecting']);
    timers.shift()!();
    sockets[1]!.onclose?.({ code: 1006 });
    timers.shift()!();
    sockets[2]!.hello();
    expect(syncs).toEqual([false, true]);
    expect(states.at(-1)).toBe('open');
    socket.stop();
    expect(sockets[2]!.closed).toBe(true);
  });

  it('asks for batches and hands on a batch one event at a time, in order; resync re-syncs the stores', () => {
    const urls: string[] = [];
    const sockets: FakeSocket[] = [];
    const calls: string[] = [];
    const socket = new EventSocket({
      url: 'ws://x/api/events',
      create: (url) => {
        urls.push(url);
        const fake = new FakeSocket();
        sockets.push(fake);
        return fake;
      },
      onEvent: (event) => calls.push(event.type === 'output' ? `output ${event.text}` : event.type),
      onSync: (reconnected) => calls.push(`sync ${reconnected}`),
      onState: () => undefined,
      setTimer: () => undefined,
      clearTimer: () => undefined,
    });
    socket.start();
    expect(urls).toEqual(['ws://x/api/events?batch=1']);
    sockets[0]!.hello();
    const burst: ApiEvent[] = Array.from({ length: 1_000 }, (_, index) => ({
      type: 'output',
      cid: 'c',
      boardId: 'b',
      board: 'n',
      stream: 'stdout',
      text: String(index),
    }));
    sockets[0]!.onmessage?.({ data: JSON.stringify(burst.slice(0, 600)) });
    sockets[0]!.onmessage?.({ data: JSON.stringify(burst[600]) }); // a single-event frame, as older services send
    sockets[0]!.onmessage?.({ data: JSON.stringify([...burst.slice(601, 700), { type: 'resync' }, ...burst.slice(700)]) });
    const outputs = burst.map((event) => `output ${(event as { text: string }).text}`);
    expect(calls).toEqual(['sync false', ...outputs.slice(0, 700), 'sync true', ...outputs.slice(700)]);
    socket.stop();
  });

  it('adds batch=1 to a URL that has a query already', () => {
    expect(batchedUrl('ws://x/api/events?a=b')).toBe('ws://x/api/events?a=b&batch=1');
  });
});

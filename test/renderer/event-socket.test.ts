import { describe, expect, it } from 'vitest';
import { EventSocket, backoffDelay, type SocketLike } from '../../renderer/src/lib/event-socket.js';
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
});

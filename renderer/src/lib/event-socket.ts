/**
 * The one WebSocket of service events. Reconnects with backoff (0.5 s doubling to 10 s,
 * with jitter) and tells its owner when it is connected again, so stores can re-sync what
 * they may have missed; so it does when the service says it dropped events (`resync`,
 * when this page did not read them fast enough). Asks for batches (`?batch=1`: a frame
 * may be a JSON array of events) and hands on one event at a time, in order. Pure of DOM
 * apart from the WebSocket it is given a factory for.
 */
import type { ApiEvent } from '../../../electron/manager/api/contract.js';

export type SocketState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface SocketLike {
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  close(): void;
}

export interface EventSocketOptions {
  url: string;
  create?: (url: string) => SocketLike;
  onEvent: (event: ApiEvent) => void;
  /** The stream is (again) live: called after the service's hello, first time and after each reconnect, and after events were dropped. */
  onSync: (reconnected: boolean) => void;
  onState: (state: SocketState) => void;
  minDelayMs?: number;
  maxDelayMs?: number;
  random?: () => number;
  setTimer?: (callback: () => void, ms: number) => unknown;
  clearTimer?: (timer: unknown) => void;
}

export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 16));
  // ±25 % jitter so a hundred open windows do not reconnect in lockstep.
  return Math.round(base * (0.75 + random() * 0.5));
}

/** The events of one frame: one event, or a batch (a JSON array); none when it is not JSON. */
export function eventsOfFrame(text: string): ApiEvent[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  return (Array.isArray(parsed) ? parsed : [parsed]).filter((event): event is ApiEvent => typeof (event as ApiEvent | null)?.type === 'string');
}

/** The events URL asking for batches (the contract's `?batch=1`). */
export function batchedUrl(url: string): string {
  return `${url}${url.includes('?') ? '&' : '?'}batch=1`;
}

export class EventSocket {
  private socket: SocketLike | null = null;
  private attempt = 0;
  private everSynced = false;
  private timer: unknown = null;
  private stopped = false;

  constructor(private readonly options: EventSocketOptions) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) (this.options.clearTimer ?? clearTimeout)(this.timer as ReturnType<typeof setTimeout>);
    this.socket?.close();
    this.socket = null;
    this.options.onState('closed');
  }

  private connect(): void {
    this.options.onState(this.everSynced ? 'reconnecting' : 'connecting');
    const create = this.options.create ?? ((url: string) => new WebSocket(url) as unknown as SocketLike);
    const socket = create(batchedUrl(this.options.url));
    this.socket = socket;
    socket.onmessage = (message) => {
      if (typeof message.data !== 'string') return;
      for (const event of eventsOfFrame(message.data)) {
        // A store may close the socket from an event (signed out): the rest is not wanted.
        if (this.socket !== socket) return;
        if (event.type === 'hello') {
          this.attempt = 0;
          this.options.onState('open');
          this.options.onSync(this.everSynced);
          this.everSynced = true;
        } else if (event.type === 'resync') this.options.onSync(true);
        else this.options.onEvent(event);
      }
    };
    socket.onerror = () => undefined;
    socket.onclose = () => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      this.options.onState(this.everSynced ? 'reconnecting' : 'connecting');
      const delay = backoffDelay(this.attempt++, this.options.minDelayMs ?? 500, this.options.maxDelayMs ?? 10_000, this.options.random ?? Math.random);
      this.timer = (this.options.setTimer ?? setTimeout)(() => {
        this.timer = null;
        if (!this.stopped) this.connect();
      }, delay);
    };
  }
}

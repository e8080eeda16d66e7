/**
 * Fans the service's events out to the subscribers of the events WebSocket at a small cost
 * per event: each event is stringified once, queued, and the queue goes out as one frame per
 * turn of the event loop (a JSON array of events, encoded once for every subscriber) to
 * subscribers that asked for batches (`?batch=1`); others get one frame per event, as before
 * batching existed. A broadcast to thousands of boards makes several events per board, and a
 * frame (a `writev`) per event per subscriber was the largest part of the service's CPU.
 *
 * Within one batch, a command's `command` event supersedes the earlier ones of the same
 * command (a view is its whole state, and statuses only move forward); every other event,
 * `output` included, goes out, in the order it was published.
 *
 * A subscriber that does not read is not buffered for without end: once more than
 * `maxBufferedBytes` wait to be sent to it, a batching subscriber gets a `resync` marker and no
 * events until the marker has been written out (then it re-reads the state, as after a
 * reconnect); a subscriber that does not batch, so does not know the marker, is closed and
 * reconnects.
 */
import type { WebSocket } from 'ws';
import type { ApiEvent } from './contract.js';

/** Bytes waiting to be sent to one subscriber beyond which its events are dropped. */
const DEFAULT_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** Queued event text at which a batch is sent at once rather than at the end of the turn. */
const DEFAULT_MAX_BATCH_BYTES = 1024 * 1024;

const HELLO = JSON.stringify({ type: 'hello', version: '1' } satisfies ApiEvent);
const RESYNC = JSON.stringify({ type: 'resync' } satisfies ApiEvent);

export interface EventBroadcasterOptions {
  maxBufferedBytes?: number;
  maxBatchBytes?: number;
  /** Told when a subscriber falls behind (its events are being dropped). */
  onFallBehind?: (subscriber: EventSubscriberStats) => void;
}

/** What the service knows of one subscriber of the events socket. */
export interface EventSubscriberStats {
  /** It takes batch frames (and `resync` markers). */
  batched: boolean;
  /** Bytes sent to it that have not been written out yet. */
  bufferedBytes: number;
  /** Its events are being dropped until its `resync` marker has been written out. */
  behind: boolean;
  droppedEvents: number;
  resyncs: number;
}

interface Subscriber {
  socket: WebSocket;
  batched: boolean;
  behind: boolean;
  droppedEvents: number;
  resyncs: number;
}

export class EventBroadcaster {
  private readonly subscribers = new Set<Subscriber>();
  /** Event texts of the next batch; a superseded `command` event leaves a null. */
  private queue: Array<string | null> = [];
  private queuedBytes = 0;
  /** Where the latest `command` event of each command in the queue is. */
  private readonly commandSlots = new Map<string, number>();
  private pending: NodeJS.Immediate | null = null;
  private readonly maxBufferedBytes: number;
  private readonly maxBatchBytes: number;

  constructor(private readonly options: EventBroadcasterOptions = {}) {
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
  }

  /** Greets a newly connected socket and sends it every event from now on. */
  add(socket: WebSocket, batched: boolean): void {
    // Events queued before it connected are not sent to it: it reads the state after hello.
    this.flush();
    const subscriber: Subscriber = { socket, batched, behind: false, droppedEvents: 0, resyncs: 0 };
    this.subscribers.add(subscriber);
    socket.once('close', () => this.subscribers.delete(subscriber));
    socket.send(HELLO);
  }

  publish(event: ApiEvent): void {
    if (this.subscribers.size === 0) return;
    const text = JSON.stringify(event);
    if (event.type === 'command') {
      const slot = this.commandSlots.get(event.command.cid);
      if (slot !== undefined) {
        this.queuedBytes -= this.queue[slot]!.length;
        this.queue[slot] = null;
      }
      this.commandSlots.set(event.command.cid, this.queue.length);
    }
    this.queue.push(text);
    this.queuedBytes += text.length;
    if (this.queuedBytes >= this.maxBatchBytes) this.flush();
    else this.pending ??= setImmediate(() => this.flush());
  }

  /** Sends what is queued now. */
  flush(): void {
    if (this.pending) clearImmediate(this.pending);
    this.pending = null;
    if (this.queue.length === 0) return;
    const texts = this.queue.filter((text): text is string => text !== null);
    this.queue = [];
    this.queuedBytes = 0;
    this.commandSlots.clear();
    let frame: Buffer | undefined;
    for (const subscriber of this.subscribers) {
      const { socket } = subscriber;
      if (socket.readyState !== socket.OPEN) continue;
      if (subscriber.behind) {
        subscriber.droppedEvents += texts.length;
        continue;
      }
      if (socket.bufferedAmount > this.maxBufferedBytes) {
        this.fallBehind(subscriber, texts.length);
        continue;
      }
      if (!subscriber.batched) {
        for (const text of texts) socket.send(text);
        continue;
      }
      // One buffer for every subscriber: ws sends it as it is (server frames are not masked).
      frame ??= Buffer.from(texts.length === 1 ? texts[0]! : `[${texts.join(',')}]`);
      socket.send(frame, { binary: false });
    }
  }

  stats(): EventSubscriberStats[] {
    return [...this.subscribers].map(statsOf);
  }

  close(): void {
    if (this.pending) clearImmediate(this.pending);
    this.pending = null;
    this.queue = [];
    this.commandSlots.clear();
    for (const { socket } of this.subscribers) socket.terminate();
    this.subscribers.clear();
  }

  private fallBehind(subscriber: Subscriber, dropped: number): void {
    subscriber.droppedEvents += dropped;
    if (!subscriber.batched) {
      this.options.onFallBehind?.(statsOf(subscriber));
      subscriber.socket.terminate();
      return;
    }
    subscriber.behind = true;
    subscriber.resyncs++;
    this.options.onFallBehind?.(statsOf(subscriber));
    // Written out means everything before it was too: events flow again from then on, and
    // the subscriber, reading the marker later still, re-reads a state that has what was dropped.
    subscriber.socket.send(RESYNC, () => {
      subscriber.behind = false;
    });
  }
}

function statsOf(subscriber: Subscriber): EventSubscriberStats {
  const { socket, batched, behind, droppedEvents, resyncs } = subscriber;
  return { batched, bufferedBytes: socket.bufferedAmount, behind, droppedEvents, resyncs };
}

/**
 * Several managers, one fleet (docs/ARCHITECTURE.md "Several managers"): a standby manager
 * serves the same fleet and jobs as the active one by forwarding the fleet's routes to it
 * through Redis (redis/manager-bridge-store.ts), and shows the active one's events to its
 * own UI and CLI clients. Only the active manager acts, so nothing is dispatched twice and
 * every command has one result, whichever manager a user asked; a standby needs no network
 * path to the active one's computer, only the Redis both use.
 *
 * What stays local to a standby: its status, its network settings, its USB ports and
 * firmware folder (hardware on its own computer that the active manager cannot reach) and
 * files staged on it; routes needing those answer 503 naming the active manager.
 */
import { randomUUID } from 'node:crypto';
import type { ApiErrorCode, ApiEvent, RouteName, RouteInput } from './api/contract.js';
import { routeInputs } from './api/contract.js';
import { classifyError, RequestError } from './api/api-errors.js';
import { FRAME_BYTES, MAX_BODY_BYTES, MAX_EVENT_BYTES, type ManagerBridgeStore, type BridgeRequest } from './redis/manager-bridge-store.js';
import type { RedisClient } from './redis/redis-connection.js';
import type { Logger } from './log.js';

/** Routes a standby forwards: the fleet's, the commands', the jobs' (not USB, firmware, staged files). */
const FORWARDED: ReadonlySet<RouteName> = new Set<RouteName>([
  // Asked by a standby's own status (the fleet's counts), never forwarded whole.
  'status',
  'boards.list',
  'boards.get',
  'boards.enroll',
  'boards.enrollMany',
  'boards.rename',
  'boards.remove',
  'boards.revoke',
  'boards.enable',
  'boards.history',
  'boards.telemetry',
  'boards.tag',
  'commands.send',
  'commands.get',
  'commands.wait',
  'commands.cancel',
  'commands.file',
  'jobs.list',
  'jobs.get',
  'jobs.cancel',
  'jobs.start',
  'packages.list',
  'sim.start',
  'sim.stop',
]);
/** Jobs that use this computer's USB ports: not forwarded (an upload job's staged files go with it: ManagerBridges). */
const LOCAL_JOBS = new Set(['flash', 'provision']);

/** Whether a standby forwards this request to the active manager. */
export function isForwarded(route: RouteName, input: unknown): boolean {
  if (!FORWARDED.has(route)) return false;
  return route !== 'jobs.start' || !LOCAL_JOBS.has(String((input as Partial<RouteInput<'jobs.start'>> | undefined)?.kind));
}

const RESYNC_EVENT = JSON.stringify({ type: 'resync' } satisfies ApiEvent);

const API_ERROR_CODES: readonly ApiErrorCode[] = ['bad_request', 'unauthorized', 'not_found', 'conflict', 'unavailable', 'device', 'internal'];

/** Events a standby shows its clients (USB events are about the active manager's computer). */
const sharedEvent = (event: ApiEvent) => !event.type.startsWith('usb.');

/** How long a standby waits for an answer beyond what the route itself may wait (`timeoutMs`). */
const ANSWER_MARGIN_MS = 30_000;
/** How long a blocking read waits before looking whether the bridge is stopping. */
const BLOCK_MS = 1_000;
/** A standby says it listens every this often, for three times as long. */
const FOLLOW_EVERY_MS = 2_000;
/** How often the active manager looks whether a standby listens. */
const FOLLOWERS_EVERY_MS = 1_000;

function answerTimeout(input: unknown): number {
  const waits = (input as { timeoutMs?: unknown }).timeoutMs;
  return ANSWER_MARGIN_MS + (typeof waits === 'number' ? waits : 0);
}

export interface ActiveBridgeOptions {
  store: ManagerBridgeStore;
  /** This manager's id and lease epoch (answers and events are fenced with it). */
  id: string;
  epoch: number;
  /** Runs a route as if asked of this manager's API (input validated already). */
  run: (route: RouteName, input: unknown) => Promise<unknown>;
  /** Redis refused the epoch: another manager is active. */
  superseded: (reason: string) => void;
  /** Stages a file a standby sent along (an upload job's), as this manager's UI would; its staged id. */
  stage: (data: Buffer) => Promise<string>;
  log: Logger;
}

/** The active manager's half: answers the standbys' requests and publishes its events while one listens. */
export class ActiveBridge {
  /** Opened when a standby first shows up: a manager alone keeps the connections it had (redis/connection-guard.ts counts them). */
  private connection: RedisClient | undefined;
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();
  private followersTimer: NodeJS.Timeout | undefined;
  /** Until when (epoch ms) a standby listens: events are published until then. */
  private followedUntil = 0;
  private pending: ApiEvent[] = [];
  private flushScheduled = false;
  private publishing: Promise<void> = Promise.resolve();
  /** Numbers the frames: a standby that finds one missing (trimmed before it read it) has its clients load everything again. */
  private frameSeq = 0;

  constructor(private readonly options: ActiveBridgeOptions) {}

  /** Requests sent from now on wait in the stream (the group exists) until a standby is seen and they are read. */
  async start(): Promise<void> {
    await this.options.store.ensureRequestGroup();
    await this.refreshFollowers();
    this.followersTimer = setInterval(() => void this.refreshFollowers(), FOLLOWERS_EVERY_MS);
    this.followersTimer.unref();
  }

  /** An event of this manager's: sent on to the standbys in one frame per event-loop turn, while one listens. */
  publish(event: ApiEvent): void {
    if (this.stopped || Date.now() > this.followedUntil || !sharedEvent(event)) return;
    this.pending.push(event);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const events = this.pending;
      this.pending = [];
      this.publishing = this.publishing.then(() => this.publishFrames(events));
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.followersTimer);
    this.connection?.disconnect();
    await this.loop;
    await this.publishing;
  }

  private async publishFrames(events: ApiEvent[]): Promise<void> {
    try {
      // Packed into frames of up to FRAME_BYTES (a standby's read of several frames stays small).
      let parts: string[] = [];
      let bytes = 0;
      const send = async () => {
        const frame = `[${parts.join(',')}]`;
        parts = [];
        bytes = 0;
        return this.options.store.publishEvents(this.options.epoch, ++this.frameSeq, frame);
      };
      for (const event of events) {
        let text = JSON.stringify(event);
        let size = Buffer.byteLength(text, 'utf8');
        // Too large for one Redis command (a command's view with 256 KB of escaped output): the standby's clients load it instead.
        if (size > MAX_EVENT_BYTES) {
          text = RESYNC_EVENT;
          size = text.length;
        }
        if (bytes > 0 && bytes + size > FRAME_BYTES && !(await send())) return this.options.superseded('Redis refused this manager epoch for its events');
        parts.push(text);
        bytes += size + 1;
      }
      if (parts.length > 0 && !(await send())) this.options.superseded('Redis refused this manager epoch for its events');
    } catch (error) {
      this.options.log('debug', `manager bridge: events not published: ${(error as Error).message}`);
    }
  }

  private async refreshFollowers(): Promise<void> {
    try {
      this.followedUntil = await this.options.store.followedUntil();
    } catch (error) {
      this.options.log('debug', `manager bridge: standby managers not known: ${(error as Error).message}`);
    }
    // A standby (it says so before its first request): from now on its requests are read.
    if (this.followedUntil > Date.now() && !this.connection && !this.stopped) {
      const connection = this.options.store.blockingConnection();
      connection.on('error', (error: Error) => this.options.log('debug', `manager bridge connection: ${error.message}`));
      this.connection = connection;
      this.loop = this.serve(connection);
    }
  }

  private async serve(connection: RedisClient): Promise<void> {
    while (!this.stopped) {
      let requests: BridgeRequest[];
      try {
        requests = await this.options.store.takeRequests(connection, this.options.id, BLOCK_MS);
      } catch (error) {
        if (this.stopped) return;
        this.options.log('debug', `manager bridge: requests not read: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, BLOCK_MS));
        continue;
      }
      // Each on its own: a long `commands.wait` must not hold the others up.
      for (const request of requests) void this.answer(request);
    }
  }

  private async answer(request: BridgeRequest): Promise<void> {
    // A standby that asked is listening: its UI sees the events from now on.
    this.followedUntil = Math.max(this.followedUntil, request.deadline);
    // Its own, from while it stood by: that wait was ended when it took over ("send it again").
    if (request.from === this.options.id || Date.now() > request.deadline) return;
    let status = 200;
    let body: string;
    try {
      const text = await this.options.store.requestBody(request);
      const sent = (text === null ? undefined : safeJson(text)) as { input?: unknown; files?: unknown } | undefined;
      if (!sent || typeof sent !== 'object')
        throw new RequestError(400, 'bad_request', 'the request was gone before the active manager could read it: send it again');
      if (!Object.hasOwn(routeInputs, request.route) || !isForwarded(request.route as RouteName, sent.input)) {
        throw new RequestError(400, 'bad_request', `route ${JSON.stringify(request.route.slice(0, 40))} is not answered for another manager`);
      }
      const route = request.route as RouteName;
      const input = routeInputs[route].parse(sent.files === undefined ? sent.input : await this.stageFiles(sent.input, sent.files));
      body = JSON.stringify((await this.options.run(route, input)) ?? null);
      if (Buffer.byteLength(body, 'utf8') > MAX_BODY_BYTES) {
        throw new RequestError(
          400,
          'bad_request',
          `the answer is ${Math.round(body.length / 1024 / 1024)} MB, more than a standby is passed (${MAX_BODY_BYTES / 1024 / 1024} MB): ask for less at once, or ask the computer that runs the fleet`,
        );
      }
    } catch (error) {
      const classified = classifyError(error);
      status = classified.status;
      body = JSON.stringify(classified.body);
    }
    try {
      const fresh = await this.options.store.reply(this.options.epoch, request.from, { id: request.id, status, body });
      if (!fresh) this.options.superseded('Redis refused this manager epoch for an answer');
    } catch (error) {
      this.options.log('warn', `manager bridge: could not answer ${request.route} of manager ${request.from}: ${(error as Error).message}`);
    }
  }

  /**
   * An upload job from a standby: the files it names (staged there) came along, base64 by
   * staged id; staged here, the job names them by their ids here.
   */
  private async stageFiles(json: unknown, sent: unknown): Promise<unknown> {
    if (!sent || typeof sent !== 'object' || Array.isArray(sent))
      throw new RequestError(400, 'bad_request', "the upload's files did not come along: send them again");
    const job = json as { kind?: unknown; files?: unknown };
    if (job?.kind !== 'upload' || !Array.isArray(job.files)) throw new RequestError(400, 'bad_request', 'only an upload job sends files along');
    const stagedHere = new Map<string, string>();
    const files = [];
    for (const entry of job.files as Array<{ file?: unknown }>) {
      const data = typeof entry?.file === 'string' && Object.hasOwn(sent, entry.file) ? (sent as Record<string, unknown>)[entry.file] : undefined;
      if (typeof data !== 'string' || !BASE64.test(data)) throw new RequestError(400, 'bad_request', 'a file of the upload was not sent along: send it again');
      const file = entry.file as string;
      if (!stagedHere.has(file)) stagedHere.set(file, await this.options.stage(Buffer.from(data, 'base64')));
      files.push({ ...entry, file: stagedHere.get(file) });
    }
    return { ...job, files };
  }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export interface StandbyBridgeOptions {
  store: ManagerBridgeStore;
  id: string;
  /** Shows an event of the active manager to this manager's clients. */
  broadcast: (event: ApiEvent) => void;
  /** Who is active now, for messages ("… the active one is host (pid)"). */
  activeName: () => string;
  /** Clients saw this manager's own events until now: the first frame from the active one makes them load everything again. */
  resyncOnFirstFrame?: boolean;
  log: Logger;
}

interface Waiting {
  resolve: (result: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/** A standby manager's half: forwards requests to the active manager and follows its events. */
export class StandbyBridge {
  private readonly connection: RedisClient;
  private readonly waiting = new Map<string, Waiting>();
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();
  private followTimer: NodeJS.Timeout | undefined;
  private badFrames = 0;
  /** The epoch of the last events frame: another one means another active manager, whose events may not follow on. */
  private eventsEpoch: number | undefined;
  private eventsSeq = 0;

  constructor(private readonly options: StandbyBridgeOptions) {
    this.connection = options.store.blockingConnection();
    this.connection.on('error', (error: Error) => options.log('debug', `manager bridge connection: ${error.message}`));
  }

  async start(): Promise<void> {
    await this.follow();
    this.followTimer = setInterval(() => void this.follow(), FOLLOW_EVERY_MS);
    this.followTimer.unref();
    const after = await this.options.store.tailPositions(this.options.id);
    this.loop = this.tail(after);
  }

  /** Asks the active manager to run `route` (validated `input`); its answer, or its error with the same status. */
  forward(route: RouteName, input: unknown, timeoutMs = answerTimeout(input), files?: Record<string, string>): Promise<unknown> {
    if (this.stopped) return Promise.reject(new RequestError(503, 'unavailable', 'this manager is changing role: send the request again'));
    const body = JSON.stringify({ input, files });
    if (Buffer.byteLength(body, 'utf8') > MAX_BODY_BYTES) {
      return Promise.reject(new RequestError(400, 'bad_request', `the request is more than ${MAX_BODY_BYTES / 1024 / 1024} MB, the most a standby passes on`));
    }
    const id = randomUUID();
    return new Promise((resolve, reject) => {
      const waited = timeoutMs >= 1_000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`;
      const timer = setTimeout(() => {
        const message = `the active manager (${this.options.activeName()}) did not answer within ${waited}; it may have stopped while handling the request: check before sending it again`;
        this.settle(id, { error: new RequestError(503, 'unavailable', message) });
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.options.store
        .addRequest({ id, from: this.options.id, route, deadline: Date.now() + timeoutMs }, body, timeoutMs)
        .catch((error: Error) =>
          this.settle(id, { error: new RequestError(503, 'unavailable', `the request could not be passed on through Redis: ${error.message}`) }),
        );
    });
  }

  /** Stops following; requests still waiting are refused (the active manager may still run them). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.followTimer);
    this.connection.disconnect();
    await this.loop;
    const error = new RequestError(503, 'unavailable', 'this manager changed role while the active one handled the request: check before sending it again');
    for (const id of [...this.waiting.keys()]) this.settle(id, { error });
    await this.options.store.unfollow(this.options.id).catch(() => undefined);
  }

  /** Ends a waiting request (once: a late answer after a timeout finds nothing). */
  private settle(id: string, outcome: { result: unknown } | { error: Error }): void {
    const waiting = this.waiting.get(id);
    if (!waiting) return;
    this.waiting.delete(id);
    clearTimeout(waiting.timer);
    if ('error' in outcome) waiting.reject(outcome.error);
    else waiting.resolve(outcome.result);
  }

  private async follow(): Promise<void> {
    try {
      await this.options.store.follow(this.options.id, Date.now() + 3 * FOLLOW_EVERY_MS);
    } catch (error) {
      this.options.log('debug', `manager bridge: could not say this manager follows: ${(error as Error).message}`);
    }
  }

  private async tail(after: { replies: string; events: string }): Promise<void> {
    while (!this.stopped) {
      try {
        const read = await this.options.store.tail(this.connection, this.options.id, after, BLOCK_MS);
        for (const reply of read.replies) {
          after.replies = reply.entry;
          // A long answer waits under its own key; gone (expired) is no answer, as if it never came.
          const body = await this.options.store.answerBody(reply);
          if (body !== null) this.answered(reply.id, reply.status, body);
        }
        for (const { entry, epoch, seq, frame } of read.frames) {
          after.events = entry;
          // Events between the old active manager's last and the new one's first are lost, and so are frames trimmed
          // before this standby read them: its clients load everything again.
          const known = this.eventsEpoch !== undefined;
          const missed = known ? epoch !== this.eventsEpoch || seq !== this.eventsSeq + 1 : this.options.resyncOnFirstFrame;
          if (missed) this.options.broadcast({ type: 'resync' });
          this.eventsEpoch = epoch;
          this.eventsSeq = seq;
          this.showFrame(frame);
        }
      } catch (error) {
        if (this.stopped) return;
        this.options.log('debug', `manager bridge: the active manager's answers not read: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, BLOCK_MS));
      }
    }
  }

  private answered(id: string, status: number, body: string): void {
    const parsed = safeJson(body);
    if (status === 200) return this.settle(id, { result: parsed ?? null });
    const error = parsed as { code?: unknown; message?: unknown } | undefined;
    const code = API_ERROR_CODES.find((known) => known === error?.code) ?? 'internal';
    const message = typeof error?.message === 'string' ? error.message : `the active manager answered ${status}`;
    this.settle(id, { error: new RequestError(status, code, message) });
  }

  /** A frame is the active manager's JSON array of events; anything else is dropped (and said once). */
  private showFrame(frame: string): void {
    const events = safeJson(frame);
    if (!Array.isArray(events)) {
      if (this.badFrames++ === 0) this.options.log('warn', 'manager bridge: an events frame that is not a JSON array was dropped');
      return;
    }
    for (const event of events) {
      if (event && typeof event === 'object' && typeof (event as { type?: unknown }).type === 'string') this.options.broadcast(event as ApiEvent);
    }
  }
}

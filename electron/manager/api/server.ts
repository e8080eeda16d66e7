/**
 * The local API and the UI's origin, on loopback only: HTTP routes from the contract table,
 * a WebSocket of events, and the built renderer at `/`. Two ways in: the CLI's bearer token
 * (from the data folder), or the UI's session cookie, which is honoured only on requests
 * that carry this origin's own `Origin` (a page from any other origin, another loopback
 * port included, is refused). The Host header is checked on everything, so a web page
 * cannot reach the service through DNS rebinding, and so is the Origin header: a request
 * that carries one (every request a browser page makes with fetch, every WebSocket) must
 * come from the UI's own origin, whatever it presents (a token a page got hold of
 * included). Bodies are refused with 413 before they are read when they say they are too
 * large, and as soon as they turn out to be.
 */
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../log.js';
import {
  API_EVENTS_BATCH_PARAM,
  API_EVENTS_PATH,
  API_TOKEN_SUBPROTOCOL_PREFIX,
  FILES_STAGE_PATH,
  USB_CONSOLE_WS_PATH,
  routeInputs,
  type ApiEvent,
  type RouteName,
} from './contract.js';
import { runRoute, type ApiContext } from './routes.js';
import { UiFiles, messagePage, securityHeaders } from './ui-files.js';
import { bridgeUsbConsole } from './usb-console-socket.js';
import { EventBroadcaster, type EventSubscriberStats } from './event-broadcaster.js';
import { UiSessions, readCookie, sessionCookie, sessionCookieName } from './ui-sessions.js';
import { classifyError as classify, RequestError } from './api-errors.js';
import { MAX_FILE_BYTES } from '../fleet/command-ops.js';

/** The largest JSON body: a 16 MiB file as base64 (`commands.send` put, `usb.put`, `firmware.add`) and room for the rest. */
const MAX_BODY_BYTES = 24 * 1024 * 1024;
/**
 * After answering a request before its body has all arrived, what a client still sending
 * is heard out for (read and dropped) so that it gets to read the answer instead of a
 * reset; a client sending on beyond this is cut off.
 */
const MAX_DISCARDED_BYTES = 64 * 1024 * 1024;

export interface ApiServerOptions {
  context: ApiContext;
  token: string;
  log: Logger;
  host?: string;
  port?: number;
  /** Listen on any free port when `port` is taken. */
  portFallback?: boolean;
  /** Folder of the built renderer (index.html, assets/). */
  uiRoot: string;
  /** Bytes an events subscriber may leave unread before its events are dropped (it re-syncs, or is closed); 8 MiB by default. */
  maxEventBufferedBytes?: number;
  /**
   * A route another process answers (a standby manager forwards the fleet's routes to the
   * active one: manager-bridge.ts), given its validated input; undefined: answered here.
   */
  forward?: (name: RouteName, input: unknown) => Promise<unknown> | undefined;
}

/** How a request proved who it is. */
type Caller = { kind: 'token' } | { kind: 'session' };

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export class ApiServer {
  private readonly server: http.Server;
  private readonly wss: WebSocketServer;
  /** USB console sockets: not event listeners, so kept apart from `wss`. */
  private readonly consoles = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  private readonly tokenDigest: Buffer;
  private readonly sessions = new UiSessions();
  private readonly uiFiles: UiFiles;
  private readonly events: EventBroadcaster;
  private port = 0;

  constructor(private readonly options: ApiServerOptions) {
    this.tokenDigest = digest(options.token);
    this.uiFiles = new UiFiles(options.uiRoot);
    this.events = new EventBroadcaster({
      maxBufferedBytes: options.maxEventBufferedBytes,
      onFallBehind: (subscriber) =>
        options.log(
          'warn',
          subscriber.batched
            ? 'an events subscriber is not reading: its events are dropped until it catches up, then it re-reads the state'
            : 'an events subscriber is not reading: closed (it reconnects and re-reads the state)',
          { unsentBytes: subscriber.bufferedBytes },
        ),
    });
    this.server = http.createServer((request, response) => void this.onRequest(request, response));
    // `Expect: 100-continue` (curl, for bodies over 1 MB): "continue" is sent only once the
    // body is wanted, so a refused or oversized request is answered before it is sent at all.
    this.server.on('checkContinue', (request, response) => void this.onRequest(request, response));
    this.wss = new WebSocketServer({
      noServer: true,
      handleProtocols: (protocols) => {
        for (const protocol of protocols) if (protocol.startsWith(API_TOKEN_SUBPROTOCOL_PREFIX)) return protocol;
        return false;
      },
    });
    this.server.on('upgrade', (request, socket, head) => {
      const url = new URL(request.url ?? '/', 'http://localhost');
      let refusal = '';
      if (url.pathname !== API_EVENTS_PATH && url.pathname !== USB_CONSOLE_WS_PATH) refusal = '404 Not Found';
      else if (!this.hostAllowed(request) || !this.originAllowed(request)) refusal = '403 Forbidden';
      else {
        try {
          this.authenticate(request);
        } catch (error) {
          refusal = error instanceof RequestError && error.status === 403 ? '403 Forbidden' : '401 Unauthorized';
        }
      }
      if (refusal) {
        socket.end(`HTTP/1.1 ${refusal}\r\nConnection: close\r\n\r\n`);
        return;
      }
      if (url.pathname === USB_CONSOLE_WS_PATH) {
        const port = url.searchParams.get('port') ?? '';
        let usb: ApiContext['usb'];
        try {
          usb = this.options.context.usb;
        } catch (error) {
          // A standby manager has no USB service (the active one has).
          socket.end(`HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n${(error as Error).message}`);
          return;
        }
        this.consoles.handleUpgrade(request, socket, head, (ws) => void bridgeUsbConsole(ws, usb, port, this.options.log));
        return;
      }
      this.wss.handleUpgrade(request, socket, head, (ws) => this.onSocket(ws, url.searchParams.get(API_EVENTS_BATCH_PARAM) === '1'));
    });
  }

  get url(): string {
    return `http://${this.options.host ?? '127.0.0.1'}:${this.port}`;
  }

  async listen(): Promise<string> {
    const listenOn = (port: number) =>
      new Promise<void>((resolve, reject) => {
        const onError = (error: Error) => reject(error);
        this.server.once('error', onError);
        this.server.listen(port, this.options.host ?? '127.0.0.1', () => {
          this.server.off('error', onError);
          resolve();
        });
      });
    try {
      await listenOn(this.options.port ?? 0);
    } catch (error) {
      // A preferred port that is taken (another service, an old one) is not worth failing for.
      if (!this.options.portFallback || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      await listenOn(0);
    }
    this.port = (this.server.address() as AddressInfo).port;
    return this.url;
  }

  /** Pushes an event to every connected client (batched: it goes out at the end of this turn of the event loop). */
  broadcast(event: ApiEvent): void {
    this.events.publish(event);
  }

  /** The events socket's subscribers, as the service sees them (unsent bytes, dropped events). */
  eventSubscribers(): EventSubscriberStats[] {
    return this.events.stats();
  }

  async close(): Promise<void> {
    this.events.close();
    for (const client of [...this.wss.clients, ...this.consoles.clients]) client.terminate();
    this.wss.close();
    this.consoles.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** A one-time sign-in URL for the UI (valid 2 minutes, single use). */
  createSigninUrl(): { url: string; expiresAt: number } {
    const { code, expiresAt } = this.sessions.createCode();
    return { url: `${this.url}/signin?code=${code}`, expiresAt };
  }

  private ownHosts(): string[] {
    return [`127.0.0.1:${this.port}`, `localhost:${this.port}`, `[::1]:${this.port}`];
  }

  private hostAllowed(request: http.IncomingMessage): boolean {
    return this.ownHosts().includes(request.headers.host ?? '');
  }

  /**
   * No Origin (the CLI, a top-level navigation) or the UI's own. A page elsewhere must not
   * drive the service even when it presents the right token, e.g. one pasted into it.
   */
  private originAllowed(request: http.IncomingMessage): boolean {
    const origin = request.headers.origin;
    return origin === undefined || this.ownHosts().some((host) => origin === `http://${host}`);
  }

  /** Who is calling: the bearer token, or a UI session from this very origin; else throws. */
  private authenticate(request: http.IncomingMessage): Caller {
    let presented: string | undefined;
    const header = request.headers.authorization;
    if (header?.startsWith('Bearer ')) presented = header.slice('Bearer '.length).trim();
    const protocols = request.headers['sec-websocket-protocol'];
    if (!presented && typeof protocols === 'string') {
      presented = protocols
        .split(',')
        .map((p) => p.trim())
        .find((p) => p.startsWith(API_TOKEN_SUBPROTOCOL_PREFIX))
        ?.slice(API_TOKEN_SUBPROTOCOL_PREFIX.length);
    }
    if (presented !== undefined) {
      if (timingSafeEqual(digest(presented), this.tokenDigest)) return { kind: 'token' };
      throw new RequestError(401, 'unauthorized', 'wrong API token');
    }
    const session = readCookie(request.headers.cookie, sessionCookieName(this.port));
    if (session && this.sessions.check(session)) {
      // The cookie rides along with requests from any page on this host (SameSite does not
      // tell ports apart), so only the UI's own origin may use it.
      const origin = request.headers.origin;
      if (!origin || !this.ownHosts().some((host) => origin === `http://${host}`)) {
        throw new RequestError(403, 'unauthorized', 'requests signed in with the UI session must come from the Cloudmanager UI itself');
      }
      return { kind: 'session' };
    }
    throw new RequestError(401, 'unauthorized', session ? 'the UI session has ended: open a new sign-in link (npx mbm ui)' : 'missing or wrong API token');
  }

  /** GET /signin?code=…: a one-time code becomes a session cookie, then the UI opens. */
  private signin(url: URL, response: http.ServerResponse): void {
    const outcome = this.sessions.redeem(url.searchParams.get('code') ?? '');
    if (!outcome.ok) {
      const why =
        outcome.reason === 'used'
          ? 'This sign-in link was already used.'
          : outcome.reason === 'expired'
            ? 'This sign-in link has expired (links work for 2 minutes).'
            : 'This sign-in link is not valid.';
      response.writeHead(403, { ...securityHeaders(), 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(messagePage('Sign-in link not valid', `${why} Get a new one with <code>npx mbm ui</code> in the Cloudmanager folder (or restart the app).`));
      return;
    }
    response.writeHead(303, {
      ...securityHeaders(),
      location: '/',
      'set-cookie': sessionCookie(sessionCookieName(this.port), outcome.sessionId),
      'cache-control': 'no-store',
    });
    response.end();
  }

  private onSocket(ws: WebSocket, batched: boolean): void {
    ws.on('error', () => ws.terminate());
    // Clients only listen; anything they send is ignored.
    this.events.add(ws, batched);
  }

  private async onRequest(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const started = Date.now();
    let route = '';
    try {
      if (!this.hostAllowed(request)) throw new RequestError(403, 'unauthorized', 'requests must come to 127.0.0.1 or localhost');
      if (!this.originAllowed(request)) {
        const origin = JSON.stringify((request.headers.origin ?? '').slice(0, 100));
        throw new RequestError(403, 'unauthorized', `requests from a web page are accepted only from the Cloudmanager UI itself, not from origin ${origin}`);
      }
      const url = new URL(request.url ?? '/', 'http://localhost');
      if (!url.pathname.startsWith('/api/') && (request.method === 'GET' || request.method === 'HEAD')) {
        if (url.pathname === '/signin') return this.signin(url, response);
        if (await this.uiFiles.serve(url.pathname, response)) return;
        throw new RequestError(404, 'not_found', `no such page ${url.pathname}`);
      }
      this.authenticate(request);
      route = url.pathname.replace(/^\/api\//, '');
      if (url.pathname === FILES_STAGE_PATH && request.method === 'POST') {
        // Raw bytes, not JSON: files from the UI travel once, without base64.
        // Streamed to a file as it arrives: never held in memory whole.
        const staged = await this.options.context.staged.receive(bodyChunks(request, response, MAX_FILE_BYTES));
        this.answer(response, 200, { ok: true, result: staged });
        return;
      }
      // Own entries only: `toString`, `constructor` or `__proto__` are not routes.
      if (request.method !== 'POST' || !url.pathname.startsWith('/api/') || !Object.hasOwn(routeInputs, route)) {
        throw new RequestError(404, 'not_found', `no route ${request.method} ${url.pathname}`);
      }
      const body = await readBody(request, response);
      let json: unknown;
      try {
        json = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
      } catch {
        throw new RequestError(400, 'bad_request', 'body is not valid JSON');
      }
      const name = route as RouteName;
      const input = routeInputs[name].parse(json);
      const result = await (this.options.forward?.(name, input) ?? runRoute(this.options.context, name, input));
      this.answer(response, 200, { ok: true, result });
    } catch (error) {
      const { status, body } = classify(error);
      // 503: a standby manager (manager-role.ts) refusing the fleet's routes is no fault.
      if (status >= 500 && status !== 503) this.options.log('error', `API ${route || request.url}: ${body.message}`);
      else this.options.log('debug', `API ${route || request.url} refused (${status}): ${body.message}`, { ms: Date.now() - started });
      if (!request.complete) discardRest(request, response);
      this.answer(response, status, { ok: false, error: body });
    }
  }

  /**
   * Answers a request after sending the events published before the answer (a command's end
   * before `commands.wait` says it ended), as when every event went out as it happened.
   */
  private answer(response: http.ServerResponse, status: number, body: unknown): void {
    this.events.flush();
    send(response, status, body);
  }
}

function send(response: http.ServerResponse, status: number, body: unknown): void {
  if (response.headersSent) return;
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  response.end(text);
}

/** Responses whose client was told to go on sending (100 Continue). */
const continuedResponses = new WeakSet<http.ServerResponse>();

function tooLarge(limit: number): RequestError {
  return new RequestError(413, 'bad_request', `request body is larger than ${limit / 1024 / 1024} MiB`);
}

/**
 * The request body as it arrives: refused (413) before a byte is read when its
 * Content-Length is over `limit`, and as soon as the bytes counted so far are. Leaving
 * early never destroys the request, so the client can still be answered.
 */
async function* bodyChunks(request: http.IncomingMessage, response: http.ServerResponse, limit: number): AsyncGenerator<Buffer> {
  if (Number(request.headers['content-length']) > limit) throw tooLarge(limit);
  if (request.headers.expect?.toLowerCase() === '100-continue') {
    response.writeContinue();
    continuedResponses.add(response);
  }
  let size = 0;
  for await (const chunk of request.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    yield chunk;
  }
}

/** A JSON body, in one buffer: sized from Content-Length when there is one (no second copy). */
async function readBody(request: http.IncomingMessage, response: http.ServerResponse, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(request.headers['content-length']);
  if (Number.isSafeInteger(declared) && declared >= 0 && declared <= limit) {
    const body = Buffer.allocUnsafe(declared);
    let offset = 0;
    // Node's parser never delivers more than Content-Length; fewer means the client gave up.
    for await (const chunk of bodyChunks(request, response, limit)) offset += chunk.copy(body, offset);
    return body.subarray(0, offset);
  }
  const chunks: Buffer[] = [];
  for await (const chunk of bodyChunks(request, response, limit)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * After an early answer: a client that was told to wait (100-continue) and was not told to
 * go on sends nothing, so the connection is closed after the answer; any other client is
 * still sending, and is heard out (bytes dropped) up to MAX_DISCARDED_BYTES, then cut off.
 */
function discardRest(request: http.IncomingMessage, response: http.ServerResponse): void {
  if (request.headers.expect?.toLowerCase() === '100-continue' && !continuedResponses.has(response)) {
    response.shouldKeepAlive = false;
    return;
  }
  let discarded = 0;
  request.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > MAX_DISCARDED_BYTES) request.socket.destroy();
  });
  request.resume();
}

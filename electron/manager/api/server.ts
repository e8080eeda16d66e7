/**
 * The local API and the UI's origin, on loopback only: HTTP routes from the contract table,
 * a WebSocket of events, and the built renderer at `/`. Two ways in: the CLI's bearer token
 * (from the data folder), or the UI's session cookie, which is honoured only on requests
 * that carry this origin's own `Origin` (a page from any other origin, another loopback
 * port included, is refused). The Host header is checked on everything, so a web page
 * cannot reach the service through DNS rebinding.
 */
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { ZodError } from 'zod';
import type { Logger } from '../log.js';
import {
  API_EVENTS_PATH,
  API_TOKEN_SUBPROTOCOL_PREFIX,
  FILES_STAGE_PATH,
  USB_CONSOLE_WS_PATH,
  routeInputs,
  type ApiError,
  type ApiErrorCode,
  type ApiEvent,
  type RouteName,
} from './contract.js';
import { handlers, type ApiContext } from './routes.js';
import { UiFiles, messagePage, securityHeaders } from './ui-files.js';
import { bridgeUsbConsole } from './usb-console-socket.js';
import { UiSessions, readCookie, sessionCookie, sessionCookieName } from './ui-sessions.js';
import { ManagerError, type ErrorKind } from '../errors.js';
import { MAX_FILE_BYTES } from '../fleet/command-ops.js';

const MAX_BODY_BYTES = 24 * 1024 * 1024;
/** A client that cannot keep up with events is dropped rather than buffered without end. */
const MAX_WS_BUFFERED_BYTES = 64 * 1024 * 1024;

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
}

/** How a request proved who it is. */
type Caller = { kind: 'token' } | { kind: 'session' };

class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const STATUS_OF: Record<ErrorKind, number> = { bad_request: 400, not_found: 404, conflict: 409, device: 502 };

/** Maps errors to HTTP status by their kind (errors.ts), never by message text. */
function classify(error: unknown): { status: number; body: ApiError } {
  if (error instanceof RequestError) return { status: error.status, body: { code: error.code, message: error.message } };
  if (error instanceof ZodError) {
    const message = error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`).join('; ');
    return { status: 400, body: { code: 'bad_request', message } };
  }
  if (error instanceof ManagerError) return { status: STATUS_OF[error.kind], body: { code: error.kind, message: error.message } };
  return { status: 500, body: { code: 'internal', message: (error as Error)?.message ?? String(error) } };
}

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
  private port = 0;

  constructor(private readonly options: ApiServerOptions) {
    this.tokenDigest = digest(options.token);
    this.uiFiles = new UiFiles(options.uiRoot);
    this.server = http.createServer((request, response) => void this.onRequest(request, response));
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
      else if (!this.hostAllowed(request)) refusal = '403 Forbidden';
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
        this.consoles.handleUpgrade(request, socket, head, (ws) => void bridgeUsbConsole(ws, this.options.context.usb, port, this.options.log));
        return;
      }
      this.wss.handleUpgrade(request, socket, head, (ws) => this.onSocket(ws));
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

  /** Pushes an event to every connected client. */
  broadcast(event: ApiEvent): void {
    if (this.wss.clients.size === 0) return;
    const text = JSON.stringify(event);
    for (const client of this.wss.clients) {
      if (client.readyState !== client.OPEN) continue;
      if (client.bufferedAmount > MAX_WS_BUFFERED_BYTES) {
        client.terminate();
        continue;
      }
      client.send(text);
    }
  }

  async close(): Promise<void> {
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

  private onSocket(ws: WebSocket): void {
    ws.on('error', () => ws.terminate());
    // Clients only listen; anything they send is ignored.
    ws.send(JSON.stringify({ type: 'hello', version: '1' } satisfies ApiEvent));
  }

  private async onRequest(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const started = Date.now();
    let route = '';
    try {
      if (!this.hostAllowed(request)) throw new RequestError(403, 'unauthorized', 'requests must come to 127.0.0.1 or localhost');
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
        const data = await readBody(request, MAX_FILE_BYTES);
        send(response, 200, { ok: true, result: this.options.context.staged.add(data) });
        return;
      }
      if (request.method !== 'POST' || !url.pathname.startsWith('/api/') || !(route in routeInputs)) {
        throw new RequestError(404, 'not_found', `no route ${request.method} ${url.pathname}`);
      }
      const body = await readBody(request);
      let json: unknown;
      try {
        json = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
      } catch {
        throw new RequestError(400, 'bad_request', 'body is not valid JSON');
      }
      const name = route as RouteName;
      const input = routeInputs[name].parse(json);
      const result = await (handlers[name] as (context: ApiContext, input: unknown) => Promise<unknown>)(this.options.context, input);
      send(response, 200, { ok: true, result });
    } catch (error) {
      const { status, body } = classify(error);
      if (status >= 500) this.options.log('error', `API ${route || request.url}: ${body.message}`);
      else this.options.log('debug', `API ${route || request.url} refused (${status}): ${body.message}`, { ms: Date.now() - started });
      send(response, status, { ok: false, error: body });
    }
  }
}

function send(response: http.ServerResponse, status: number, body: unknown): void {
  if (response.headersSent) return;
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  response.end(text);
}

function readBody(request: http.IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new RequestError(413, 'bad_request', `request body is larger than ${limit / 1024 / 1024} MiB`));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

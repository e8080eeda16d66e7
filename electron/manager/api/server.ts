/**
 * The local API: HTTP routes from the contract table plus a WebSocket of events, on
 * loopback only, every request authenticated with the bearer token from the data folder.
 * The Host header is checked too, so a web page cannot reach the API through DNS
 * rebinding even if it guessed a route.
 */
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { ZodError } from 'zod';
import type { Logger } from '../log.js';
import {
  API_EVENTS_PATH, API_TOKEN_SUBPROTOCOL_PREFIX, routeInputs,
  type ApiError, type ApiErrorCode, type ApiEvent, type RouteName,
} from './contract.js';
import { handlers, NotFoundError, type ApiContext } from './routes.js';
import { UnknownBoardError } from '../fleet/board-registry.js';
import { BoardNameTakenError } from '../fleet/fleet.js';
import { BoardSelectorError } from '../fleet/board-selector.js';
import { InvalidCommandError } from '../fleet/command-ops.js';
import { InvalidIdError } from '../redis/keys.js';
import { QueueFullError } from '../redis/fleet-store.js';
import { PortBusyError } from '../usb/usb-service.js';
import { FirmwareImageError } from '../usb/firmware-image.js';
import { FirmwareDownloadError } from '../usb/firmware-catalogue.js';
import { FlashError, UnsupportedChipError } from '../usb/esp-flasher.js';
import { ProvisionError } from '../usb/board-provisioner.js';
import { SerialCopyError } from '../usb/serial-copy.js';
import { ProvisioningInputError } from '../fleet/provisioning-payload.js';

const MAX_BODY_BYTES = 24 * 1024 * 1024;
/** A client that cannot keep up with events is dropped rather than buffered without end. */
const MAX_WS_BUFFERED_BYTES = 64 * 1024 * 1024;

export interface ApiServerOptions {
  context: ApiContext;
  token: string;
  log: Logger;
  host?: string;
  port?: number;
}

class RequestError extends Error {
  constructor(readonly status: number, readonly code: ApiErrorCode, message: string) {
    super(message);
  }
}

/** Maps errors to HTTP status by their class, never by message text. */
function classify(error: unknown): { status: number; body: ApiError } {
  if (error instanceof RequestError) return { status: error.status, body: { code: error.code, message: error.message } };
  if (error instanceof ZodError) {
    const message = error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`).join('; ');
    return { status: 400, body: { code: 'bad_request', message } };
  }
  if (error instanceof InvalidCommandError || error instanceof BoardSelectorError || error instanceof InvalidIdError) {
    return { status: 400, body: { code: 'bad_request', message: error.message } };
  }
  if (error instanceof UnknownBoardError || error instanceof NotFoundError) {
    return { status: 404, body: { code: 'not_found', message: error.message } };
  }
  if (error instanceof BoardNameTakenError || error instanceof QueueFullError || error instanceof PortBusyError) {
    return { status: 409, body: { code: 'conflict', message: error.message } };
  }
  if (error instanceof FirmwareImageError || error instanceof FirmwareDownloadError || error instanceof UnsupportedChipError || error instanceof ProvisioningInputError) {
    return { status: 400, body: { code: 'bad_request', message: error.message } };
  }
  if (error instanceof FlashError || error instanceof ProvisionError || error instanceof SerialCopyError) {
    return { status: 502, body: { code: 'device', message: error.message } };
  }
  return { status: 500, body: { code: 'internal', message: (error as Error)?.message ?? String(error) } };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export class ApiServer {
  private readonly server: http.Server;
  private readonly wss: WebSocketServer;
  private readonly tokenDigest: Buffer;
  private port = 0;

  constructor(private readonly options: ApiServerOptions) {
    this.tokenDigest = digest(options.token);
    this.server = http.createServer((request, response) => void this.onRequest(request, response));
    this.wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => {
      for (const protocol of protocols) if (protocol.startsWith(API_TOKEN_SUBPROTOCOL_PREFIX)) return protocol;
      return false;
    } });
    this.server.on('upgrade', (request, socket, head) => {
      const url = new URL(request.url ?? '/', 'http://localhost');
      if (url.pathname !== API_EVENTS_PATH || !this.hostAllowed(request) || !this.authorized(request)) {
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(request, socket, head, (ws) => this.onSocket(ws));
    });
  }

  get url(): string {
    return `http://${this.options.host ?? '127.0.0.1'}:${this.port}`;
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => resolve());
    });
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
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private hostAllowed(request: http.IncomingMessage): boolean {
    const host = request.headers.host ?? '';
    return [`127.0.0.1:${this.port}`, `localhost:${this.port}`, `[::1]:${this.port}`].includes(host);
  }

  private authorized(request: http.IncomingMessage): boolean {
    let presented: string | undefined;
    const header = request.headers.authorization;
    if (header?.startsWith('Bearer ')) presented = header.slice('Bearer '.length).trim();
    const protocols = request.headers['sec-websocket-protocol'];
    if (!presented && typeof protocols === 'string') {
      presented = protocols.split(',').map((p) => p.trim()).find((p) => p.startsWith(API_TOKEN_SUBPROTOCOL_PREFIX))
        ?.slice(API_TOKEN_SUBPROTOCOL_PREFIX.length);
    }
    return presented !== undefined && timingSafeEqual(digest(presented), this.tokenDigest);
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
      if (!this.authorized(request)) throw new RequestError(401, 'unauthorized', 'missing or wrong API token');
      const url = new URL(request.url ?? '/', 'http://localhost');
      route = url.pathname.replace(/^\/api\//, '');
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

function readBody(request: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new RequestError(413, 'bad_request', `request body is larger than ${MAX_BODY_BYTES / 1024 / 1024} MiB`));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

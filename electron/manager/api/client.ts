/**
 * Node client of the local API (used by the CLI, virtual boards and tests). Typed by the
 * contract; errors from the service arrive as ApiRequestError with the service's code.
 */
import WebSocket from 'ws';
import {
  API_EVENTS_BATCH_PARAM,
  API_EVENTS_PATH,
  type ApiError,
  type ApiEvent,
  type ApiResponse,
  type RouteInput,
  type RouteName,
  type RouteOutput,
} from './contract.js';

export class ApiRequestError extends Error {
  override name = 'ApiRequestError';
  constructor(
    readonly code: ApiError['code'] | 'unreachable',
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  async call<R extends RouteName>(route: R, input: RouteInput<R>, options: { signal?: AbortSignal } = {}): Promise<RouteOutput<R>> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}/api/${route}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(input),
        signal: options.signal,
      });
    } catch (error) {
      // fetch says only "fetch failed"; why (refused, reset, a timeout) is its cause.
      const cause = (error as Error & { cause?: { message?: string } }).cause?.message;
      throw new ApiRequestError(
        'unreachable',
        `cannot reach the Cloudmanager service at ${this.baseUrl}: ${(error as Error).message}${cause ? ` (${cause})` : ''}`,
      );
    }
    let body: ApiResponse<RouteOutput<R>>;
    try {
      body = (await response.json()) as ApiResponse<RouteOutput<R>>;
    } catch {
      throw new ApiRequestError('internal', `the service answered ${response.status} without a JSON body`, response.status);
    }
    if (!body.ok) throw new ApiRequestError(body.error.code, body.error.message, response.status);
    return body.result;
  }

  /**
   * Opens the event stream; resolves once it is connected. `onEvent` is called once per
   * event, in order, batches unpacked. A `resync` event means events were dropped because
   * this process did not read them fast enough: what it follows should be read again.
   */
  events(onEvent: (event: ApiEvent) => void): Promise<EventSubscription> {
    const url = `${this.baseUrl.replace(/^http/, 'ws')}${API_EVENTS_PATH}?${API_EVENTS_BATCH_PARAM}=1`;
    const socket = new WebSocket(url, { headers: { authorization: `Bearer ${this.token}` } });
    return new Promise((resolve, reject) => {
      socket.once('error', (error) => reject(new ApiRequestError('unreachable', `event stream: ${error.message}`)));
      socket.on('message', (data) => {
        for (const event of eventsOfFrame(data.toString())) {
          if (event.type === 'hello') resolve(new EventSubscription(socket));
          else onEvent(event);
        }
      });
    });
  }
}

/** The events of one frame of the events socket: one event, or a batch (a JSON array); none when it is not JSON. */
export function eventsOfFrame(text: string): ApiEvent[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [];
  }
  return (Array.isArray(parsed) ? parsed : [parsed]).filter((event): event is ApiEvent => typeof (event as ApiEvent | null)?.type === 'string');
}

export class EventSubscription {
  constructor(private readonly socket: WebSocket) {
    socket.on('error', () => undefined);
  }

  onClose(listener: () => void): void {
    this.socket.on('close', listener);
  }

  close(): void {
    this.socket.close();
  }
}

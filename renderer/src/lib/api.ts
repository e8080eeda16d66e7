/**
 * The UI's typed client of the service API. It imports the contract's *types* only; the
 * session cookie rides along (same origin) and the browser adds our Origin, which the
 * service requires of cookie requests. Views never call fetch themselves.
 */
import type { ApiError, ApiResponse, RouteInput, RouteName, RouteOutput, StagedFile } from '../../../electron/manager/api/contract.js';

/** Where staged files go (the contract's FILES_STAGE_PATH; a value, so not imported from it). */
const FILES_STAGE_PATH = '/api/files.stage';

export class ApiCallError extends Error {
  override name = 'ApiCallError';
  constructor(
    readonly code: ApiError['code'] | 'unreachable' | 'signed-out',
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export type Fetch = (input: string, init: RequestInit) => Promise<Response>;

export class UiApi {
  /** Called when the service says the session is gone (401): the page must sign in again. */
  onSignedOut: () => void = () => undefined;

  constructor(
    private readonly fetchImpl: Fetch = (input, init) => fetch(input, init),
    private readonly base = '',
  ) {}

  async call<R extends RouteName>(route: R, input: RouteInput<R>, options: { signal?: AbortSignal } = {}): Promise<RouteOutput<R>> {
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.base}/api/${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(input),
        credentials: 'same-origin',
        signal: options.signal,
      });
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error;
      throw new ApiCallError('unreachable', 'The Cloudmanager service does not answer. Is it still running?');
    }
    let body: ApiResponse<RouteOutput<R>>;
    try {
      body = (await response.json()) as ApiResponse<RouteOutput<R>>;
    } catch {
      throw new ApiCallError('internal', `The service answered ${response.status} without a readable body.`, response.status);
    }
    if (response.status === 401) {
      this.onSignedOut();
      throw new ApiCallError('signed-out', 'You are signed out. Open a new sign-in link (run `npx mbm ui`).', 401);
    }
    if (!body.ok) throw new ApiCallError(body.error.code, body.error.message, response.status);
    return body.result;
  }

  /** Sends raw bytes (a file to stage for an upload) with upload progress. */
  upload(file: Blob, onProgress: (sent: number, total: number) => void): Promise<StagedFile> {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open('POST', `${this.base}${FILES_STAGE_PATH}`);
      request.setRequestHeader('content-type', 'application/octet-stream');
      request.upload.onprogress = (event) => onProgress(event.loaded, event.total || file.size);
      request.onerror = () => reject(new ApiCallError('unreachable', 'The upload to the service failed.'));
      request.onload = () => {
        let body: ApiResponse<StagedFile>;
        try {
          body = JSON.parse(request.responseText) as ApiResponse<StagedFile>;
        } catch {
          reject(new ApiCallError('internal', `The service answered ${request.status} without a readable body.`, request.status));
          return;
        }
        if (request.status === 401) this.onSignedOut();
        if (body.ok) resolve(body.result);
        else reject(new ApiCallError(body.error.code, body.error.message, request.status));
      };
      request.send(file);
    });
  }
}

/** A message for the user from any error a call can throw. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiCallError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

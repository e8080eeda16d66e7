/**
 * How the API answers an error: by its kind (errors.ts), never by its message text. Shared
 * by the HTTP server and the manager bridge (a standby manager answers with what the
 * active one answered its forwarded request).
 */
import { ZodError } from 'zod';
import type { ApiError, ApiErrorCode } from './contract.js';
import { ManagerError, type ErrorKind } from '../errors.js';

/** An error with its HTTP status decided already (a bad request line, or the active manager's answer). */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const STATUS_OF: Record<ErrorKind, number> = { bad_request: 400, not_found: 404, conflict: 409, device: 502, unavailable: 503 };

/** The status and body an error is answered with (500 `internal` for a bug). */
export function classifyError(error: unknown): { status: number; body: ApiError } {
  if (error instanceof RequestError) return { status: error.status, body: { code: error.code, message: error.message } };
  if (error instanceof ZodError) {
    const message = error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`).join('; ');
    return { status: 400, body: { code: 'bad_request', message } };
  }
  if (error instanceof ManagerError) return { status: STATUS_OF[error.kind], body: { code: error.kind, message: error.message } };
  return { status: 500, body: { code: 'internal', message: (error as Error)?.message ?? String(error) } };
}

/**
 * Errors whose cause is the request or the world (bad input, an unknown board, a busy
 * port, a device that failed), not a bug. Each says what kind it is, so the API answers it
 * with the right status without knowing every class (api/server.ts).
 */
export type ErrorKind = 'bad_request' | 'not_found' | 'conflict' | 'device' | 'unavailable';

export abstract class ManagerError extends Error {
  abstract readonly kind: ErrorKind;
}

/** A command a user asked for cannot be sent as it is (bad path, key, value, size). */
export class InvalidCommandError extends ManagerError {
  override name = 'InvalidCommandError';
  readonly kind: ErrorKind = 'bad_request';
}

/** The errors of flashing a board (esp-flasher.ts, esp-connect.ts). */
import { ManagerError, type ErrorKind } from '../errors.js';

export class UnsupportedChipError extends ManagerError {
  override name = 'UnsupportedChipError';
  readonly kind: ErrorKind = 'bad_request';
}
export class FlashError extends ManagerError {
  override name = 'FlashError';
  readonly kind: ErrorKind = 'device';
}
/** What the flash holds after writing is not the image (MD5 mismatch). */
export class FlashVerifyError extends FlashError {
  override name = 'FlashVerifyError';
}

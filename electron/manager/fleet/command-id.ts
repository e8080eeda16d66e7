/**
 * Command ids (CIDs, firmware/PROTOCOL.md): the time in base 36 and 6 random bytes, base64url;
 * and the order of the queue entry ids (EIDs) Redis gives the commands.
 */
import { randomBytes } from 'node:crypto';

/** Stream entry ids compared as §2 says: the ms part, then the sequence. */
export function streamIdGreater(a: string, b: string): boolean {
  const [ams, aseq] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bms, bseq] = b.split('-').map(BigInt) as [bigint, bigint];
  return ams !== bms ? ams > bms : aseq > bseq;
}

export function newCommandId(): string {
  // Random bytes drawn a few thousand at a time: a broadcast makes an id per board, and one
  // draw each cost ~20 µs (profiled; 1.5 % of the manager's CPU at a 10,000-board broadcast).
  if (idBytesAt + ID_RANDOM_BYTES > idBytes.length) {
    idBytes = randomBytes(ID_RANDOM_BYTES * 1024);
    idBytesAt = 0;
  }
  const random = idBytes.toString('base64url', idBytesAt, idBytesAt + ID_RANDOM_BYTES);
  idBytesAt += ID_RANDOM_BYTES;
  return `c${Date.now().toString(36)}${random}`;
}
const ID_RANDOM_BYTES = 6;
let idBytes = Buffer.alloc(0);
let idBytesAt = 0;

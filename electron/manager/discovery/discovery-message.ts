/**
 * The two datagrams of board discovery (firmware/PROTOCOL.md, "Finding the service again"):
 * a board's request `cm-find 1 <id> <nonce>` and the service's answer
 * `cm-here 1 <id> <nonce> <host> <port> <mac>`. Pure: no sockets, no clock.
 */
import { createHmac } from 'node:crypto';

/** UDP port boards send their requests to when their config has no `dp`. */
export const DEFAULT_DISCOVERY_PORT = 18268;
/** The port for an option: 0 and undefined mean the default (discovery never runs on "any port"). */
export function discoveryPortOf(option: number | undefined): number {
  const port = option === undefined || option === 0 ? DEFAULT_DISCOVERY_PORT : option;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`the discovery port must be a whole number from 1 to 65535 (0 for ${DEFAULT_DISCOVERY_PORT}), not ${String(option)}`);
  }
  return port;
}

/** A longer datagram is not a request: dropped before it is even decoded. */
export const MAX_REQUEST_BYTES = 128;
/** The shared secret: 32 random bytes as 64 lowercase hex characters. */
export const DISCOVERY_KEY_PATTERN = /^[0-9a-f]{64}$/;

// Exactly the wire format: one space between fields, nothing before or after. JavaScript's
// `$` (without the m flag) matches only at the very end, so a trailing newline fails too.
const REQUEST = /^cm-find 1 ([a-z0-9-]{1,32}) ([0-9a-f]{32})$/;

export interface DiscoveryRequest {
  boardId: string;
  nonce: string;
}

/** The request a datagram holds, or undefined when it is anything else. */
export function parseDiscoveryRequest(datagram: Buffer): DiscoveryRequest | undefined {
  if (datagram.length > MAX_REQUEST_BYTES) return undefined;
  // latin1 maps every byte to one character, so a non-ASCII byte cannot pass the pattern.
  const match = REQUEST.exec(datagram.toString('latin1'));
  return match ? { boardId: match[1]!, nonce: match[2]! } : undefined;
}

/**
 * The answer to `request`: where Redis is now, signed with the board's key. The HMAC key is
 * the ASCII text of the 64-character hex key (not the bytes it spells), as boards use it.
 */
export function discoveryAnswer(request: DiscoveryRequest, host: string, port: number, key: string): string {
  const text = `cm-here 1 ${request.boardId} ${request.nonce} ${host} ${port}`;
  const mac = createHmac('sha256', Buffer.from(key, 'ascii')).update(text, 'ascii').digest('hex');
  return `${text} ${mac}`;
}

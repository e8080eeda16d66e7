/**
 * What a board makes of the error replies a Redis Cluster or a failover produces
 * (firmware/PROTOCOL.md §8, "Redis Cluster and failover"). The reference board follows
 * these rules; the MicroPython client (firmware/cm.py) follows the same ones.
 */
import { RespError } from '../redis/resp-codec.js';

export interface NodeAddress {
  host: string;
  port: number;
}

/**
 * Replies that say "not here, not now" rather than "this request is wrong": an uplink entry
 * refused with one of them is kept and sent again after reconnecting, never dropped.
 * MOVED/ASK: another node serves the slot; TRYAGAIN: the slot is being migrated;
 * CLUSTERDOWN: the cluster is failing over; LOADING: the node is starting; READONLY: the
 * node became a replica; MASTERDOWN: a replica lost its primary; UNBLOCKED: a blocked read
 * ended because the node changed role.
 */
const NOT_HERE_NOW = new Set(['MOVED', 'ASK', 'TRYAGAIN', 'CLUSTERDOWN', 'LOADING', 'READONLY', 'MASTERDOWN', 'UNBLOCKED']);

export function isRedirectOrFailover(error: unknown): boolean {
  return error instanceof RespError && NOT_HERE_NOW.has(error.code);
}

/** The node a `-MOVED <slot> <host>:<port>` reply names; undefined for any other error (or a malformed one). */
export function movedTarget(error: unknown): NodeAddress | undefined {
  if (!(error instanceof RespError) || error.code !== 'MOVED') return undefined;
  const endpoint = error.message.split(' ')[2] ?? '';
  const colon = endpoint.lastIndexOf(':');
  const port = Number(endpoint.slice(colon + 1));
  // Redis writes an IPv6 address in brackets; an empty host means "the node you asked" (cluster-preferred-endpoint-type unknown-endpoint).
  const host = endpoint.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  if (colon < 0 || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return { host, port };
}

/**
 * Where the discovery responder listens, worked out from what Redis is bound to and the
 * computer's interfaces. Pure given its inputs (tests hand in an interface list).
 *
 * Boards broadcast to their subnet's directed broadcast address. Linux and macOS deliver
 * such a datagram only to sockets bound to that broadcast address or to the wildcard, so
 * besides one socket per bind address there is one per broadcast address; Windows
 * delivers broadcasts to sockets bound to the interface's own address, so it needs none.
 */
import net from 'node:net';
import type { NetworkInterfaces } from '../network-access.js';

export interface BroadcastListener {
  /** The subnet's directed broadcast address, e.g. 192.168.1.255. */
  address: string;
  /** The bind address whose socket sends the answers to requests received here. */
  answerFrom: string;
}

export interface ListenPlan {
  /** IPv4 addresses Redis lets boards in on: one socket each (unicast requests, and answers). */
  unicast: string[];
  /** One socket per broadcast address (two bind addresses on one subnet share it). */
  broadcast: BroadcastListener[];
}

// Redis's IPv6 wildcard (`::`) is IPv6-only (it sets IPV6_V6ONLY): IPv4 boards are not let in there.
const WILDCARDS = new Set(['0.0.0.0', '*']);

function toInt(address: string): number {
  return address.split('.').reduce((value, part) => ((value << 8) | Number(part)) >>> 0, 0);
}

function toAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join('.');
}

function isIpv4Info(info: { family: string | number }): boolean {
  // Node 18.0–18.3 reported the family as a number.
  return String(info.family) === 'IPv4' || String(info.family) === '4';
}

/** The netmask of the interface `address` belongs to: its own entry, else a subnet holding it (127.0.0.2 on lo's 127.0.0.1/8). */
function netmaskOf(address: string, interfaces: NetworkInterfaces): string | undefined {
  const infos = Object.values(interfaces)
    .flatMap((list) => list ?? [])
    .filter((info) => isIpv4Info(info) && net.isIPv4(info.netmask));
  const own = infos.find((info) => info.address === address);
  if (own) return own.netmask;
  const wanted = toInt(address);
  return infos.find((info) => {
    const mask = toInt(info.netmask);
    return (toInt(info.address) & mask) >>> 0 === (wanted & mask) >>> 0;
  })?.netmask;
}

/** The directed broadcast address of `address`'s subnet; undefined for /31, /32 (no broadcast). */
export function broadcastAddress(address: string, netmask: string): string | undefined {
  const mask = toInt(netmask);
  if (~mask >>> 0 < 3) return undefined;
  return toAddress(((toInt(address) & mask) | ~mask) >>> 0);
}

/**
 * The sockets to open for Redis's bind addresses. A wildcard bind means every IPv4 address
 * of the computer (loopback included); IPv6 addresses are left out (boards discover over
 * IPv4 only); `localhost` is 127.0.0.1.
 */
export function listenPlan(bind: readonly string[], interfaces: NetworkInterfaces, platform: NodeJS.Platform = process.platform): ListenPlan {
  const unicast: string[] = [];
  const add = (address: string) => {
    if (net.isIPv4(address) && !unicast.includes(address)) unicast.push(address);
  };
  for (const address of bind) {
    if (WILDCARDS.has(address)) {
      for (const info of Object.values(interfaces).flatMap((list) => list ?? [])) if (isIpv4Info(info)) add(info.address);
    } else add(address === 'localhost' ? '127.0.0.1' : address);
  }
  const broadcast: BroadcastListener[] = [];
  if (platform !== 'win32') {
    for (const address of unicast) {
      const netmask = netmaskOf(address, interfaces);
      const target = netmask ? broadcastAddress(address, netmask) : undefined;
      if (target && !broadcast.some((listener) => listener.address === target)) broadcast.push({ address: target, answerFrom: address });
    }
  }
  return { unicast, broadcast };
}

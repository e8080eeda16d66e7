/**
 * Board discovery's datagrams and where the responder listens (firmware/PROTOCOL.md,
 * "Finding the service again"): the exact request format, the signed answer, and the
 * sockets worked out from Redis's bind addresses and the interface list.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { discoveryAnswer, discoveryPortOf, parseDiscoveryRequest } from '../../electron/manager/discovery/discovery-message.js';
import { broadcastAddress, listenPlan } from '../../electron/manager/discovery/discovery-addresses.js';
import type { NetworkInterfaces } from '../../electron/manager/network-access.js';

const NONCE = '00112233445566778899aabbccddeeff';
const KEY = 'f0e1d2c3b4a5968778695a4b3c2d1e0f'.repeat(2);

const info = (address: string, netmask: string, internal = false) =>
  ({ address, netmask, family: 'IPv4', mac: '00:00:00:00:00:00', internal, cidr: null }) as unknown as NonNullable<NetworkInterfaces[string]>[number];

/** A laptop: loopback, wifi on 192.168.1.0/24, a VPN point-to-point /32, and IPv6. */
const INTERFACES: NetworkInterfaces = {
  lo: [info('127.0.0.1', '255.0.0.0', true)],
  wlan0: [
    info('192.168.1.23', '255.255.255.0'),
    { address: 'fe80::1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '00:00:00:00:00:00', internal: false, cidr: null, scopeid: 3 },
  ],
  tun0: [info('10.8.0.6', '255.255.255.255')],
};

describe('discovery request', () => {
  it('reads the board id and nonce of a well-formed request', () => {
    expect(parseDiscoveryRequest(Buffer.from(`cm-find 1 kitchen-1 ${NONCE}`))).toEqual({ boardId: 'kitchen-1', nonce: NONCE });
    expect(parseDiscoveryRequest(Buffer.from(`cm-find 1 ${'b'.repeat(32)} ${NONCE}`))).toEqual({ boardId: 'b'.repeat(32), nonce: NONCE });
  });

  it.each([
    ['a trailing newline', `cm-find 1 b1 ${NONCE}\n`],
    ['two spaces', `cm-find 1  b1 ${NONCE}`],
    ['another version', `cm-find 2 b1 ${NONCE}`],
    ['an upper-case id', `cm-find 1 B1 ${NONCE}`],
    ['an id of 33 characters', `cm-find 1 ${'b'.repeat(33)} ${NONCE}`],
    ['a short nonce', `cm-find 1 b1 ${NONCE.slice(1)}`],
    ['an upper-case nonce', `cm-find 1 b1 ${NONCE.toUpperCase()}`],
    ['an answer instead of a request', `cm-here 1 b1 ${NONCE} 127.0.0.1 18266 ${'0'.repeat(64)}`],
    ['a missing nonce', 'cm-find 1 b1'],
  ])('ignores %s', (_what, text) => {
    expect(parseDiscoveryRequest(Buffer.from(text))).toBeUndefined();
  });

  it('ignores a non-ASCII byte and anything over 128 bytes', () => {
    const request = Buffer.from(`cm-find 1 b1 ${NONCE}`);
    const withHighByte = Buffer.from(request);
    withHighByte[8] = 0xb1; // a latin1 "±" where the board id starts
    expect(parseDiscoveryRequest(withHighByte)).toBeUndefined();
    expect(parseDiscoveryRequest(Buffer.concat([request, Buffer.alloc(129 - request.length, 0x20)]))).toBeUndefined();
  });
});

describe('discovery answer', () => {
  it('says where Redis is, signed with HMAC-SHA256 keyed by the ASCII text of the key', () => {
    const answer = discoveryAnswer({ boardId: 'b1', nonce: NONCE }, '192.168.1.23', 18266, KEY);
    const signed = `cm-here 1 b1 ${NONCE} 192.168.1.23 18266`;
    expect(answer).toBe(`${signed} ${createHmac('sha256', Buffer.from(KEY, 'ascii')).update(signed).digest('hex')}`);
    // Not keyed by the bytes the hex spells: boards use the text, so must the service.
    expect(answer).not.toContain(createHmac('sha256', Buffer.from(KEY, 'hex')).update(signed).digest('hex'));
  });
});

describe('discovery port', () => {
  it('is 18268 unless set; 0 means 18268 too, never "any port"; anything but 1-65535 is refused', () => {
    expect(discoveryPortOf(undefined)).toBe(18268);
    expect(discoveryPortOf(0)).toBe(18268);
    expect(discoveryPortOf(40000)).toBe(40000);
    for (const wrong of [-1, 65536, 1.5, Number.NaN]) expect(() => discoveryPortOf(wrong)).toThrow(/from 1 to 65535/);
  });
});

describe('where the responder listens', () => {
  it('listens on the bind addresses and their broadcast addresses only, not on other interfaces', () => {
    expect(listenPlan(['127.0.0.1'], INTERFACES, 'linux')).toEqual({
      unicast: ['127.0.0.1'],
      broadcast: [{ address: '127.255.255.255', answerFrom: '127.0.0.1' }],
    });
  });

  it('shares one broadcast socket between two addresses of one subnet (127.0.0.2 is on lo/8 without its own entry)', () => {
    expect(listenPlan(['127.0.0.1', '127.0.0.2', '192.168.1.23'], INTERFACES, 'linux')).toEqual({
      unicast: ['127.0.0.1', '127.0.0.2', '192.168.1.23'],
      broadcast: [
        { address: '127.255.255.255', answerFrom: '127.0.0.1' },
        { address: '192.168.1.255', answerFrom: '192.168.1.23' },
      ],
    });
  });

  it('takes a wildcard bind as every IPv4 address; a /32 has no broadcast address; IPv6 is left out', () => {
    expect(listenPlan(['0.0.0.0', '::1'], INTERFACES, 'linux')).toEqual({
      unicast: ['127.0.0.1', '192.168.1.23', '10.8.0.6'],
      broadcast: [
        { address: '127.255.255.255', answerFrom: '127.0.0.1' },
        { address: '192.168.1.255', answerFrom: '192.168.1.23' },
      ],
    });
  });

  it('opens no broadcast sockets on Windows (its sockets on the interface address receive broadcasts)', () => {
    expect(listenPlan(['127.0.0.1', '192.168.1.23'], INTERFACES, 'win32')).toEqual({ unicast: ['127.0.0.1', '192.168.1.23'], broadcast: [] });
  });

  it('computes directed broadcast addresses from the netmask', () => {
    expect(broadcastAddress('10.1.2.3', '255.255.240.0')).toBe('10.1.15.255');
    expect(broadcastAddress('172.16.5.4', '255.255.255.252')).toBe('172.16.5.7');
    expect(broadcastAddress('172.16.5.4', '255.255.255.254')).toBeUndefined();
  });
});

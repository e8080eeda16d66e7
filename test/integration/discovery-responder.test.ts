/**
 * The discovery responder over real UDP on loopback, as a board meets it: it answers an
 * enrolled board that has a key with where Redis is, signed so the board can tell a forged
 * answer; it says nothing to anyone else, nothing on addresses Redis does not listen on,
 * and no more than 5 times a second per board.
 *
 * "Nothing" is observed without sleeping: the responder handles datagrams in the order
 * they arrive, so once a later valid request (the barrier) is answered, an earlier one
 * that was going to be answered would have been too.
 */
import { createHmac } from 'node:crypto';
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { DiscoveryBindError, DiscoveryResponder, type DiscoveryResponderOptions } from '../../electron/manager/discovery/discovery-responder.js';
import type { NetworkInterfaces } from '../../electron/manager/network-access.js';
import { DiscoveryClient, freeUdpPort, newNonce } from '../helpers/discovery-client.js';

const KEYS: Record<string, string> = {
  kitchen: 'a1'.repeat(32),
  garage: 'b2'.repeat(32),
};
const REDIS = { host: '192.168.1.23', port: 18266 };

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A responder on a free port. Its clock moves a second per call unless a test brings its own. */
async function startResponder(options: Partial<DiscoveryResponderOptions> = {}): Promise<DiscoveryResponder> {
  let tick = 0;
  const responder = await DiscoveryResponder.start({
    bind: ['127.0.0.1'],
    port: await freeUdpPort(),
    advertise: () => REDIS,
    keyFor: (boardId) => KEYS[boardId],
    now: () => (tick += 1_000),
    ...options,
  });
  cleanups.push(() => responder.close());
  return responder;
}

async function openClient(address?: string): Promise<DiscoveryClient> {
  const client = await DiscoveryClient.open(address);
  cleanups.push(() => client.close());
  return client;
}

/** Checks an answer as a board does; returns its host and port. */
function verifiedAnswer(answer: string, boardId: string, nonce: string): { host: string; port: number } {
  const fields = answer.split(' ');
  expect(fields.slice(0, 4)).toEqual(['cm-here', '1', boardId, nonce]);
  expect(fields).toHaveLength(7);
  const signed = fields.slice(0, 6).join(' ');
  expect(fields[6]).toBe(createHmac('sha256', Buffer.from(KEYS[boardId]!, 'ascii')).update(signed).digest('hex'));
  return { host: fields[4]!, port: Number(fields[5]) };
}

/** Sends a valid request and waits for its answer: what `client` received before it came in the same order. */
async function barrier(client: DiscoveryClient, port: number, address = '127.0.0.1'): Promise<string> {
  const nonce = await client.request('garage', port, address);
  return client.answerTo(nonce);
}

async function bindPlain(address: string, port: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => resolve());
  });
  return socket;
}

describe('discovery responder', () => {
  it('answers an enrolled board with the advertised Redis host and port, signed with its key', async () => {
    const responder = await startResponder();
    const client = await openClient();
    const nonce = await client.request('kitchen', responder.port);
    expect(verifiedAnswer(await client.answerTo(nonce), 'kitchen', nonce)).toEqual(REDIS);
  });

  it('says nothing to an unknown board, a board without a key, a malformed or an oversized request', async () => {
    const responder = await startResponder({ keyFor: (boardId) => (boardId === 'old-board' ? undefined : KEYS[boardId]) });
    const client = await openClient();
    const nonce = newNonce();
    const ignored = [
      `cm-find 1 stranger ${nonce}`,
      `cm-find 1 old-board ${nonce}`,
      `cm-find 1 kitchen ${nonce}\n`,
      `cm-find 1 kitchen ${nonce.toUpperCase()}`,
      `cm-find 1 kitchen ${nonce} 127.0.0.1`,
      `cm-find 1 kitchen ${nonce}`.padEnd(129, ' '),
      'GET / HTTP/1.1',
      Buffer.alloc(2048, 0x41),
    ];
    for (const datagram of ignored) await client.send(datagram, responder.port);
    const answer = await barrier(client, responder.port);
    expect(client.received).toEqual([answer]);
  });

  it('answers a board at most 5 times a second (the 6th request within the second gets nothing)', async () => {
    let now = 50_000;
    const responder = await startResponder({ now: () => now });
    const client = await openClient();
    const nonces: string[] = [];
    for (let count = 0; count < 6; count++) nonces.push(await client.request('kitchen', responder.port));
    await barrier(client, responder.port); // another board: its own limit
    const answeredNonces = () =>
      client.received
        .map((text) => text.split(' '))
        .filter((fields) => fields[2] === 'kitchen')
        .map((fields) => fields[3]);
    expect(answeredNonces()).toEqual(nonces.slice(0, 5));

    now += 999;
    await client.request('kitchen', responder.port);
    await barrier(client, responder.port);
    expect(answeredNonces()).toHaveLength(5);

    now += 1;
    const later = await client.request('kitchen', responder.port);
    verifiedAnswer(await client.answerTo(later), 'kitchen', later);
  });

  it('listens only where Redis does: no socket for another interface, no answer on an address it is not bound to', async () => {
    const interfaces: NetworkInterfaces = {
      lo: [{ address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
      eth0: [{ address: '192.168.77.5', netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal: false, cidr: '192.168.77.5/24' }],
    };
    const responder = await startResponder({ interfaces: () => interfaces });
    expect(responder.addresses).toEqual([`127.0.0.1:${responder.port}`, `127.255.255.255:${responder.port}`]);

    const client = await openClient();
    await client.request('kitchen', responder.port, '127.0.0.2');
    const answer = await barrier(client, responder.port);
    expect(client.received).toEqual([answer]);
  });

  it('answers a broadcast to 127.255.255.255 when it is bound on 127.0.0.1 (from the unicast address)', async () => {
    const responder = await startResponder();
    const client = await openClient('127.0.0.5');
    const nonce = await client.request('kitchen', responder.port, '127.255.255.255');
    expect(verifiedAnswer(await client.answerTo(nonce), 'kitchen', nonce)).toEqual(REDIS);
  });

  it('answers with the address the request came in on when the advertised host is a name (boards take IPv4 only)', async () => {
    const responder = await startResponder({ bind: ['127.0.0.1', '127.0.0.2'], advertise: () => ({ host: 'my-computer.local', port: 18300 }) });
    const client = await openClient();
    const nonce = await client.request('kitchen', responder.port, '127.0.0.2');
    expect(verifiedAnswer(await client.answerTo(nonce), 'kitchen', nonce)).toEqual({ host: '127.0.0.2', port: 18300 });
  });

  it('refuses to start when its port is taken, leaving no socket open; close() frees every socket', async () => {
    const port = await freeUdpPort();
    const occupant = await bindPlain('127.0.0.1', port);
    const refused = await startResponder({ port }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DiscoveryBindError);
    expect(refused).toMatchObject({ code: 'EADDRINUSE', address: '127.0.0.1', port });
    expect((refused as Error).message).toContain(`UDP port ${port} on 127.0.0.1 is used by another program`);
    await new Promise<void>((resolve) => occupant.close(() => resolve()));

    const responder = await startResponder({ port });
    expect(responder.addresses).toEqual([`127.0.0.1:${port}`, `127.255.255.255:${port}`]);
    await responder.close();
    // Sockets without reuseAddr can take both addresses again only if nothing holds them.
    for (const address of ['127.0.0.1', '127.255.255.255']) {
      const socket = await bindPlain(address, port);
      await new Promise<void>((resolve) => socket.close(() => resolve()));
    }
  });
});

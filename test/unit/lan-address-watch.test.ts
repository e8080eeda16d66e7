/**
 * The watcher that follows the chosen LAN address through a new DHCP lease: what it
 * decides for each interface list, that it reports a lost address once (not every few
 * seconds), and that a move that failed is tried again on the next look.
 */
import type os from 'node:os';
import { describe, expect, it } from 'vitest';
import { LanAddressWatch, decideLanWatch, type LanAddressMove, type LanChoice } from '../../electron/manager/lan-address-watch.js';
import type { NetworkInterfaces } from '../../electron/manager/network-access.js';
import { waitFor } from '../helpers/lab.js';

function ipv4(address: string, internal = false): os.NetworkInterfaceInfo {
  return { address, netmask: '255.255.255.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal, cidr: null };
}

const lo = [ipv4('127.0.0.1', true)];
const chosen: LanChoice = { address: '192.168.1.23', interfaceName: 'wlan0', listening: true };

describe('decideLanWatch', () => {
  it('does nothing without a choice (loopback only), whatever the computer has', () => {
    expect(decideLanWatch(null, { lo, wlan0: [ipv4('192.168.1.77')] })).toEqual({ action: 'nothing' });
  });

  it('does nothing while the address is there', () => {
    expect(decideLanWatch(chosen, { lo, wlan0: [ipv4('192.168.1.23')] })).toEqual({ action: 'nothing' });
  });

  it('follows the address to a new one of its interface, never to another interface', () => {
    expect(decideLanWatch(chosen, { lo, eth0: [ipv4('10.0.0.5')], wlan0: [ipv4('192.168.1.77')] })).toEqual({
      action: 'follow',
      move: { from: '192.168.1.23', to: { name: 'wlan0', address: '192.168.1.77', family: 'IPv4' }, wasListening: true },
    });
    expect(decideLanWatch(chosen, { lo, eth0: [ipv4('10.0.0.5')], wlan0: [] })).toEqual({ action: 'wait' });
    expect(decideLanWatch({ ...chosen, interfaceName: undefined }, { lo, wlan0: [ipv4('192.168.1.77')] })).toEqual({ action: 'wait' });
  });

  it('takes up an address that was gone at start once it (or a new one of its interface) is there', () => {
    const pending = { ...chosen, listening: false };
    expect(decideLanWatch(pending, { lo })).toEqual({ action: 'wait' });
    expect(decideLanWatch(pending, { lo, wlan0: [ipv4('192.168.1.23')] })).toEqual({
      action: 'follow',
      move: { from: '192.168.1.23', to: { name: 'wlan0', address: '192.168.1.23', family: 'IPv4' }, wasListening: false },
    });
    expect(decideLanWatch(pending, { lo, wlan0: [ipv4('192.168.1.77')] })).toMatchObject({
      action: 'follow',
      move: { to: { address: '192.168.1.77' }, wasListening: false },
    });
  });
});

describe('LanAddressWatch', () => {
  function watch(interfaces: { now: NetworkInterfaces }, follow: (move: LanAddressMove) => Promise<void>, intervalMs = 1_000) {
    const logs: string[] = [];
    let choice: LanChoice | null = chosen;
    const watcher = new LanAddressWatch({
      choice: () => choice,
      interfaces: () => interfaces.now,
      follow: async (move) => {
        await follow(move);
        choice = { address: move.to.address, interfaceName: move.to.name, listening: true };
      },
      intervalMs,
      log: (level, message) => logs.push(`${level}: ${message}`),
    });
    return { watcher, logs };
  }

  it('reports a lost address once, and again only after it was found again and lost again', async () => {
    const interfaces = { now: { lo } as NetworkInterfaces };
    const { watcher, logs } = watch(interfaces, async () => undefined);
    await watcher.check();
    await watcher.check();
    expect(logs).toEqual([expect.stringMatching(/^warn: this computer no longer has the address 192\.168\.1\.23 and wlan0 has no other address yet/)]);
    interfaces.now = { lo, wlan0: [ipv4('192.168.1.23')] };
    await watcher.check();
    interfaces.now = { lo };
    await watcher.check();
    expect(logs).toHaveLength(2);
  });

  it('tries a move that failed again on the next look, reporting the failure once', async () => {
    const interfaces = { now: { lo, wlan0: [ipv4('192.168.1.77')] } as NetworkInterfaces };
    const tried: string[] = [];
    let refuse = true;
    const { watcher, logs } = watch(interfaces, async (move) => {
      tried.push(move.to.address);
      if (refuse) throw new Error('Redis could not listen there');
    });
    await watcher.check();
    await watcher.check();
    expect(logs).toEqual(['warn: could not listen on 192.168.1.77 (wlan0) instead of 192.168.1.23, trying again: Redis could not listen there']);
    refuse = false;
    await watcher.check();
    await watcher.check(); // followed: nothing more to do
    expect(tried).toEqual(['192.168.1.77', '192.168.1.77', '192.168.1.77']);
  });

  it('looks by itself every period once started', async () => {
    const interfaces = { now: { lo, wlan0: [ipv4('192.168.1.23')] } as NetworkInterfaces };
    const followed: string[] = [];
    const { watcher } = watch(interfaces, async (move) => void followed.push(move.to.address), 10);
    watcher.start();
    interfaces.now = { lo, wlan0: [ipv4('192.168.1.77')] };
    await waitFor(() => followed.length === 1, 5_000, 'the watcher to follow the new address');
    interfaces.now = { lo, wlan0: [ipv4('192.168.1.99')] };
    await waitFor(() => followed.length === 2, 5_000, 'the watcher to follow the next address');
    await watcher.stop();
    expect(followed).toEqual(['192.168.1.77', '192.168.1.99']);
  });

  it('refuses a period that is not a positive number of ms', () => {
    for (const intervalMs of [0, -5, Number.NaN]) {
      expect(() => new LanAddressWatch({ choice: () => null, interfaces: () => ({}), follow: async () => undefined, intervalMs })).toThrow(RangeError);
    }
  });
});

/**
 * Choosing the LAN address the embedded Redis listens on: which interfaces are offered,
 * how the choice is saved and read back, and what a wrong choice tells the user.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type os from 'node:os';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  NetworkAccessError,
  bindAddresses,
  checkLanAddress,
  followLanAddress,
  lanInterfaces,
  networkSettingsFile,
  readNetworkSettings,
  startupBindAddresses,
  writeNetworkSettings,
  type NetworkInterfaces,
} from '../../electron/manager/network-access.js';

function info(address: string, family: 'IPv4' | 'IPv6', internal = false): os.NetworkInterfaceInfo {
  const base = { address, netmask: '', mac: '00:00:00:00:00:00', internal, cidr: null };
  return family === 'IPv4' ? { ...base, family } : { ...base, family, scopeid: 0 };
}

/** A laptop: loopback, wifi with IPv4 + IPv6 + link-local, a docker bridge, a VPN, a down interface. */
const LAPTOP: NetworkInterfaces = {
  wlp2s0: [info('fe80::1c2:3ff:fe4:5', 'IPv6'), info('2001:db8::42', 'IPv6'), info('192.168.1.23', 'IPv4')],
  lo: [info('127.0.0.1', 'IPv4', true), info('::1', 'IPv6', true)],
  tun0: [info('10.8.0.2', 'IPv4')],
  docker0: [info('172.17.0.1', 'IPv4'), info('FE80::42:ACFF:FE11:1', 'IPv6')],
  eth1: undefined,
  enp0s31f6: [info('192.168.1.50', 'IPv4'), info('192.168.1.51', 'IPv4')],
};

describe('lanInterfaces', () => {
  it('offers non-loopback addresses, IPv4 first, by interface name, without link-local IPv6', () => {
    expect(lanInterfaces(LAPTOP)).toEqual([
      { name: 'docker0', address: '172.17.0.1', family: 'IPv4' },
      { name: 'enp0s31f6', address: '192.168.1.50', family: 'IPv4' },
      { name: 'enp0s31f6', address: '192.168.1.51', family: 'IPv4' },
      { name: 'tun0', address: '10.8.0.2', family: 'IPv4' },
      { name: 'wlp2s0', address: '192.168.1.23', family: 'IPv4' },
      { name: 'wlp2s0', address: '2001:db8::42', family: 'IPv6' },
    ]);
  });

  it('gives the same list whatever order the system lists interfaces in', () => {
    const reversed = Object.fromEntries(Object.entries(LAPTOP).reverse());
    expect(lanInterfaces(reversed)).toEqual(lanInterfaces(LAPTOP));
  });

  it('offers nothing on a machine with loopback only', () => {
    expect(lanInterfaces({ lo: LAPTOP['lo'] })).toEqual([]);
    expect(lanInterfaces({})).toEqual([]);
  });
});

describe('checkLanAddress', () => {
  it('accepts an address of this computer and names its interface', () => {
    expect(checkLanAddress('192.168.1.23', LAPTOP)).toEqual({ name: 'wlp2s0', address: '192.168.1.23', family: 'IPv4' });
  });

  it('refuses another address and lists the ones to choose from', () => {
    const error = (() => {
      try {
        checkLanAddress('192.168.1.99', LAPTOP);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(NetworkAccessError);
    expect((error as NetworkAccessError).reason).toBe('not-local');
    expect((error as Error).message).toBe(
      '192.168.1.99 is not an address of this computer; choose one of: 172.17.0.1 (docker0), 192.168.1.50 (enp0s31f6), ' +
        '192.168.1.51 (enp0s31f6), 10.8.0.2 (tun0), 192.168.1.23 (wlp2s0), 2001:db8::42 (wlp2s0)',
    );
  });

  it('refuses loopback, link-local and non-addresses, and says when there is nothing to choose', () => {
    expect(() => checkLanAddress('127.0.0.1', LAPTOP)).toThrow(NetworkAccessError);
    expect(() => checkLanAddress('fe80::1c2:3ff:fe4:5', LAPTOP)).toThrow(/is not an address of this computer/);
    expect(() => checkLanAddress('my laptop', LAPTOP)).toThrow(/"my laptop" is not an IP address; choose one of/);
    expect(() => checkLanAddress('192.168.1.23', { lo: LAPTOP['lo'] })).toThrow(/no network connection besides loopback/);
  });
});

describe('bind addresses', () => {
  it('always keeps loopback and adds the chosen LAN address', () => {
    expect(bindAddresses(null)).toEqual(['127.0.0.1']);
    expect(bindAddresses('192.168.1.23')).toEqual(['127.0.0.1', '192.168.1.23']);
  });

  it('starts on the saved address while the computer has it, and saves nothing', () => {
    expect(startupBindAddresses({ lanAddress: '192.168.1.23', lanInterface: 'wlp2s0' }, LAPTOP)).toEqual({
      bind: ['127.0.0.1', '192.168.1.23'],
      lan: { name: 'wlp2s0', address: '192.168.1.23', family: 'IPv4' },
      replaced: null,
      unavailable: null,
      save: null,
    });
    expect(startupBindAddresses({ lanAddress: null }, LAPTOP)).toEqual({ bind: ['127.0.0.1'], lan: null, replaced: null, unavailable: null, save: null });
  });

  it('learns the interface of a file saved before interfaces were kept', () => {
    expect(startupBindAddresses({ lanAddress: '192.168.1.23' }, LAPTOP)).toMatchObject({
      bind: ['127.0.0.1', '192.168.1.23'],
      save: { lanAddress: '192.168.1.23', lanInterface: 'wlp2s0' },
    });
  });

  it('takes the new address of the interface when the saved one is gone (a new DHCP lease), and saves it', () => {
    expect(startupBindAddresses({ lanAddress: '192.168.1.99', lanInterface: 'wlp2s0' }, LAPTOP)).toEqual({
      bind: ['127.0.0.1', '192.168.1.23'],
      lan: { name: 'wlp2s0', address: '192.168.1.23', family: 'IPv4' },
      replaced: '192.168.1.99',
      unavailable: null,
      save: { lanAddress: '192.168.1.23', lanInterface: 'wlp2s0' },
    });
  });

  it('starts on loopback only when the saved address is gone and nothing replaces it, and says which one', () => {
    const gone = { bind: ['127.0.0.1'], lan: null, replaced: null, unavailable: '192.168.7.7', save: null };
    expect(startupBindAddresses({ lanAddress: '192.168.7.7' }, LAPTOP)).toEqual(gone); // interface not known
    expect(startupBindAddresses({ lanAddress: '192.168.7.7', lanInterface: 'eth1' }, LAPTOP)).toEqual(gone); // eth1 has no address
    expect(startupBindAddresses({ lanAddress: '192.168.7.7', lanInterface: 'wlan9' }, LAPTOP)).toEqual(gone); // no such interface
  });
});

describe('followLanAddress (which address replaces a chosen one that is gone)', () => {
  it('keeps an address the computer still has, on whichever interface', () => {
    expect(followLanAddress('192.168.1.23', 'wlp2s0', LAPTOP)).toEqual({ state: 'present', at: { name: 'wlp2s0', address: '192.168.1.23', family: 'IPv4' } });
    expect(followLanAddress('10.8.0.2', 'wlp2s0', LAPTOP)).toMatchObject({ state: 'present', at: { name: 'tun0' } });
    expect(followLanAddress('2001:DB8::42', undefined, LAPTOP)).toMatchObject({ state: 'present' });
  });

  it('moves to the first address of the same family on the same interface', () => {
    expect(followLanAddress('192.168.1.7', 'enp0s31f6', LAPTOP)).toEqual({
      state: 'moved',
      to: { name: 'enp0s31f6', address: '192.168.1.50', family: 'IPv4' },
    });
    // wlp2s0 lists its IPv6 addresses first: an IPv4 choice still follows to IPv4, an IPv6 one to IPv6.
    expect(followLanAddress('192.168.1.7', 'wlp2s0', LAPTOP)).toMatchObject({ state: 'moved', to: { address: '192.168.1.23' } });
    expect(followLanAddress('2001:db8::7', 'wlp2s0', LAPTOP)).toMatchObject({ state: 'moved', to: { address: '2001:db8::42' } });
  });

  it('never takes a link-local address (no DHCP answer yet), IPv4 or IPv6', () => {
    const noLease: NetworkInterfaces = { wlan0: [info('169.254.12.7', 'IPv4'), info('fe80::2', 'IPv6')] };
    expect(followLanAddress('192.168.1.7', 'wlan0', noLease)).toEqual({ state: 'gone' });
    expect(followLanAddress('2001:db8::7', 'wlan0', noLease)).toEqual({ state: 'gone' });
    const leased: NetworkInterfaces = { wlan0: [info('169.254.12.7', 'IPv4'), info('192.168.1.8', 'IPv4')] };
    expect(followLanAddress('192.168.1.7', 'wlan0', leased)).toMatchObject({ state: 'moved', to: { address: '192.168.1.8' } });
  });

  it('never takes an address of another interface, or of the other family', () => {
    const others: NetworkInterfaces = { wlan0: [info('2001:db8::9', 'IPv6')], tun0: [info('10.8.0.2', 'IPv4')], lo: [info('127.0.0.1', 'IPv4', true)] };
    expect(followLanAddress('192.168.1.7', 'wlan0', others)).toEqual({ state: 'gone' });
    expect(followLanAddress('192.168.1.7', 'lo', others)).toEqual({ state: 'gone' });
    expect(followLanAddress('192.168.1.7', undefined, others)).toEqual({ state: 'gone' });
  });
});

describe('network settings file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cm-network-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lives in the data folder as network.json', () => {
    expect(networkSettingsFile(dir)).toBe(path.join(dir, 'network.json'));
  });

  it('reads back what was written, for IPv4, IPv6 and "loopback only"', async () => {
    const file = networkSettingsFile(dir);
    for (const lanAddress of ['192.168.1.23', '2001:db8::42', null]) {
      await writeNetworkSettings(file, { lanAddress });
      expect(await readNetworkSettings(file)).toStrictEqual({ lanAddress });
    }
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ lanAddress: null });
  });

  it('keeps the interface beside the address (and none for "loopback only"); a file without one still reads', async () => {
    const file = networkSettingsFile(dir);
    await writeNetworkSettings(file, { lanAddress: '192.168.1.23', lanInterface: 'Wi-Fi 2' });
    expect(await readNetworkSettings(file)).toStrictEqual({ lanAddress: '192.168.1.23', lanInterface: 'Wi-Fi 2' });
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ lanAddress: '192.168.1.23', lanInterface: 'Wi-Fi 2' });
    await writeNetworkSettings(file, { lanAddress: null, lanInterface: 'wlan0' });
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ lanAddress: null });
    await writeFile(file, JSON.stringify({ lanAddress: '192.168.1.23' }));
    expect(await readNetworkSettings(file)).toStrictEqual({ lanAddress: '192.168.1.23' });
    const reports: string[] = [];
    await writeFile(file, JSON.stringify({ lanAddress: '192.168.1.23', lanInterface: 'wlan0\n' }));
    expect(await readNetworkSettings(file, (m) => reports.push(m))).toEqual({ lanAddress: null });
    expect(reports).toEqual([expect.stringContaining('does not hold network settings')]);
  });

  it('means "loopback only" when the file is missing, not JSON or not settings, and says why', async () => {
    const file = networkSettingsFile(dir);
    const reports: string[] = [];
    expect(await readNetworkSettings(file, (m) => reports.push(m))).toEqual({ lanAddress: null });
    expect(reports).toEqual([]); // a missing file is the normal first start

    await writeFile(file, '{"lanAddress": "192.168.1.23"');
    expect(await readNetworkSettings(file, (m) => reports.push(m))).toEqual({ lanAddress: null });
    await writeFile(file, JSON.stringify({ lanAddress: 'rm -rf /' }));
    expect(await readNetworkSettings(file, (m) => reports.push(m))).toEqual({ lanAddress: null });
    await writeFile(file, '[]');
    expect(await readNetworkSettings(file)).toEqual({ lanAddress: null });
    expect(reports).toEqual([expect.stringContaining('is not valid JSON'), expect.stringContaining('does not hold network settings')]);
  });

  it('refuses to save something that is not an IP address, leaving the old file', async () => {
    const file = networkSettingsFile(dir);
    await writeNetworkSettings(file, { lanAddress: '192.168.1.23' });
    await expect(writeNetworkSettings(file, { lanAddress: 'not an address' })).rejects.toThrow();
    expect(await readNetworkSettings(file)).toEqual({ lanAddress: '192.168.1.23' });
  });
});

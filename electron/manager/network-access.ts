/**
 * Letting boards on the local network reach the embedded Redis, with the user's consent.
 *
 * By default the embedded server listens on 127.0.0.1 only. When the user allows it (the
 * flash wizard offers it), the server also listens on one address of a LAN interface of
 * this computer, chosen from lanInterfaces(); the choice is kept in <dataDir>/network.json
 * so the next start listens there again, and boards enrolled afterwards are given that
 * address. Loopback always stays: the manager itself connects over it.
 *
 * The pieces here are pure or take their inputs as arguments (the interface list, the
 * settings file, the supervisor), so tests can swap them. Never prints.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from './data-dir.js';
import { RedisBindError } from './redis/redis-admin.js';
import { ManagerError, type ErrorKind } from './errors.js';

export interface LanInterface {
  name: string;
  address: string;
  family: 'IPv4' | 'IPv6';
}

export interface NetworkSettings {
  /** The LAN address Redis listens on besides 127.0.0.1; null = this computer only. */
  lanAddress: string | null;
  /**
   * The interface that address was chosen on (files from before it was kept have none), so
   * a new address of that interface (a new DHCP lease) can replace it: followLanAddress().
   */
  lanInterface?: string;
}

export type NetworkInterfaces = NodeJS.Dict<os.NetworkInterfaceInfo[]>;

export type NetworkAccessFailure = 'not-local' | 'bind-refused';

/** A LAN address that cannot be used; the message says what to do instead. */
export class NetworkAccessError extends ManagerError {
  override readonly name = 'NetworkAccessError';
  readonly kind: ErrorKind = 'conflict';
  constructor(
    readonly reason: NetworkAccessFailure,
    readonly address: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const LOOPBACK = '127.0.0.1';

const networkSettingsSchema = z.object({
  lanAddress: z.union([z.ipv4(), z.ipv6()]).nullable(),
  // Windows names interfaces in words ("Wi-Fi 2"); only control characters are refused.
  lanInterface: z
    .string()
    .min(1)
    .max(256)
    .regex(/^[^\p{Cc}]+$/u, 'an interface name without control characters')
    .optional(),
});

/** The settings as kept: an interface name only beside an address. */
function settingsOf(lanAddress: string | null, lanInterface: string | undefined): NetworkSettings {
  return lanAddress !== null && lanInterface !== undefined ? { lanAddress, lanInterface } : { lanAddress };
}

/** 127.0.0.0/8, ::1 or "localhost": reachable from this computer only. */
export function isLoopbackAddress(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address === 'localhost';
}

/** The settings file in the data folder. */
/** The address boards should use, given what Redis listens on (a LAN address over loopback). */
export function advertisedHost(bind: string[], interfaces: NetworkInterfaces = os.networkInterfaces()): string {
  const specifics = bind.filter((address) => address !== '0.0.0.0' && address !== '::' && address !== '*');
  const specific = specifics.find((address) => !isLoopbackAddress(address)) ?? specifics[0];
  if (specific && !isLoopbackAddress(specific)) return specific;
  if (bind.some((address) => address === '0.0.0.0' || address === '::' || address === '*')) {
    for (const addresses of Object.values(interfaces)) {
      const lan = addresses?.find((address) => address.family === 'IPv4' && !address.internal);
      if (lan) return lan.address;
    }
  }
  return specific ?? '127.0.0.1';
}

export function networkSettingsFile(dataDir: string): string {
  return path.join(dataDir, 'network.json');
}

/** Addresses Redis listens on for a LAN choice: loopback always, plus the LAN address. */
export function bindAddresses(lanAddress: string | null): string[] {
  return lanAddress === null ? [LOOPBACK] : [LOOPBACK, lanAddress];
}

function familyOf(info: os.NetworkInterfaceInfo): LanInterface['family'] | undefined {
  // Node 18.0–18.3 reported the family as a number.
  const family = String(info.family);
  if (family === 'IPv4' || family === '4') return 'IPv4';
  if (family === 'IPv6' || family === '6') return 'IPv6';
  return undefined;
}

/** fe80::/10: valid on one link only and needs a zone id; no use to a board. */
function isLinkLocalIpv6(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address);
}

/**
 * The addresses boards on the local network could use to reach this computer: not
 * internal (loopback), no IPv6 link-local; IPv4 first (MicroPython boards speak IPv4),
 * then by interface name, each address once. Pure given its argument.
 */
export function lanInterfaces(interfaces: NetworkInterfaces = os.networkInterfaces()): LanInterface[] {
  const found: LanInterface[] = [];
  const seen = new Set<string>();
  for (const [name, infos] of Object.entries(interfaces)) {
    for (const info of infos ?? []) {
      const family = familyOf(info);
      const address = info.address.toLowerCase();
      if (info.internal || family === undefined || seen.has(address)) continue;
      if (family === 'IPv6' && isLinkLocalIpv6(address)) continue;
      seen.add(address);
      found.push({ name, address, family });
    }
  }
  const byName = (a: LanInterface, b: LanInterface) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  // Array#sort is stable: addresses of one interface keep the system's order.
  return found.sort((a, b) => (a.family === b.family ? byName(a, b) : a.family === 'IPv4' ? -1 : 1));
}

function describeChoices(choices: LanInterface[]): string {
  if (choices.length === 0) return 'this computer has no network connection besides loopback; connect it to the network of the boards first';
  return `choose one of: ${choices.map((choice) => `${choice.address} (${choice.name})`).join(', ')}`;
}

/** The interface that holds `address` now; NetworkAccessError('not-local') if none does. */
export function checkLanAddress(address: string, interfaces: NetworkInterfaces = os.networkInterfaces()): LanInterface {
  const choices = lanInterfaces(interfaces);
  const wanted = address.trim().toLowerCase();
  const match = choices.find((choice) => choice.address === wanted);
  if (match) return match;
  const what = net.isIP(wanted) === 0 ? `"${address}" is not an IP address` : `${address} is not an address of this computer`;
  throw new NetworkAccessError('not-local', address, `${what}; ${describeChoices(choices)}`);
}

/** The saved choice; a missing, unreadable-as-JSON or invalid file means "loopback only". */
export async function readNetworkSettings(file: string, onInvalid?: (message: string) => void): Promise<NetworkSettings> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { lanAddress: null };
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    onInvalid?.(`${file} is not valid JSON; boards on the local network are not let in until the choice is made again`);
    return { lanAddress: null };
  }
  const parsed = networkSettingsSchema.safeParse(json);
  if (!parsed.success) {
    onInvalid?.(`${file} does not hold network settings (${z.prettifyError(parsed.error)}); using loopback only`);
    return { lanAddress: null };
  }
  return settingsOf(parsed.data.lanAddress, parsed.data.lanInterface);
}

/** Saves the choice atomically (temp file + rename, 0600). */
export async function writeNetworkSettings(file: string, settings: NetworkSettings): Promise<void> {
  const valid = networkSettingsSchema.parse(settings);
  await writeFileAtomic(file, `${JSON.stringify(settingsOf(valid.lanAddress, valid.lanInterface), null, 2)}\n`);
}

/** 169.254.0.0/16: what a computer gives itself when DHCP did not answer; boards cannot rely on it. */
function isLinkLocalIpv4(address: string): boolean {
  return address.startsWith('169.254.');
}

/** Where a chosen LAN address stands in the interface list now. */
export type LanAddressState =
  /** The computer still has the address (on whichever interface). */
  | { state: 'present'; at: LanInterface }
  /** It is gone, and the interface it was chosen on has another one of the same family: `to`. */
  | { state: 'moved'; to: LanInterface }
  /** It is gone and there is nothing to follow it to (or the interface is not known). */
  | { state: 'gone' };

/**
 * Follows a chosen address through a new DHCP lease: when the computer no longer has it,
 * the first address of the same family on the same interface (not link-local) takes its
 * place. Never an address of another interface: that may be another network (a VPN, a
 * docker bridge) the user did not let boards in from. Pure given its arguments.
 */
export function followLanAddress(address: string, interfaceName: string | undefined, interfaces: NetworkInterfaces): LanAddressState {
  const choices = lanInterfaces(interfaces);
  const wanted = address.toLowerCase();
  const at = choices.find((choice) => choice.address === wanted);
  if (at) return { state: 'present', at };
  if (interfaceName === undefined) return { state: 'gone' };
  const family = net.isIPv6(wanted) ? 'IPv6' : 'IPv4';
  const to = choices.find((choice) => choice.name === interfaceName && choice.family === family && !isLinkLocalIpv4(choice.address));
  return to ? { state: 'moved', to } : { state: 'gone' };
}

export interface StartupNetwork {
  /** The addresses to start Redis with. */
  bind: string[];
  /** The LAN address and interface Redis listens on besides loopback, or null. */
  lan: LanInterface | null;
  /** The saved address, when `lan` is a new address of its interface that replaced it. */
  replaced: string | null;
  /** The saved address, when it is gone and nothing replaced it (Redis listens on loopback only). */
  unavailable: string | null;
  /** What to save when it differs from the file (a replaced address, an interface learned); else null. */
  save: NetworkSettings | null;
}

/**
 * The addresses to start Redis with for saved settings. A saved address this computer no
 * longer has would keep redis-server from starting at all: a new address of the same
 * interface takes its place (followLanAddress), else it is left out and returned as
 * `unavailable` for the caller to report.
 */
export function startupBindAddresses(settings: NetworkSettings, interfaces: NetworkInterfaces = os.networkInterfaces()): StartupNetwork {
  const loopbackOnly = { bind: bindAddresses(null), lan: null, replaced: null, unavailable: null, save: null };
  if (settings.lanAddress === null) return loopbackOnly;
  const found = followLanAddress(settings.lanAddress, settings.lanInterface, interfaces);
  if (found.state === 'gone') return { ...loopbackOnly, unavailable: settings.lanAddress };
  const lan = found.state === 'present' ? found.at : found.to;
  // A file from before interfaces were kept learns its interface here, so the next lease can be followed.
  const changed = found.state === 'moved' || settings.lanInterface !== lan.name;
  return {
    bind: bindAddresses(lan.address),
    lan,
    replaced: found.state === 'moved' ? settings.lanAddress : null,
    unavailable: null,
    save: changed ? { lanAddress: lan.address, lanInterface: lan.name } : null,
  };
}

/** What applyLanAddress needs of the Redis supervisor. */
export interface BindTarget {
  readonly bind: string[];
  setBind(addresses: string[]): Promise<void>;
}

export interface ApplyLanAddressOptions {
  supervisor: BindTarget;
  /** networkSettingsFile(dataDir) */
  settingsFile: string;
  /** The address to let boards in on, or null to go back to this computer only. */
  lanAddress: string | null;
  interfaces?: NetworkInterfaces;
}

/**
 * Checks the address, makes the running Redis listen on it (no restart) and saves the
 * choice; nothing changes when any step fails. Returns the saved settings.
 */
export async function applyLanAddress(options: ApplyLanAddressOptions): Promise<NetworkSettings> {
  const { supervisor, settingsFile } = options;
  const chosen = options.lanAddress === null ? null : checkLanAddress(options.lanAddress, options.interfaces ?? os.networkInterfaces());
  const lanAddress = chosen?.address ?? null;
  const previous = supervisor.bind;
  try {
    await supervisor.setBind(bindAddresses(lanAddress));
  } catch (error) {
    if (!(error instanceof RedisBindError) || lanAddress === null) throw error;
    throw new NetworkAccessError(
      'bind-refused',
      lanAddress,
      `Redis could not listen on ${lanAddress} port ${error.port}: the address is no longer this computer's, or another program uses that port there; ` +
        `${describeChoices(lanInterfaces(options.interfaces ?? os.networkInterfaces()))}, or stop that program`,
      { cause: error },
    );
  }
  const settings = settingsOf(lanAddress, chosen?.name);
  try {
    await writeNetworkSettings(settingsFile, settings);
  } catch (error) {
    // Not saved means not chosen: go back to what Redis listened on before.
    await supervisor.setBind(previous).catch(() => undefined);
    throw error;
  }
  return settings;
}

export interface NetworkAccess {
  /** The service runs its own Redis (false: an external one, configured elsewhere). */
  embedded: boolean;
  /** The LAN address boards may connect on, or null (this computer only). */
  lanAddress: string | null;
  loopbackOnly: boolean;
  /** Addresses of this computer boards on the network could use. */
  interfaces: LanInterface[];
  /** What newly set-up boards are told to connect to. */
  advertise: { host: string; port: number };
}

export class NetworkSetupError extends ManagerError {
  override name = 'NetworkSetupError';
  readonly kind: ErrorKind = 'conflict';
}

/** `mbm server-start`, `server-stop`, `server-status`, and `sim` (virtual boards). */
// The service and the virtual fleets are loaded by the verbs that run them (server-start
// --foreground, sim): every other verb is a small API client and starts faster without them.
import { DEFAULT_API_PORT, DEFAULT_REDIS_PORT } from '../manager/service-ports.js';
import { DEFAULT_DISCOVERY_PORT } from '../manager/discovery/discovery-message.js';
import type { LogLevel } from '../manager/log.js';
import { formatLogLine } from '../manager/file-log.js';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { VIRTUAL_BOARD_MARKER, VirtualBoardFolderError } from '../manager/virtual/virtual-board-folders.js';
import { CliError, intOption, untilInterrupted, write, type VerbSpec } from './cli-framework.js';
import { connectService, dataDirOf, findService, startInBackground, stopService } from './service-control.js';
import { formatDuration } from './format.js';
import type { ServiceAlarm, ServiceStatus } from '../manager/api/contract.js';

function logWriter(stream: NodeJS.WritableStream, verbose: boolean) {
  return (level: LogLevel, message: string) => {
    if (level === 'debug' && !verbose) return;
    // The service's log (manager.log, or this terminal) goes through the one scrubber: no secret, no terminal control.
    stream.write(formatLogLine(new Date(), level, message));
  };
}

export const serverStart: VerbSpec = {
  name: 'server-start',
  summary: 'start the service (embedded Redis + manager) and leave it running',
  args: [],
  options: {
    port: { type: 'string', valueName: 'PORT', description: `Redis port boards connect to (default ${DEFAULT_REDIS_PORT})` },
    'api-port': {
      type: 'string',
      valueName: 'PORT',
      description: `port of the API and the web UI on 127.0.0.1 (default ${DEFAULT_API_PORT}, or any free port when taken)`,
    },
    bind: { type: 'string', valueName: 'ADDR[,ADDR]', description: 'addresses Redis listens on (default 127.0.0.1; a LAN address lets real boards in)' },
    'redis-url': {
      type: 'string',
      valueName: 'URL',
      description:
        'use this Redis instead of starting one: redis://user:password@host:port, a Cluster redis+cluster://user:password@h1:p1,h2:p2 or Sentinel redis+sentinel://user:password@s1:p1,s2:p2/mastername',
    },
    'redis-binary': { type: 'string', valueName: 'PATH', description: 'redis-server to run (default: bundled, then PATH)' },
    advertise: { type: 'string', valueName: 'HOST', description: 'address written into board credentials (default: from --bind)' },
    heartbeat: { type: 'string', valueName: 'SECONDS', description: 'heartbeat period of newly enrolled boards (default 5)' },
    'discovery-port': {
      type: 'string',
      valueName: 'PORT',
      description: `UDP port boards ask on where the service went after its address changed (default ${DEFAULT_DISCOVERY_PORT})`,
    },
    'lease-ttl': {
      type: 'string',
      valueName: 'SECONDS',
      description: 'with several managers on one --redis-url: how soon a standby takes over from an active manager that died (default 10)',
    },
    foreground: { type: 'boolean', description: 'stay attached and log to the terminal until Ctrl-C' },
    verbose: { type: 'boolean', short: 'v', description: 'log debug messages too (Redis log lines, refused API requests)' },
  },
  details:
    'Several managers may share one --redis-url (another computer runs `mbm server-start --redis-url …` too): one is active, the others stand by and take over when it stops.\n' +
    'The service keeps its data (Redis append-only files, secrets, logs) in the data folder.\nLogs of a background service go to <data-dir>/logs/manager.log.',
  async run({ values, out }) {
    const dataDir = dataDirOf(values);
    const redisPort = intOption(values, 'port', DEFAULT_REDIS_PORT, 1, 65535);
    const heartbeatS = intOption(values, 'heartbeat', 5, 1, 300);
    const apiPort = intOption(values, 'api-port', DEFAULT_API_PORT, 1, 65535);
    const discoveryPort = intOption(values, 'discovery-port', DEFAULT_DISCOVERY_PORT, 1, 65535);
    const leaseTtlS = intOption(values, 'lease-ttl', 10, 1, 300);
    const bind =
      typeof values.bind === 'string'
        ? values.bind
            .split(',')
            .map((address) => address.trim())
            .filter(Boolean)
        : undefined;
    const running = await findService(dataDir);
    if (running) {
      // Asked for another port than the running service's: starting "again" would not give it.
      const runningApiPort = Number(new URL(running.info.apiUrl).port);
      const conflicts = [
        values.port !== undefined && redisPort !== running.info.redis.port ? `Redis on port ${running.info.redis.port}, not ${redisPort}` : null,
        values['api-port'] !== undefined && apiPort !== runningApiPort ? `the API on port ${runningApiPort}, not ${apiPort}` : null,
      ].filter((conflict): conflict is string => conflict !== null);
      if (conflicts.length > 0) {
        throw new CliError(
          `the service is already running (pid ${running.info.pid}) with ${conflicts.join(' and ')}.\n` +
            `Stop it first (mbm server-stop${values['data-dir'] ? ` --data-dir ${dataDir}` : ''}), then start it with the ports you want.`,
        );
      }
      const signin = await running.client.call('ui.signinUrl', {});
      write(out, `The service is already running (pid ${running.info.pid}).\n  Open the app: ${signin.url}\n`);
      return 0;
    }
    if (!values.foreground) {
      const passThrough = ['port', 'api-port', 'bind', 'redis-url', 'redis-binary', 'advertise', 'heartbeat', 'discovery-port', 'lease-ttl']
        .flatMap((name) => (typeof values[name] === 'string' ? [`--${name}`, values[name] as string] : []))
        .concat(values.verbose ? ['--verbose'] : []);
      const { info, client } = await startInBackground(dataDir, passThrough);
      const signin = await client.call('ui.signinUrl', {});
      write(
        out,
        `Cloudmanager service started (pid ${info.pid}).\n  Open the app: ${signin.url}\n` +
          `  (a sign-in link that works once, for 2 minutes; \`npx mbm ui\` prints a new one)\n` +
          `  Boards connect to Redis at ${info.redis.host}:${info.redis.port}\n  API ${info.apiUrl}\n  Data ${dataDir}\n`,
      );
      return 0;
    }
    const log = logWriter(out, Boolean(values.verbose));
    const { Manager } = await import('../manager/manager.js');
    const manager = new Manager({
      dataDir,
      redisPort,
      bind,
      heartbeatS,
      apiPort,
      apiPortFallback: values['api-port'] === undefined,
      redisUrl: values['redis-url'] as string | undefined,
      redisBinary: values['redis-binary'] as string | undefined,
      advertiseHost: values.advertise as string | undefined,
      discoveryPort,
      leaseTtlMs: leaseTtlS * 1000,
      log,
    });
    const stopped = new Promise<void>((resolve) => manager.once('stopped', resolve));
    const stop = () => void manager.stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    let info;
    try {
      info = await manager.start();
    } catch (error) {
      throw new CliError(`cannot start the service: ${(error as Error).message}`);
    }
    write(
      out,
      `Cloudmanager service running (pid ${info.pid}).\n` +
        `  Open the app: ${manager.signinUrl().url}\n  (a sign-in link that works once, for 2 minutes; \`npx mbm ui\` prints a new one)\n` +
        `  Boards connect to Redis at ${info.redis.host}:${info.redis.port}\n  API ${info.apiUrl} (token in ${dataDir}/secrets/api.token)\n  Use \`mbm\` in another shell; press Ctrl-C to stop.\n`,
    );
    await stopped;
    return 0;
  },
};

export const serverStop: VerbSpec = {
  name: 'server-stop',
  summary: 'stop the running service and its embedded Redis',
  args: [],
  options: {},
  async run({ values, out }) {
    const outcome = await stopService(dataDirOf(values));
    write(out, outcome === 'stopped' ? 'Cloudmanager service stopped.\n' : 'The service is not running.\n');
    return 0;
  },
};

export const serverStatus: VerbSpec = {
  name: 'server-status',
  summary: 'show whether the service runs, its Redis and how many boards are online',
  args: [],
  options: { json: { type: 'boolean', description: 'print JSON' } },
  async run({ values, out }) {
    const dataDir = dataDirOf(values);
    const service = await findService(dataDir);
    if (!service) {
      write(out, values.json ? JSON.stringify({ running: false, dataDir }) + '\n' : `The service is not running (data folder ${dataDir}).\n`);
      return 3;
    }
    const status = await service.client.call('status', {});
    if (values.json) {
      write(out, JSON.stringify({ running: true, dataDir, ...status }) + '\n');
      return 0;
    }
    const redis = status.redis;
    write(
      out,
      [
        `Cloudmanager service ${status.version}: running (pid ${status.pid}, up ${formatDuration(status.uptimeS * 1000)})`,
        `  API     ${status.apiUrl}`,
        ...(status.manager ? [`  Manager ${managerLine(status.manager)}`] : []),
        `  Redis   ${redis.version} ${redis.external ? 'external' : 'embedded'}, ${redis.pid ? `pid ${redis.pid}, ` : ''}${redis.host}:${redis.port}` +
          `${redis.external ? '' : `, restarts ${redis.restarts}`}, ${(redis.memoryBytes / 1024 / 1024).toFixed(1)} MiB`,
        `  Boards  ${status.boards.online} online / ${status.boards.total} enrolled, ${status.commandsActive} commands in progress`,
        `  Discovery ${status.discovery ? `on UDP ${status.discovery.addresses.join(', ')}` : 'off'}`,
        `  Data    ${dataDir}`,
        ...(status.alarms ?? []).map((alarm) => `  ALARM   ${alarmLine(alarm)}`),
      ].join('\n') + '\n',
    );
    return 0;
  },
};

/** Active or standing by (several managers on one Redis), and which one is active. */
function managerLine(manager: ServiceStatus['manager']): string {
  if (manager.role === 'active') return `active (epoch ${manager.epoch})`;
  const active = manager.active;
  return active
    ? `standing by; the active one is ${active.host} (pid ${active.pid}) since ${new Date(active.since).toLocaleString()}${active.apiUrl ? `, API ${active.apiUrl}` : ''}`
    : 'standing by; no manager is active yet (it takes over within seconds)';
}

/** One alarm of `status` as a line a user can act on. */
function alarmLine(alarm: ServiceAlarm): string {
  if (alarm.kind === 'board-suspended') return `board ${alarm.board} suspended: ${alarm.reason} (mbm board-enable ${alarm.board})`;
  if (alarm.kind === 'connections-refused') {
    return (
      `Redis refused ${alarm.count} connections since ${new Date(alarm.since).toLocaleString()}, the last at ${new Date(alarm.at).toLocaleTimeString()}: ` +
      `all ${alarm.maxClients} connection slots were taken (someone may be flooding the boards' port; connections that do not log in are closed)`
    );
  }
  return JSON.stringify(alarm);
}

/** A folder sim may not use is the user's to sort out: said plainly, not as an unexpected error. */
function refusedFolder(error: unknown): never {
  if (error instanceof VirtualBoardFolderError) throw new CliError(error.message, 1);
  throw error;
}

/** How long `mbm sim` lets its boards stop after Ctrl-C or SIGTERM before it exits anyway. */
const SIM_STOP_MS = 1_500;

export const sim: VerbSpec = {
  name: 'sim',
  summary: 'run virtual boards (real MicroPython in WebAssembly) until Ctrl-C',
  args: [],
  options: {
    boards: { type: 'string', valueName: 'N', description: 'how many boards (default 1)' },
    prefix: { type: 'string', valueName: 'PREFIX', description: 'board names are PREFIX-1 … PREFIX-N (default sim, or mp with --micropython)' },
    micropython: {
      type: 'boolean',
      description: 'simulated ESP8266 boards running the real MicroPython client (36 KB heap each) instead of TypeScript boards',
    },
    heap: { type: 'string', valueName: 'KB', description: 'heap of each --micropython board (default 36)' },
    fs: { type: 'string', valueName: 'DIR', description: "keep each board's files in DIR/<name> (default: memory; --micropython: <data-dir>/virtual-boards)" },
    fresh: { type: 'boolean', description: 'start the boards with empty flash folders (only folders mbm sim made are emptied)' },
  },
  details:
    'Boards are enrolled automatically as virtual boards (new credentials every run) and appear in board-list.\n' +
    'A name that belongs to a board that is not virtual is refused: sim never takes over a real board.\n' +
    '--micropython boards are provisioned like real ones: their flash folder holds the client (.mpy) and cm_config.json.\n' +
    "A board's folder in DIR keeps its files from one run to the next, like a board's flash (--fresh starts over).\n" +
    `sim only uses folders it made (they hold a ${VIRTUAL_BOARD_MARKER} file): it refuses to start on any other folder.`,
  async run({ values, out }) {
    const count = intOption(values, 'boards', 1, 1, 20_000);
    const api = await connectService(values);
    let lastReport = 0;
    const onProgress = (done: number, total: number) => {
      if (done === total || Date.now() - lastReport > 1000) {
        lastReport = Date.now();
        write(out, `${values.micropython ? 'booted' : 'connected'} ${done}/${total}\n`);
      }
    };
    let close: () => Promise<void>;
    let prefix: string;
    if (values.micropython) {
      if (count > 64) throw new CliError('--micropython runs one interpreter per board: at most 64 boards', 2);
      prefix = (values.prefix as string | undefined) ?? 'mp';
      const status = await api.call('status', {});
      const root = (values.fs as string | undefined) ?? path.join(dataDirOf(values), 'virtual-boards');
      const { startMicroPythonFleet } = await import('../manager/virtual/micropython-fleet.js');
      const fleet = await startMicroPythonFleet({
        api,
        count,
        prefix,
        root,
        fresh: values.fresh === true,
        onProgress,
        // The embedded Redis: where the service reaches it (loopback unless --bind leaves it out),
        // as the boards run on the same computer; it keeps working when the LAN address changes
        // or is switched off, or --advertise-host names an address not reachable from here. Any
        // other Redis: each board's own address as enrolling gave it (Cluster: its slot's
        // primary; Sentinel: the current primary, where status.redis names a sentinel).
        server: status.redis.external ? undefined : { host: status.redis.host, port: status.redis.port },
        board: { heapBytes: intOption(values, 'heap', 36, 16, 1024) * 1024 },
      }).catch(refusedFolder);
      write(out, `flash folders in ${root}\n`);
      close = () => fleet.close();
    } else {
      prefix = (values.prefix as string | undefined) ?? 'sim';
      const { startVirtualFleet } = await import('../manager/virtual/virtual-fleet.js');
      const fleet = await startVirtualFleet({ api, count, prefix, fsRoot: values.fs as string | undefined, fresh: values.fresh === true, onProgress }).catch(
        refusedFolder,
      );
      close = () => fleet.close();
    }
    // Listening before saying so: a signal sent on reading the line (a script, a test) in the
    // moment between would meet the default action and kill the process unannounced.
    const interrupted = untilInterrupted();
    write(out, `${count} virtual board(s) ${prefix}-1${count > 1 ? ` … ${prefix}-${count}` : ''} running. Press Ctrl-C to stop.\n`);
    await interrupted;
    // The boards say goodbye to a service that may be gone or hung: never wait long for it.
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([close().then(() => true), new Promise<false>((resolve) => (timer = setTimeout(resolve, SIM_STOP_MS, false)))]);
    clearTimeout(timer);
    write(out, inTime ? 'virtual boards stopped\n' : 'virtual boards stopped (without waiting any longer for the service)\n');
    return 0;
  },
};

/** The OS's "open this URL" command, where a desktop exists to show it. */
export function browserOpener(platform = process.platform, env: NodeJS.ProcessEnv = process.env): { command: string; args: string[] } | null {
  if (platform === 'darwin') return { command: 'open', args: [] };
  if (platform === 'win32') return { command: 'cmd', args: ['/c', 'start', '""'] };
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return null;
  return { command: 'xdg-open', args: [] };
}

export const ui: VerbSpec = {
  name: 'ui',
  summary: 'print a sign-in link for the web UI (and open it in the browser where there is a desktop)',
  args: [],
  options: {
    'no-open': { type: 'boolean', description: 'only print the link' },
  },
  details: 'The link works once, for 2 minutes; it signs the browser in with a session cookie.\n' + 'Anyone who can read the link can use it: do not share it.',
  async run({ values, out }) {
    const api = await connectService(values);
    const { url } = await api.call('ui.signinUrl', {});
    write(out, `${url}\n`);
    const opener = values['no-open'] ? null : browserOpener();
    if (opener) {
      const child = spawn(opener.command, [...opener.args, url], { stdio: 'ignore', detached: true });
      child.on('error', () => undefined);
      child.unref();
    }
    return 0;
  },
};

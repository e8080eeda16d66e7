/**
 * The manager service: the embedded (or an external) Redis, the fleet, and the local API,
 * started and stopped as one. Runs the same under Electron's main process, plain `node`
 * (headless, CLI `server-start`) and inside tests. Never imports electron, never prints.
 */
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import { RedisServerSupervisor } from './redis/redis-server-supervisor.js';
import {
  createTargetClient,
  defaultRetryDelay,
  parseRedisTarget,
  redactRedisUrl,
  targetAddress,
  type RedisClient,
  type RedisEndpoint,
  type RedisTarget,
} from './redis/redis-connection.js';
import { reservedClientOptions, type SlotReserve } from './redis/slot-reserve.js';
import type { ConnectionGuard, ConnectionLimits } from './redis/connection-guard.js';
import { FleetStore } from './redis/fleet-store.js';
import { boardUser } from './redis/keys.js';
import { ApiServer } from './api/server.js';
import { StagedFiles } from './transfer/staged-files.js';
import { ApiClient } from './api/client.js';
import { ActiveServices, standbyAwareContext } from './active-services.js';
import { ManagerRole, StandbyError } from './manager-role.js';
import { ManagerLease, managerIdOf } from './redis/manager-lease.js';
import { ManagerBridgeStore } from './redis/manager-bridge-store.js';
import { ManagerBridges } from './manager-bridges.js';
import { runRoute, type ApiContext } from './api/routes.js';
import { DiscoveryControl } from './discovery-control.js';
import { DEFAULT_DISCOVERY_PORT, discoveryPortOf } from './discovery/discovery-message.js';
import {
  advertisedHost,
  isLoopbackAddress,
  lanInterfaces,
  networkSettingsFile,
  NetworkSetupError,
  type NetworkAccess,
  type NetworkInterfaces,
} from './network-access.js';
import { LanAccess, type LanAddressFollowed } from './lan-access.js';
import type { ServiceAlarm, ServiceStatus } from './api/contract.js';
import { ServiceAlarms } from './service-alarms.js';
import { dataPaths, ensureDataDirs, readOrCreateSecret, writeFileAtomic, readServiceInfo, type DataPaths, type ServiceInfo } from './data-dir.js';
import { silentLogger, type Logger } from './log.js';
import { packageRoot, packageVersion } from './package-info.js';
import { embeddedConnectionGuard, startEmbeddedRedisServer, startSlotReserve } from './embedded-redis.js';
import { tuneHeapGrowth } from './heap-tuning.js';
import { DEFAULT_REDIS_PORT } from './service-ports.js';

export interface ManagerOptions {
  dataDir: string;
  /** Port of the embedded Redis, the boards' entry point (default 18266). */
  redisPort?: number;
  /** Addresses the embedded Redis listens on (default loopback only). */
  bind?: string[];
  /**
   * Use this Redis instead of starting one: `redis://user:password@host:port`, a Cluster
   * `redis+cluster://user:password@h1:p1,h2:p2`, or Sentinel `redis+sentinel://user:password@s1:p1,s2:p2/mastername`.
   */
  redisUrl?: string;
  /** redis-server binary to use for the embedded server. */
  redisBinary?: string;
  /** Heartbeat period written into new boards' credentials (default 5 s). */
  heartbeatS?: number;
  /** Port of the local API and the UI (default: any free port). */
  apiPort?: number;
  /** With `apiPort`: use any free port when that one is taken. */
  apiPortFallback?: boolean;
  /** Host name or address boards should use to reach Redis (default: derived from bind). */
  advertiseHost?: string;
  /** Serial device paths to list besides the detected ones (e.g. simulated boards' ptys). */
  extraSerialPorts?: string[];
  /** How often the serial port list is checked for plug and unplug (default 1000 ms). */
  serialPortPollMs?: number;
  /** Folder of the built UI (default: dist/renderer of the package). */
  uiRoot?: string;
  /** How long a rebooted board may take to come back before its reboot is reported failed (default 60 s or 3 heartbeats). */
  rebootGraceMs?: number;
  /** UDP port boards ask on where the service went (default 18268; 0 also means 18268, never "any port"). */
  discoveryPort?: number;
  /** This computer's network interfaces (default os.networkInterfaces); tests change what the computer "has". */
  networkInterfaces?: () => NetworkInterfaces;
  /** How often the chosen LAN address is checked for a new DHCP lease (default 5 s). */
  lanWatchIntervalMs?: number;
  /** board-install's default package index (default $CLOUDMANAGER_PACKAGE_INDEX, else micropython.org's). */
  packageIndexUrl?: string;
  /** PyPI for board-install's sdist fallback (default $CLOUDMANAGER_PYPI_URL, else pypi.org; '' turns it off). */
  pypiUrl?: string;
  /** How the embedded Redis's connection slots are sized and guarded (redis/connection-guard.ts). */
  connectionLimits?: Partial<ConnectionLimits>;
  /** TTL of the active manager's lease (default 10 s): a killed active manager is taken over after it (manager-role.ts). */
  leaseTtlMs?: number;
  log?: Logger;
}

export type { LanAddressFollowed } from './lan-access.js';

export interface ManagerEvents {
  stopped: [];
  lanAddressFollowed: [LanAddressFollowed];
  /** The whole list of alarms (as `status` has it), whenever it changes (service-alarms.ts). */
  alarms: [ServiceAlarm[]];
  /** This manager became the active one (its fleet and jobs are new) or stands by (it has none). */
  role: ['active' | 'standby'];
}

export class Manager extends EventEmitter<ManagerEvents> {
  readonly paths: DataPaths;
  private readonly log: Logger;
  /** The discovery responder's UDP port (checked once, at construction). */
  private readonly discoveryPort: number;
  private supervisor: RedisServerSupervisor | undefined;
  private redis: RedisClient | undefined;
  /** Server facts and the function library, whatever the role (the active services have their own, fenced, store). */
  private store: FleetStore | undefined;
  /** What runs while this manager holds the lease (active-services.ts). */
  private active: ActiveServices | undefined;
  private role: ManagerRole | undefined;
  /** The API's view of the service (standby-aware), also what standbys' forwarded requests run on. */
  private context: ApiContext | undefined;
  /** The other managers on the same Redis: answered while active, asked while standing by (manager-bridges.ts). */
  private bridges: ManagerBridges | undefined;
  private api: ApiServer | undefined;
  private guard: ConnectionGuard | undefined;
  private guardPassword: string | undefined;
  /** Spare connections for the service's own clients (embedded Redis only). */
  private reserve: SlotReserve | undefined;
  private alarmFeed: ServiceAlarms | undefined;
  /** Boards with a Redis user when the embedded server starts (the fleet is not loaded yet). */
  private aclBoards = 0;
  private readonly staged: StagedFiles;
  /** What Redis listens on (the embedded one); from options, or the saved LAN choice. */
  private bind: string[] = ['127.0.0.1'];
  private endpoint: RedisEndpoint | undefined;
  /** What `redisUrl` names (undefined: the embedded server). */
  private target: RedisTarget | undefined;
  private startedAt = 0;
  private redisRestarts = 0;
  private stopping: Promise<void> | undefined;
  private readonly discovery: DiscoveryControl;
  /** The user's LAN choice, followed through DHCP changes (only with the embedded Redis and without `--bind`). */
  private lan: LanAccess | undefined;
  private readonly interfaces: () => NetworkInterfaces;
  apiUrl = '';
  apiToken = '';

  constructor(private readonly options: ManagerOptions) {
    super();
    this.paths = dataPaths(options.dataDir);
    this.staged = new StagedFiles(path.join(this.paths.root, 'staged'));
    this.log = options.log ?? silentLogger;
    this.interfaces = options.networkInterfaces ?? os.networkInterfaces;
    // A wrong port is the caller's mistake, refused here; a taken one only turns discovery off.
    this.discoveryPort = discoveryPortOf(options.discoveryPort);
    // Only the active manager answers boards, and not with one external Redis (the service does
    // not know what boards reach there); with a Cluster or Sentinel each board is told its node now.
    this.discovery = new DiscoveryControl({
      port: this.discoveryPort,
      bind: () => this.bind,
      interfaces: this.interfaces,
      fleet: () => ((this.options.redisUrl && !this.spansNodes) || this.stopping ? undefined : this.active?.fleet),
      log: this.log,
    });
  }

  get fleet(): ActiveServices['fleet'] {
    return this.activeServices().fleet;
  }

  /** The jobs; their 'job' events tell a client in the same process (the desktop app) when one finishes. */
  get jobService(): ActiveServices['jobs'] {
    return this.activeServices().jobs;
  }

  /** Whether this manager runs the fleet now (`fleet` and `jobService` throw on a standby). */
  get isActive(): boolean {
    return this.active !== undefined;
  }

  private activeServices(): ActiveServices {
    if (!this.active) throw this.role ? new StandbyError(this.role.standbyMessage()) : new Error('the manager is not started');
    return this.active;
  }

  async start(): Promise<ServiceInfo> {
    this.startedAt = Date.now();
    tuneHeapGrowth();
    await ensureDataDirs(this.paths);
    this.apiToken = await readOrCreateSecret(this.paths.apiToken);
    try {
      this.target = this.options.redisUrl ? parseRedisTarget(this.options.redisUrl) : undefined;
      // With an external Redis, --bind only says where discovery listens (Cluster, Sentinel).
      if (this.target && this.options.bind) this.bind = this.options.bind;
      this.endpoint = this.target ? { ...targetAddress(this.target) } : await this.startEmbeddedRedis();
      if (this.supervisor) this.reserve = startSlotReserve(this.endpoint, this.guardPassword!, this.log);
      // The notifications connection (FleetStore's duplicate) inherits the reserve with these options.
      this.redis = createTargetClient(
        this.target ?? { kind: 'single', endpoint: this.endpoint },
        'cm-manager',
        this.reserve ? reservedClientOptions(this.reserve, defaultRetryDelay) : {},
      );
      this.redis.on('error', (error) => this.log('debug', `redis connection: ${error.message}`));
      await this.redis.ping();
      if (this.supervisor) {
        // Its connection is opened now, with the manager's others and before boards fill the slots.
        this.guard = embeddedConnectionGuard(this.endpoint, this.guardPassword!, {
          log: this.log,
          fleet: () => this.active?.fleet.counts() ?? { total: this.aclBoards, online: 0 },
          limits: this.options.connectionLimits,
          reserve: this.reserve,
        });
        await this.guard.start();
      }
      this.store = new FleetStore(this.redis, (address, error) => this.log('warn', `redis node ${address}: ${error.message}`));
      this.store.on('otherLibrary', () =>
        this.log(
          'warn',
          'this Redis holds the functions of another Cloudmanager version: they stay until this manager becomes the active one (run the same version on every manager)',
        ),
      );
      this.context = standbyAwareContext(() => this.activeServices(), {
        staged: this.staged,
        status: () => this.status(),
        shutdown: () => void this.stop(),
        signinUrl: () => this.signinUrl(),
        network: () => this.network(),
        setLanAccess: (address) => this.setLanAccess(address),
      });
      // The API first: a standby manager answers status, and the fleet's routes through the active one.
      this.api = new ApiServer({
        token: this.apiToken,
        log: this.log,
        port: this.options.apiPort,
        portFallback: this.options.apiPortFallback,
        uiRoot: this.options.uiRoot ?? path.join(await packageRoot(), 'dist', 'renderer'),
        context: this.context,
        forward: (name, input) => this.bridges?.forward(name, input),
      });
      this.apiUrl = await this.api.listen();
      const managerId = await managerIdOf(this.paths.root);
      this.bridges = new ManagerBridges({
        store: new ManagerBridgeStore(this.redis, () => this.store!.loadFunctions()),
        id: managerId,
        role: () => this.role,
        run: (route, input) => runRoute(this.context!, route, input),
        broadcast: (event) => this.api?.broadcast(event),
        readStaged: (id) => this.staged.read(id),
        stage: async (data) => (await this.staged.add(data)).id,
        log: this.log,
      });
      const lease = new ManagerLease(this.redis, {
        id: managerId,
        ttlMs: this.options.leaseTtlMs,
        apiUrl: () => this.apiUrl,
        loadFunctions: () => this.store!.loadFunctions(),
        replicated: this.spansNodes,
      });
      this.role = new ManagerRole({ lease, log: this.log, activate: (epoch) => this.activate(epoch), deactivate: (superseded) => this.deactivate(superseded) });
      await this.role.start();
      if (!this.active) await this.bridges.standBy();
      if (this.lan && this.supervisor) {
        const supervisor = this.supervisor;
        await this.lan.start({
          supervisor,
          port: this.endpoint.port,
          changed: async (lanAddress) => {
            this.bind = supervisor.bind;
            if (!this.options.advertiseHost) this.active?.fleet.setAdvertiseHost(lanAddress ?? '127.0.0.1');
            await this.discovery.restart();
          },
          followed: (event) => this.emit('lanAddressFollowed', event),
        });
      }
    } catch (error) {
      await this.stop();
      throw error;
    }
    const info: ServiceInfo = {
      pid: process.pid,
      apiUrl: this.apiUrl,
      redis: { host: this.endpoint.host, port: this.endpoint.port, external: Boolean(this.options.redisUrl) },
      startedAt: this.startedAt,
      version: await packageVersion(),
    };
    await writeFileAtomic(this.paths.serviceFile, JSON.stringify(info, null, 2) + '\n');
    this.log(
      'info',
      `service ready: API ${this.apiUrl}, Redis ${this.options.redisUrl ? redactRedisUrl(this.options.redisUrl) : `${this.endpoint.host}:${this.endpoint.port}`}`,
    );
    return info;
  }

  /** This manager holds the lease (epoch `epoch`): starts the fleet and what hangs on it, restored from Redis. */
  private async activate(epoch: number): Promise<void> {
    const bind = this.bind;
    const active = await ActiveServices.start({
      redis: this.redis!,
      epoch,
      log: this.log,
      fleet: {
        heartbeatS: this.options.heartbeatS,
        discoveryPort: this.discoveryPort === DEFAULT_DISCOVERY_PORT ? undefined : this.discoveryPort,
        advertise: {
          host: this.options.advertiseHost ?? (this.options.redisUrl ? this.endpoint!.host : (this.lan?.address ?? advertisedHost(bind, this.interfaces()))),
          port: this.endpoint!.port,
        },
        // Cluster: the primary of the board's slot; Sentinel: the current primary (redis-nodes.ts).
        boardAddress: this.spansNodes ? (boardId) => this.store?.boardAddress(boardId) : undefined,
      },
      staged: this.staged,
      firmwareFolder: this.paths.firmwareDir,
      extraSerialPorts: this.options.extraSerialPorts,
      serialPortPollMs: this.options.serialPortPollMs,
      rebootGraceMs: this.options.rebootGraceMs,
      packages: { root: this.paths.root, indexUrl: this.options.packageIndexUrl, pypiUrl: this.options.pypiUrl },
      api: () => new ApiClient(this.apiUrl, this.apiToken),
      replicaFailed: (address, error) => this.log('warn', `redis node ${address}: ${error.message}`),
      superseded: (reason) => this.role?.superseded(reason),
    });
    this.active = active;
    this.alarmFeed = new ServiceAlarms({ fleet: active.fleet, guard: this.guard });
    await this.bridges!.activate(epoch);
    this.alarmFeed.on('changed', (alarms) => {
      this.bridges?.broadcast({ type: 'service.alarms', alarms });
      this.emit('alarms', alarms);
    });
    active.broadcastTo((event) => this.bridges?.broadcast(event));
    await this.discovery.restart();
    this.emit('role', 'active');
  }

  /** Stops what the active manager runs (the manager stops, or another one took over: `superseded`). */
  private async deactivate(superseded: boolean): Promise<void> {
    const active = this.active;
    this.active = undefined;
    this.alarmFeed?.stop();
    this.alarmFeed = undefined;
    await this.discovery.restart();
    await active?.stop(superseded);
    if (!this.stopping) await this.bridges?.standBy();
    if (active) this.emit('role', 'standby');
  }

  private async startEmbeddedRedis(): Promise<RedisEndpoint> {
    if (this.options.bind) this.bind = this.options.bind;
    else {
      this.lan = new LanAccess({
        settingsFile: networkSettingsFile(this.paths.root),
        interfaces: this.interfaces,
        log: this.log,
        watchIntervalMs: this.options.lanWatchIntervalMs,
      });
      this.bind = await this.lan.startupBind();
    }
    const embedded = await startEmbeddedRedisServer({
      paths: this.paths,
      bind: this.bind,
      port: this.options.redisPort ?? DEFAULT_REDIS_PORT,
      redisBinary: this.options.redisBinary,
      connectionLimits: this.options.connectionLimits,
      log: this.log,
      boardLabel: (id) => this.boardLabel(id),
      stopping: () => this.stopping !== undefined,
      restarted: () => this.redisRestarts++,
    });
    this.supervisor = embedded.supervisor;
    this.guardPassword = embedded.guardPassword;
    this.aclBoards = embedded.aclBoards;
    return embedded.endpoint;
  }

  /** A Cluster or Sentinel: boards are given their node, which can change (failover, resharding). */
  private get spansNodes(): boolean {
    return this.target !== undefined && this.target.kind !== 'single';
  }

  private boardLabel(id: string): string {
    const board = this.active?.fleet.registry.get(id);
    return board ? `board ${board.name} (${boardUser(id)})` : `board user ${boardUser(id)}`;
  }

  async status(): Promise<ServiceStatus> {
    const info = await this.store!.serverInfo();
    const active = this.active;
    // A standby's fleet is the active manager's: its counts, asked through Redis (none when it does not answer soon).
    const remote = active ? undefined : await this.bridges?.activeStatus();
    return {
      version: await packageVersion(),
      pid: process.pid,
      uptimeS: Math.round((Date.now() - this.startedAt) / 1000),
      apiUrl: this.apiUrl,
      redis: {
        pid: info.pid || null,
        host: this.endpoint!.host,
        port: this.endpoint!.port,
        version: info.version,
        external: Boolean(this.options.redisUrl),
        restarts: this.redisRestarts,
        memoryBytes: info.usedMemory,
      },
      boards: active?.fleet.counts() ?? remote?.boards ?? { online: 0, total: 0 },
      commandsActive: active?.fleet.dispatcher.activeCount() ?? remote?.commandsActive ?? 0,
      virtualBoards: active?.sim.count ?? remote?.virtualBoards ?? 0,
      discovery: this.discovery.info(),
      uplinkRefused: active?.fleet.refusedEntries ?? 0,
      alarms: this.alarms(),
      manager: this.role!.info(),
    };
  }

  /** What needs the user now (suspended boards, refused connections); the `alarms` event tells each change. */
  alarms(): ServiceAlarm[] {
    return this.alarmFeed?.list() ?? [...(this.active?.fleet.alarms() ?? []), ...(this.guard?.alarms() ?? [])];
  }

  /** Who can reach the boards' entry point: this computer only, or a LAN address too. */
  network(): NetworkAccess {
    const lanAddress = this.lanAddress();
    return {
      embedded: this.supervisor !== undefined,
      lanAddress,
      loopbackOnly: lanAddress === null && this.bind.every(isLoopbackAddress),
      interfaces: lanInterfaces(this.interfaces()),
      advertise: this.fleet.advertise,
    };
  }

  /** The LAN address Redis listens on now: the user's choice, else a non-loopback one from `--bind`. */
  private lanAddress(): string | null {
    return this.lan ? this.lan.address : (this.bind.find((address) => !isLoopbackAddress(address)) ?? null);
  }

  /**
   * Lets boards on the local network in on `address` (the embedded Redis listens there
   * too, without a restart; remembered for the next start), or back to this computer only
   * (null). Boards enrolled afterwards are given the new address.
   */
  async setLanAccess(address: string | null): Promise<NetworkAccess> {
    if (!this.supervisor) throw new NetworkSetupError('the service uses an external Redis: its addresses are set where that Redis runs');
    if (this.options.bind) throw new NetworkSetupError('the service was started with --bind: restart it without --bind to choose the address here');
    const settings = await this.lan!.set(address);
    this.log(
      'info',
      settings.lanAddress
        ? `boards on the local network may now connect on ${settings.lanAddress}:${this.endpoint!.port}`
        : 'boards may now connect from this computer only',
    );
    return this.network();
  }

  /** A one-time URL that signs a browser (or the app's window) in to the UI. */
  signinUrl(): { url: string; expiresAt: number } {
    if (!this.api) throw new Error('the manager is not started');
    return this.api.createSigninUrl();
  }

  /** Stops the API, the fleet and the embedded Redis (AOF flushed). Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    const step = async (what: string, action: () => Promise<unknown> | undefined) => {
      try {
        await action();
      } catch (error) {
        this.log('warn', `while stopping ${what}: ${(error as Error).message}`);
      }
    };
    await step('the LAN address watch', () => this.lan?.stop());
    // Stops the fleet and gives the lease up: a standby manager takes over at its next try.
    await step('the active services', () => this.role?.stop());
    await step('the manager bridge', () => this.bridges?.stop());
    await step('the API', () => this.api?.close());
    await step('staged files', () => this.staged.clear());
    await step('notifications', () => this.store?.close());
    await step('the connection guard', () => this.guard?.stop());
    await step('the Redis connection', () => this.redis?.quit());
    this.redis?.disconnect();
    await step('the reserved connections', () => this.reserve?.stop());
    await step('redis-server', () => this.supervisor?.stop());
    const published = await readServiceInfo(this.paths);
    if (published?.pid === process.pid) await rm(this.paths.serviceFile, { force: true });
    this.log('info', 'service stopped');
    this.emit('stopped');
  }
}

/**
 * Starts, watches and stops the redis-server the manager embeds.
 *
 * The server runs in the foreground (`daemonize no`) with its log on stdout, so this class
 * sees every log line: readiness, bind failures and client protocol errors (a board or a
 * stranger sending garbage) all come from there. A crash is followed by a restart with
 * exponential backoff; data survives because the append-only file is on (fsync every
 * second, flushed on SIGTERM).
 *
 * Orphans: on Linux the server is launched through util-linux `setpriv --pdeathsig TERM`,
 * which sets PR_SET_PDEATHSIG and then execs redis-server (same pid), so the kernel sends it
 * SIGTERM when our process dies, even by SIGKILL. Caveat: the signal fires when the
 * *thread* that spawned it ends, so create the supervisor on the main thread (or accept
 * that redis stops with the worker). Elsewhere (macOS, Windows, Linux without setpriv) only
 * a normal Node exit is covered (an 'exit' hook sends SIGTERM); after a hard crash of the
 * manager the server keeps running and the next start reports RedisPortInUseError. The
 * manager's shutdown path must call stop(). setBind() changes the listening addresses at
 * run time (CONFIG SET bind over a short-lived admin connection, redis-admin.ts).
 *
 * Library code: it never prints; everything is reported through events.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { redactSecrets } from '../file-log.js';
import { redisServerVersion } from './redis-binary.js';
import { configSetBind, killClientsOnAddress, type RedisAdminCredentials } from './redis-admin.js';
import {
  buildRedisConfig,
  MAX_PARTIAL_LINE,
  parseProtocolErrorLine,
  PORT_IN_USE_PHRASE,
  READY_PHRASE,
  redisSpawnCommand,
  TAIL_LINES,
} from './redis-server-config.js';

export { buildRedisConfig, parseProtocolErrorLine, quoteRedisConfigValue, RedisConfigError, redisSpawnCommand } from './redis-server-config.js';

export interface RedisServerSupervisorOptions {
  binaryPath: string;
  port: number;
  /** Addresses to listen on; default ['127.0.0.1']. Changed at run time by setBind(). */
  bind?: string[];
  /** ACL user for the supervisor's own commands (setBind); omit while the default user is on. */
  auth?: RedisAdminCredentials;
  /** Folder for redis.conf and the append-only files (created 0700 if missing). */
  dataDir: string;
  /** ACL file; created empty (0600) if missing because redis refuses to start without it. */
  aclFile?: string;
  /** `maxclients` at start (default 10,000); Redis lowers it to what its open-files limit allows. */
  maxClients?: number;
  /** More `directive value` pairs; each value is written as one quoted argument. */
  extraConfig?: Record<string, string>;
  /** Default 200 ms doubling to 10 s; the attempt count resets after 30 s of uptime. */
  restartBackoff?: { initialMs: number; maxMs: number; resetAfterMs?: number };
  /** How long to wait for "Ready to accept connections"; default 15 s (AOF replay). */
  readyTimeoutMs?: number;
  /** Grace period after SIGTERM before SIGKILL; default 10 s. */
  stopTimeoutMs?: number;
  /** Ask the kernel to SIGTERM redis when we die (Linux + setpriv); default true. */
  dieWithParent?: boolean;
}

export interface RedisStartInfo {
  pid: number;
  port: number;
  version: string;
}
export interface RedisLogEvent {
  line: string;
  stream: 'stdout' | 'stderr';
}
export interface RedisProtocolErrorEvent {
  /** Redis's reason, e.g. "invalid bulk length". */
  reason: string;
  /** ACL user of the connection ("default" before AUTH). */
  user: string | undefined;
  /** Client address "ip:port". */
  addr: string | undefined;
  line: string;
}
export interface RedisExitEvent {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export type RedisServerSupervisorEvents = {
  log: [RedisLogEvent];
  protocolError: [RedisProtocolErrorEvent];
  /** Emitted after every successful start, initial (restart: false) and automatic. */
  started: [RedisStartInfo & { restart: boolean }];
  /** The server exited while it should have been running; a restart follows. */
  exited: [RedisExitEvent];
  restarting: [{ attempt: number; delayMs: number }];
  /** A restart attempt failed; another one is scheduled. (Not 'error': that would throw.) */
  restartFailed: [{ attempt: number; error: Error }];
  /** stop() finished; the process is gone. */
  stopped: [RedisExitEvent];
};

/** The port is already taken (another redis, or an orphan of a crashed manager). */
export class RedisPortInUseError extends Error {
  override readonly name = 'RedisPortInUseError';
  constructor(
    readonly port: number,
    readonly logTail: string[],
  ) {
    super(`port ${port} is already in use; stop whatever listens there or choose another port`);
  }
}

export type RedisStartFailure = 'spawn-failed' | 'exited' | 'timeout' | 'stopped';

/** redis-server did not become ready; `logTail` holds its last log lines. */
export class RedisStartError extends Error {
  override readonly name = 'RedisStartError';
  constructor(
    readonly reason: RedisStartFailure,
    message: string,
    readonly logTail: string[],
    options?: { cause?: unknown },
  ) {
    super(logTail.length > 0 ? `${message}; last log lines:\n${logTail.join('\n')}` : message, options);
  }
}

/** Invalid supervisor options (a reserved or malformed config directive). */

/** start() while already started; setBind() while the server is restarting. */
export class RedisSupervisorStateError extends Error {
  override readonly name = 'RedisSupervisorStateError';
}

// Log phrases redis-server prints; they are its interface to us (there is no other channel).
interface Launch {
  child: ChildProcess;
  exited: Promise<RedisExitEvent>;
  info: RedisStartInfo;
}

export class RedisServerSupervisor extends EventEmitter<RedisServerSupervisorEvents> {
  private readonly options: RedisServerSupervisorOptions;
  private readonly backoff: { initialMs: number; maxMs: number; resetAfterMs: number };
  private current: Launch | undefined;
  /** The process being started (not ready yet), so stop() can kill it too. */
  private starting: { child: ChildProcess; exited: Promise<RedisExitEvent> } | undefined;
  private cachedVersion: string | undefined;
  /** Between start() and stop(), including the initial start. */
  private active = false;
  private generation = 0;
  private stopping = false;
  private stopPromise: Promise<void> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private readyAt = 0;
  private readonly tail: string[] = [];
  /** setBind() calls run one after the other. */
  private bindChange: Promise<unknown> = Promise.resolve();
  private readonly onParentExit = () => {
    // Last resort for a normal Node exit without stop(); SIGTERM makes redis flush the AOF.
    for (const child of [this.current?.child, this.starting?.child]) {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    }
  };

  constructor(options: RedisServerSupervisorOptions) {
    super();
    this.options = { ...options, bind: options.bind ?? ['127.0.0.1'] };
    this.backoff = {
      initialMs: options.restartBackoff?.initialMs ?? 200,
      maxMs: options.restartBackoff?.maxMs ?? 10_000,
      resetAfterMs: options.restartBackoff?.resetAfterMs ?? 30_000,
    };
    buildRedisConfig(this.options); // fail fast on bad options, before anything is spawned
  }

  get pid(): number | undefined {
    return this.current?.info.pid;
  }
  get port(): number {
    return this.options.port;
  }
  get version(): string | undefined {
    return this.cachedVersion;
  }
  get running(): boolean {
    return this.current !== undefined;
  }
  /** The addresses the server listens on (or will, at the next start). */
  get bind(): string[] {
    return [...(this.options.bind ?? [])];
  }

  /**
   * Makes the running server listen on `addresses` instead, without a restart, and every
   * later start and crash restart too. Before start() or after stop() it only changes the
   * next start. On failure the server keeps its old addresses and this rejects with
   * RedisConfigError (malformed list), RedisBindError (redis could not bind one of them),
   * RedisAdminError (server unreachable, credentials refused) or RedisSupervisorStateError
   * (the server is restarting right now).
   */
  setBind(addresses: string[]): Promise<void> {
    const change = this.bindChange.then(() => this.applyBind([...new Set(addresses)]));
    this.bindChange = change.catch(() => undefined);
    return change;
  }

  private async applyBind(addresses: string[]): Promise<void> {
    buildRedisConfig({ ...this.options, bind: addresses });
    if (this.active && !this.current) throw new RedisSupervisorStateError('redis-server is (re)starting; change its addresses once it runs again');
    if (this.active) await configSetBind({ port: this.options.port, bind: this.bind, auth: this.options.auth }, addresses);
    // Recorded as soon as the reply is in: a crash restart from now on writes these into redis.conf.
    this.options.bind = addresses;
  }

  /**
   * Closes the connections clients made to `address` (one the server no longer listens on:
   * setBind() leaves established connections open). Resolves with how many were closed;
   * 0 while the server is not running.
   */
  async closeConnectionsTo(address: string): Promise<number> {
    if (!this.current) return 0;
    return killClientsOnAddress({ port: this.options.port, bind: this.bind, auth: this.options.auth }, address);
  }

  /** Starts the server and resolves once it accepts connections; supervision begins then. */
  async start(): Promise<RedisStartInfo> {
    if (this.active) throw new RedisSupervisorStateError('redis-server supervisor already started; call stop() first');
    this.active = true;
    // A start() that stop() interrupted may reject after a newer start() began; the
    // generation keeps its cleanup from undoing the newer one.
    const generation = ++this.generation;
    if (this.stopPromise) await this.stopPromise;
    this.stopping = false;
    this.stopPromise = undefined;
    this.attempt = 0;
    process.on('exit', this.onParentExit);
    try {
      this.cachedVersion ??= await redisServerVersion(this.options.binaryPath);
      const launch = await this.launch(generation);
      this.emit('started', { ...launch.info, restart: false });
      return launch.info;
    } catch (error) {
      if (generation === this.generation) {
        process.off('exit', this.onParentExit);
        this.active = false;
      }
      throw error;
    }
  }

  /** SIGTERM (AOF flushed), SIGKILL after the grace period; no restarts afterwards. Idempotent. */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  private async doStop(): Promise<void> {
    this.stopping = true;
    this.active = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const targets = [this.current, this.starting].filter((t) => t !== undefined);
    let last: RedisExitEvent = { code: null, signal: null };
    for (const target of targets) {
      const { child, exited } = target;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), this.options.stopTimeoutMs ?? 10_000);
      last = await exited;
      clearTimeout(killTimer);
    }
    this.current = undefined;
    process.off('exit', this.onParentExit);
    this.emit('stopped', last);
  }

  /** Writes the config, spawns redis-server and waits for its ready line. */
  private async launch(generation: number): Promise<Launch> {
    const { dataDir, aclFile, port } = this.options;
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    if (aclFile !== undefined) {
      await mkdir(path.dirname(path.resolve(aclFile)), { recursive: true, mode: 0o700 });
      // 'wx' creates only when missing: an existing ACL file is never truncated.
      await writeFile(aclFile, '', { flag: 'wx', mode: 0o600 }).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
    }
    const confPath = path.join(path.resolve(dataDir), 'redis.conf');
    // Temp file + rename: redis never reads a half-written config.
    const tmpPath = `${confPath}.${process.pid}.tmp`;
    await writeFile(tmpPath, buildRedisConfig(this.options), { mode: 0o600 });
    await chmod(tmpPath, 0o600); // mode above only applies when the file is created
    await rename(tmpPath, confPath);
    const { command, args } = await redisSpawnCommand(this.options.binaryPath, confPath, this.options.dieWithParent ?? true);
    // Checked after the last await: stop() cannot see a process that is not spawned yet,
    // and a stopped start() must not spawn after a newer start() reset `stopping`.
    if (this.stopping || generation !== this.generation) throw new RedisStartError('stopped', 'stop() was called while redis-server was starting', []);
    this.tail.length = 0;
    // Files redis writes (ACL file, append-only files) are for this user only: the umask
    // is inherited at spawn time, so it is tightened just around the spawn.
    let previousUmask: number | undefined;
    try {
      if (process.platform !== 'win32') previousUmask = process.umask(0o077);
    } catch {
      // Not allowed in worker threads: the files then get the process's umask.
    }
    let child: ChildProcess;
    try {
      child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], shell: false, windowsHide: true });
    } finally {
      if (previousUmask !== undefined) process.umask(previousUmask);
    }
    let ready = false;
    let portInUse = false;
    let timedOut = false;
    let settle: ((error: Error | undefined) => void) | undefined;
    const readyPromise = new Promise<void>((resolve, reject) => {
      settle = (error) => {
        settle = undefined;
        if (error) reject(error);
        else resolve();
      };
    });
    const onLine = (line: string) => {
      if (!ready && !timedOut && line.includes(READY_PHRASE)) {
        ready = true;
        settle?.(undefined);
      } else if (!ready && line.includes(PORT_IN_USE_PHRASE)) {
        portInUse = true;
      }
    };
    const drained = Promise.all([this.readLines(child.stdout, 'stdout', onLine), this.readLines(child.stderr, 'stderr', onLine)]);
    let spawnError: Error | undefined;
    const exited = new Promise<RedisExitEvent>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      // A spawn failure (ENOENT, EACCES) gives 'error' and no 'exit'.
      child.once('error', (error) => {
        spawnError = error;
        resolve({ code: null, signal: null });
      });
    });
    this.starting = { child, exited };

    const timeoutMs = this.options.readyTimeoutMs ?? 15_000;
    const readyTimer = setTimeout(() => {
      // Loading an AOF is read-only, so killing a server that is not ready loses nothing.
      // The exit handler below rejects, so start() returns only once the process is gone.
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);

    void exited.then(async (exit) => {
      // Wait (briefly) for the pipes to drain so the last log lines are seen and classified.
      await Promise.race([drained, new Promise((r) => setTimeout(r, 500))]);
      if (this.current?.child === child) this.current = undefined;
      if (this.starting?.child === child) this.starting = undefined;
      if (settle) {
        const tail = [...this.tail];
        let error: Error;
        if (spawnError) error = new RedisStartError('spawn-failed', `cannot run ${command}: ${spawnError.message}`, tail, { cause: spawnError });
        else if (timedOut) error = new RedisStartError('timeout', `redis-server was not ready after ${timeoutMs} ms`, tail);
        else if (this.stopping) error = new RedisStartError('stopped', 'stop() was called while redis-server was starting', tail);
        else if (portInUse) error = new RedisPortInUseError(port, tail);
        else error = new RedisStartError('exited', `redis-server exited during start (code ${exit.code}, signal ${exit.signal})`, tail);
        settle(error);
      } else if (ready && !this.stopping && generation === this.generation) {
        // (The generation check: a process stop() ended must not trigger a restart inside
        // a newer start() that began while its pipes were still draining.)
        this.onUnexpectedExit(exit);
      }
    });

    try {
      await readyPromise;
    } finally {
      clearTimeout(readyTimer);
    }
    const pid = child.pid;
    if (pid === undefined) throw new RedisStartError('spawn-failed', 'redis-server has no pid', [...this.tail]);
    const launch: Launch = { child, exited, info: { pid, port, version: this.cachedVersion ?? '' } };
    this.starting = undefined;
    this.current = launch;
    this.readyAt = Date.now();
    return launch;
  }

  /** Splits a pipe into lines and emits them; resolves when the pipe ends. */
  private readLines(stream: Readable | null, name: 'stdout' | 'stderr', onLine: (line: string) => void): Promise<void> {
    if (!stream) return Promise.resolve();
    return new Promise((resolve) => {
      let partial = '';
      const handle = (line: string) => {
        // Scrubbed here, at the source, before anyone sees it: Redis quotes what a client
        // sent with a protocol error, a password included (redactSecrets).
        const clean = redactSecrets(line.endsWith('\r') ? line.slice(0, -1) : line);
        this.tail.push(clean);
        if (this.tail.length > TAIL_LINES) this.tail.shift();
        onLine(clean);
        this.emit('log', { line: clean, stream: name });
        const protocolError = parseProtocolErrorLine(clean);
        if (protocolError) this.emit('protocolError', { ...protocolError, line: clean });
      };
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        partial += chunk;
        let newline: number;
        while ((newline = partial.indexOf('\n')) >= 0) {
          handle(partial.slice(0, newline));
          partial = partial.slice(newline + 1);
        }
        // Redis caps log lines at 1 KB; anything longer is not a log line worth buffering.
        if (partial.length > MAX_PARTIAL_LINE) {
          handle(partial);
          partial = '';
        }
      });
      const finish = () => {
        if (partial.length > 0) handle(partial);
        partial = '';
        resolve();
      };
      stream.once('end', finish);
      stream.once('close', finish);
      stream.on('error', finish); // a broken pipe only means the process is gone
    });
  }

  private onUnexpectedExit(exit: RedisExitEvent): void {
    this.emit('exited', exit);
    // A server that ran long enough counts as healthy: start the backoff from scratch.
    if (Date.now() - this.readyAt >= this.backoff.resetAfterMs) this.attempt = 0;
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.stopping) return;
    this.attempt += 1;
    const attempt = this.attempt;
    const delayMs = Math.min(this.backoff.initialMs * 2 ** (attempt - 1), this.backoff.maxMs);
    this.emit('restarting', { attempt, delayMs });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.restartNow(attempt);
    }, delayMs);
  }

  private async restartNow(attempt: number): Promise<void> {
    if (this.stopping) return;
    try {
      const launch = await this.launch(this.generation);
      if (this.stopping) return; // stop() raced the restart; it kills the new process
      this.emit('started', { ...launch.info, restart: true });
    } catch (error) {
      if (this.stopping) return;
      this.emit('restartFailed', { attempt, error: error instanceof Error ? error : new Error(String(error)) });
      this.scheduleRestart();
    }
  }
}

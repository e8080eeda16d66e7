/**
 * Locating the redis-server executable the manager embeds, and checking its version.
 *
 * Search order (first hit wins):
 *   1. a path the user configured (`--redis-binary PATH`): it must exist, or we fail loudly
 *      rather than silently running some other Redis;
 *   2. the copy we bundle: `build/redis/<platform>-<arch>/` in the package (a checkout, where
 *      scripts/build-redis.sh writes it), then `<resources>/redis/<platform>-<arch>/` in the
 *      packaged app (electron-builder's `extraResources`: a real file, as spawn needs);
 *   3. `redis-server` on PATH (the OS package on Linux/Raspberry Pi, Homebrew on macOS),
 *      else `valkey-server` (Valkey 8 runs everything here, and holds less memory per
 *      idle board: README "Benchmarks");
 *   4. a binary redis-memory-server already has on disk (its `systemBinary` setting or a
 *      previous download) — read-only: we never let it download.
 */
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { executableProblem, findOnPath, isExecutable, isWindows } from '../executables.js';
import { unpackedPath } from '../package-info.js';
import os from 'node:os';
import path from 'node:path';

export type RedisBinarySource = 'configured' | 'bundled' | 'path' | 'redis-memory-server';

export interface RedisBinaryLocation {
  path: string;
  source: RedisBinarySource;
}

export interface FindRedisServerBinaryOptions {
  /** Explicit path from the user (CLI flag or settings). */
  configuredPath?: string;
  /** Root of our package (folder holding package.json and `build/`). */
  packageRoot: string;
  /** Environment to search (PATH, PATHEXT, REDISMS_*); defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** The packaged app's resources folder; defaults to Electron's process.resourcesPath (unset under plain Node). */
  resourcesPath?: string;
}

/** Oldest Redis we accept: ACL selectors and functions arrived in 7.0. */
export const MIN_REDIS_MAJOR = 7;
export const MIN_REDIS_MINOR = 0;

const EXTERNAL_REDIS = '--redis-url redis://user:password@host:6379';

/**
 * How to get a usable Redis on `platform`. Linux and macOS have Redis packages. Windows has
 * none (the app ships its own redis-server.exe, built with MSYS2), so there a missing binary
 * means a broken install, and the alternatives are a Redis-compatible server run by the user.
 */
function installRedis(platform: NodeJS.Platform): string {
  if (platform === 'win32')
    return (
      'the redis-server.exe that comes with the app is missing, so the installation is broken: reinstall Cloudmanager Desktop ' +
      "(from a source checkout, build it in an MSYS2 shell: bash scripts/build-redis.sh); or use a Redis 7 you run yourself (Memurai, or Redis inside WSL: wsl sudo apt-get install redis-server) through the app's settings or " +
      EXTERNAL_REDIS
    );
  if (platform === 'darwin') return `install Redis 7 (brew install redis), or use an existing Redis 7 with ${EXTERNAL_REDIS}`;
  return `install Redis 7 (Debian/Ubuntu: sudo apt-get install redis-server), or use an existing Redis 7 with ${EXTERNAL_REDIS}`;
}

function installHint(platform: NodeJS.Platform): string {
  return `${installRedis(platform)}; or pass --redis-binary PATH`;
}

/** No redis-server could be found in any of the places we look. */
export class RedisBinaryNotFoundError extends Error {
  override readonly name = 'RedisBinaryNotFoundError';
  readonly searched: string[];
  constructor(searched: string[], platform: NodeJS.Platform = process.platform) {
    super(`redis-server not found (looked in: ${searched.join(', ') || 'nowhere'}); ${installHint(platform)}`);
    this.searched = searched;
  }
}

/** The user-configured binary path does not exist or is not executable. */
export class RedisConfiguredBinaryError extends Error {
  override readonly name = 'RedisConfiguredBinaryError';
  readonly binaryPath: string;
  constructor(binaryPath: string, problem: string, options?: { cause?: unknown }, platform: NodeJS.Platform = process.platform) {
    const instead = platform === 'win32' ? 'leave it out to use the redis-server.exe that comes with the app' : `leave it out and ${installRedis(platform)}`;
    super(`configured redis-server binary "${binaryPath}" ${problem}; fix the path passed with --redis-binary, or ${instead}`, options);
    this.binaryPath = binaryPath;
  }
}

/** `redis-server --version` failed or printed something we cannot parse. */
export class RedisVersionError extends Error {
  override readonly name = 'RedisVersionError';
  readonly binaryPath: string;
  constructor(binaryPath: string, problem: string, options?: { cause?: unknown }) {
    super(`cannot determine the version of "${binaryPath}": ${problem}`, options);
    this.binaryPath = binaryPath;
  }
}

/** The binary is an older Redis than we support. */
export class RedisVersionUnsupportedError extends Error {
  override readonly name = 'RedisVersionUnsupportedError';
  readonly binaryPath: string;
  readonly version: string;
  constructor(binaryPath: string, version: string, platform: NodeJS.Platform = process.platform) {
    super(
      `"${binaryPath}" is Redis ${version}, but ${MIN_REDIS_MAJOR}.${MIN_REDIS_MINOR} or newer is required ` +
        `(ACL selectors and functions); ${installHint(platform)}`,
    );
    this.binaryPath = binaryPath;
    this.version = version;
  }
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}

async function searchPath(env: NodeJS.ProcessEnv, searched: string[]): Promise<string | undefined> {
  // Valkey continues Redis 7.2 under its BSD licence, and some systems ship it instead.
  for (const command of ['redis-server', 'valkey-server']) {
    const found = await findOnPath(command, env);
    if (found !== undefined) return found;
  }
  searched.push('PATH');
  return undefined;
}

/** Reads the `redisMemoryServer` section of our package.json, paths made absolute. */
async function packageJsonRedisMsConfig(packageRoot: string): Promise<Record<string, string>> {
  const file = path.join(packageRoot, 'package.json');
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    const section = (parsed as { redisMemoryServer?: unknown }).redisMemoryServer;
    if (typeof section !== 'object' || section === null) return {};
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(section)) {
      if (typeof value !== 'string') continue;
      // redis-memory-server resolves these two relative to the package.json holding them.
      out[key] = key === 'systemBinary' || key === 'downloadDir' ? path.resolve(packageRoot, value) : value;
    }
    return out;
  } catch {
    return {};
  }
}

/** True when the optional redis-memory-server package is installed where we can load it. */
function redisMemoryServerInstalled(packageRoot: string): boolean {
  for (const base of [path.join(packageRoot, 'package.json'), import.meta.url]) {
    try {
      createRequire(base).resolve('redis-memory-server/package.json');
      return true;
    } catch {
      // try the next base
    }
  }
  return false;
}

/**
 * Where redis-memory-server 0.17 would take its binary from, without downloading.
 *
 * Its `RedisBinary.getPath()` has no "don't download" switch: when neither `systemBinary`
 * nor its cache has a binary it starts a download. So we mirror its lookup read-only:
 * `REDISMS_SYSTEM_BINARY` / package.json `redisMemoryServer.systemBinary`, then the file a
 * previous download left at `<downloadDir>/<version>/redis-server` (`memurai.exe` on
 * Windows). Config precedence matches the package: environment over package.json. We read
 * our own package.json (packageRoot) rather than the cwd's, because inside Electron the cwd
 * is arbitrary.
 */
async function redisMemoryServerBinary(packageRoot: string, env: NodeJS.ProcessEnv, searched: string[]): Promise<string | undefined> {
  if (!redisMemoryServerInstalled(packageRoot)) return undefined;
  const pkg = await packageJsonRedisMsConfig(packageRoot);
  const setting = (name: string, key: string): string | undefined => {
    const fromEnv = env[`REDISMS_${name}`];
    return fromEnv !== undefined && fromEnv !== '' ? fromEnv : pkg[key];
  };
  const candidates: string[] = [];
  const systemBinary = setting('SYSTEM_BINARY', 'systemBinary');
  if (systemBinary) candidates.push(path.resolve(systemBinary));
  const version = setting('VERSION', 'version') || 'stable';
  // Same choice as the package: the configured dir, else the legacy one if it exists,
  // else node_modules/.cache/redis-memory-server/redis-binaries (find-cache-dir).
  const legacyDir = path.join(os.homedir(), '.cache', 'redis-binaries');
  const downloadDir =
    setting('DOWNLOAD_DIR', 'downloadDir') ||
    ((await isDirectory(legacyDir)) ? legacyDir : path.join(packageRoot, 'node_modules', '.cache', 'redis-memory-server', 'redis-binaries'));
  candidates.push(path.resolve(downloadDir, version, isWindows ? 'memurai.exe' : 'redis-server'));
  for (const candidate of candidates) {
    if (await isExecutable(candidate)) return candidate;
  }
  searched.push('redis-memory-server (system binary / download cache)');
  return undefined;
}

/**
 * Finds the redis-server to run. Throws RedisConfiguredBinaryError when a configured path
 * is unusable and RedisBinaryNotFoundError when nothing is found. Does not check the
 * version: call redisServerVersion() on the result (the supervisor does so on start).
 */
export async function findRedisServerBinary(options: FindRedisServerBinaryOptions): Promise<RedisBinaryLocation> {
  const env = options.env ?? process.env;
  if (options.configuredPath !== undefined && options.configuredPath !== '') {
    const configured = path.resolve(options.configuredPath);
    const problem = await executableProblem(configured);
    if (problem !== undefined) throw new RedisConfiguredBinaryError(configured, problem);
    return { path: configured, source: 'configured' };
  }
  const searched: string[] = [];

  const exe = isWindows ? 'redis-server.exe' : 'redis-server';
  const platformArch = `${process.platform}-${process.arch}`;
  const resourcesPath = options.resourcesPath ?? (process as { resourcesPath?: string }).resourcesPath;
  const bundledCandidates = [unpackedPath(path.join(options.packageRoot, 'build', 'redis', platformArch, exe))];
  if (resourcesPath) bundledCandidates.push(path.join(resourcesPath, 'redis', platformArch, exe));
  for (const bundled of bundledCandidates) {
    if (await isExecutable(bundled)) return { path: bundled, source: 'bundled' };
    searched.push(bundled);
  }

  const onPath = await searchPath(env, searched);
  if (onPath !== undefined) return { path: onPath, source: 'path' };

  const fromRedisMs = await redisMemoryServerBinary(options.packageRoot, env, searched);
  if (fromRedisMs !== undefined) return { path: fromRedisMs, source: 'redis-memory-server' };

  throw new RedisBinaryNotFoundError(searched);
}

/** Parses `Redis server v=7.0.15 sha=…` into "7.0.15"; undefined when absent. */
export function parseRedisServerVersion(output: string): string | undefined {
  return /\bv=(\d+\.\d+\.\d+)\b/.exec(output)?.[1];
}

/** True when `version` ("major.minor.patch") is at least the supported minimum. */
export function isSupportedRedisVersion(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map((part) => Number.parseInt(part, 10));
  return major > MIN_REDIS_MAJOR || (major === MIN_REDIS_MAJOR && minor >= MIN_REDIS_MINOR);
}

/**
 * Runs `<path> --version` and returns e.g. "7.0.15". Rejects with RedisVersionError when
 * the binary cannot run or prints no version, and RedisVersionUnsupportedError below 7.0.
 */
export function redisServerVersion(binaryPath: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binaryPath, ['--version'], { timeout: timeoutMs, windowsHide: true }, (error, stdout) => {
      if (error) {
        reject(new RedisVersionError(binaryPath, `"--version" failed (${error.message})`, { cause: error }));
        return;
      }
      const version = parseRedisServerVersion(String(stdout));
      if (version === undefined) {
        reject(new RedisVersionError(binaryPath, `unexpected "--version" output: ${JSON.stringify(String(stdout).slice(0, 200))}`));
      } else if (!isSupportedRedisVersion(version)) {
        reject(new RedisVersionUnsupportedError(binaryPath, version));
      } else {
        resolve(version);
      }
    });
  });
}

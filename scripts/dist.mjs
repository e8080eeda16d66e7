// `npm run dist`: the installers for this computer's platform (electron-builder.json: Windows
// NSIS x64; macOS dmg + zip, x64 and arm64; Linux AppImage + deb x64) into release/.
//
// Before anything slow it checks what electron-builder will need and cannot make itself,
// and stops at once (exit 2) with what is missing and what to do:
//   - the redis-server the app ships, build/redis/<platform>-<arch>/ (scripts/build-redis.sh);
//   - Electron's binaries: electron-builder downloads electron-v<version>-<platform>-<arch>.zip
//     (through @electron/get, into its cache) unless the zip is cached; a cached zip still
//     needs the SHASUMS256.txt to check it against, from the cache or the download host.
// Then it builds (npm run build) and runs electron-builder with --publish never.
//
// Environment: ELECTRON_MIRROR (another download host, as @electron/get reads it),
// ELECTRON_CACHE or electron_config_cache (the cache folder; handed to electron-builder as
// electronDownload.cache, since electron-builder 26 no longer reads these itself).
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import url from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const EXIT_MISSING = 2;
const REACH_TIMEOUT_MS = 5_000;
const DEFAULT_MIRROR = 'https://github.com/electron/electron/releases/download/';

/** electron-builder's name for this platform's section of the config. */
const CONFIG_KEY = { win32: 'win', darwin: 'mac', linux: 'linux' };

/** The architectures the config builds for this platform (its targets' arch lists). */
export function targetArchs(config, platform) {
  const section = config[CONFIG_KEY[platform]] ?? {};
  const archs = new Set();
  for (const target of [section.target ?? []].flat()) {
    for (const arch of [typeof target === 'object' ? (target.arch ?? []) : []].flat()) archs.add(arch);
  }
  return archs.size > 0 ? [...archs] : [process.arch];
}

/** @electron/get's cache folder (env-paths('electron').cache), or the one the user chose. */
export function electronCacheRoot(env = process.env) {
  const chosen = env.ELECTRON_CACHE || env.electron_config_cache || env.npm_config_electron_config_cache;
  if (chosen) return path.resolve(chosen);
  const home = os.homedir();
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Caches', 'electron');
  if (process.platform === 'win32') return path.join(env.LOCALAPPDATA || path.join(home, 'AppData', 'Local'), 'electron', 'Cache');
  return path.join(env.XDG_CACHE_HOME || path.join(home, '.cache'), 'electron');
}

/** Where @electron/get downloads the zip from and where it keeps it (same rules as @electron/get 3). */
export function electronArtifact({ version, platform, arch, env = process.env }) {
  const mirror =
    env.npm_config_electron_mirror || env.NPM_CONFIG_ELECTRON_MIRROR || env.npm_package_config_electron_mirror || env.ELECTRON_MIRROR || DEFAULT_MIRROR;
  const customDir = (env.npm_config_electron_custom_dir || env.ELECTRON_CUSTOM_DIR || `v${version}`).replace('{{ version }}', version);
  const fileName = `electron-v${version}-${platform}-${arch}.zip`;
  const downloadUrl = `${mirror}${customDir}/${fileName}`;
  // @electron/get files a download under sha256(<its URL without the file name>), computed
  // with the legacy url API; done the same way here so the path is exactly where it looks.
  const { search: _search, hash: _hash, pathname, ...rest } = url.parse(downloadUrl);
  const stripped = url.format({ ...rest, pathname: path.dirname(pathname || 'electron') });
  const cacheRoot = electronCacheRoot(env);
  const cachedZip = path.join(cacheRoot, createHash('sha256').update(stripped).digest('hex'), fileName);
  const checksumFiles = [path.join(cacheRoot, `SHASUMS256.txt-${version}`), path.join(cacheRoot, 'SHASUMS256.txt')];
  const checksumsSeeded = checksumFiles.some((file) => existsSync(file) && readFileSync(file, 'utf8').includes(fileName));
  return { fileName, downloadUrl, cacheRoot, cachedZip, checksumFiles, checksumsSeeded, mirror };
}

/** Undefined when the host answers the file (HEAD, 5 s), else why not. */
async function unreachable(downloadUrl) {
  try {
    const response = await fetch(downloadUrl, { method: 'HEAD', redirect: 'follow', signal: AbortSignal.timeout(REACH_TIMEOUT_MS) });
    return response.ok ? undefined : `it answered HTTP ${response.status}`;
  } catch (error) {
    const cause = error?.cause?.code ?? error?.cause?.message ?? error?.message ?? String(error);
    return error?.name === 'TimeoutError' ? `no answer within ${REACH_TIMEOUT_MS / 1000} s` : `cannot connect (${cause})`;
  }
}

const proxied = (env) => Boolean(env.HTTPS_PROXY || env.https_proxy || env.HTTP_PROXY || env.http_proxy || env.GLOBAL_AGENT_HTTPS_PROXY);

/** What stops the build here, each with what to do; empty when electron-builder can go ahead. */
export async function missingPrerequisites({ config, platform = process.platform, env = process.env }) {
  const problems = [];
  const archs = targetArchs(config, platform);
  const exe = platform === 'win32' ? 'redis-server.exe' : 'redis-server';
  for (const arch of archs) {
    const redis = path.join(root, 'build', 'redis', `${platform}-${arch}`, exe);
    if (!existsSync(redis)) {
      problems.push(
        `redis-server for ${platform}-${arch} is missing: ${path.relative(root, redis)}\n  run scripts/build-redis.sh first (on a ${platform}-${arch} machine), see RELEASING.md`,
      );
    }
  }
  const version = JSON.parse(readFileSync(path.join(root, 'node_modules', 'electron', 'package.json'), 'utf8')).version;
  for (const arch of archs) {
    const artifact = electronArtifact({ version, platform, arch, env });
    if (existsSync(artifact.cachedZip) && artifact.checksumsSeeded) continue;
    // Behind a proxy electron-builder gets through where this fetch would not: let it try.
    if (proxied(env)) continue;
    const why = await unreachable(artifact.downloadUrl);
    if (why === undefined) continue;
    const lacking = existsSync(artifact.cachedZip)
      ? `${artifact.fileName} is cached, but not the SHASUMS256.txt to check it against`
      : `${artifact.fileName} is not in the cache`;
    problems.push(
      `Electron ${version} for ${platform}-${arch}: ${lacking}, and the download host cannot be reached:\n` +
        `  ${artifact.downloadUrl}: ${why}\n` +
        `  Either put the zip at ${artifact.cachedZip}\n` +
        `    and Electron's SHASUMS256.txt for v${version} at ${artifact.checksumFiles[0]}\n` +
        `  or set ELECTRON_MIRROR to a host that has it (ELECTRON_CACHE chooses the cache folder: ${artifact.cacheRoot}),\n` +
        `  or build the installers on a release machine with internet access (RELEASING.md).`,
    );
  }
  return problems;
}

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' && command === 'npm' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

async function main() {
  const platform = process.platform;
  if (!CONFIG_KEY[platform]) {
    console.error(`npm run dist: no installers are configured for ${platform} (electron-builder.json has win, mac and linux)`);
    process.exit(EXIT_MISSING);
  }
  const config = JSON.parse(readFileSync(path.join(root, 'electron-builder.json'), 'utf8'));
  const problems = await missingPrerequisites({ config, platform });
  if (problems.length > 0) {
    console.error(`npm run dist: cannot build the installers here:\n\n${problems.map((problem) => `- ${problem}`).join('\n\n')}`);
    process.exit(EXIT_MISSING);
  }
  run('npm', ['run', 'build']);
  const args = [path.join(root, 'node_modules', 'electron-builder', 'cli.js'), `--${CONFIG_KEY[platform]}`, '--publish', 'never'];
  const env = process.env;
  const cache = env.ELECTRON_CACHE || env.electron_config_cache || env.npm_config_electron_config_cache;
  if (cache) args.push(`-c.electronDownload.cache=${path.resolve(cache)}`);
  run(process.execPath, args);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();

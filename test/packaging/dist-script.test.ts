/**
 * `npm run dist` where Electron's binaries cannot be had (this machine: no internet): it
 * stops before building anything, with exit code 2 and a message that says what is missing
 * and what to do. The download host is an unreachable local port, so nothing is fetched.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const UNREACHABLE_MIRROR = 'http://127.0.0.1:9/';
const platformArch = `${process.platform}-${process.arch}`;

interface Artifact {
  fileName: string;
  downloadUrl: string;
  cachedZip: string;
  checksumFiles: string[];
}
// A plain script module (scripts/ is not type-checked): imported by a path TypeScript does not follow.
const distScript = '../../scripts/dist.mjs';
const { electronArtifact, missingPrerequisites } = (await import(distScript)) as {
  electronArtifact: (options: { version: string; platform: string; arch: string; env: NodeJS.ProcessEnv }) => Artifact;
  missingPrerequisites: (options: { config: unknown; env: NodeJS.ProcessEnv }) => Promise<string[]>;
};

const electronVersion = (JSON.parse(await readFile(path.join(root, 'node_modules', 'electron', 'package.json'), 'utf8')) as { version: string }).version;
const config = JSON.parse(await readFile(path.join(root, 'electron-builder.json'), 'utf8')) as unknown;

let cache: string;

/** The environment without proxies (they would make the script leave the check to electron-builder). */
function offlineEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const name of Object.keys(env)) if (/^(https?|all|global_agent_https?)_proxy$/i.test(name)) delete env[name];
  return env;
}

function runNpm(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeEach(async () => {
  cache = await mkdtemp(path.join(os.tmpdir(), 'cm-electron-cache-'));
});

afterEach(async () => {
  await rm(cache, { recursive: true, force: true });
});

describe('npm run dist without Electron binaries', () => {
  it('stops before building, exit 2, saying what is missing, where to put it, and the other ways', async () => {
    const { code, stdout, stderr } = await runNpm(['run', 'dist'], offlineEnv({ ELECTRON_CACHE: cache, ELECTRON_MIRROR: UNREACHABLE_MIRROR }));
    expect(code).toBe(2);
    const arch = process.arch;
    const zip = `electron-v${electronVersion}-${process.platform}-${arch}.zip`;
    expect(stderr).toContain(`Electron ${electronVersion} for ${platformArch}: ${zip} is not in the cache`);
    expect(stderr).toContain(`${UNREACHABLE_MIRROR}v${electronVersion}/${zip}: cannot connect`);
    expect(stderr).toContain(`Either put the zip at ${path.join(cache, '')}`);
    expect(stderr).toContain('or set ELECTRON_MIRROR');
    expect(stderr).toContain('RELEASING.md');
    // The redis-server check names its own fix when that is missing too.
    const redisMissing = !existsSync(path.join(root, 'build', 'redis', platformArch, process.platform === 'win32' ? 'redis-server.exe' : 'redis-server'));
    expect(stderr.includes('run scripts/build-redis.sh first')).toBe(redisMissing);
    // Nothing slow ran: no build, no electron-builder.
    expect(stdout).not.toMatch(/> .* build\b|electron-builder/);
  });
});

describe("the Electron check looks where electron-builder's downloader does", () => {
  const artifact = () =>
    electronArtifact({
      version: electronVersion,
      platform: process.platform,
      arch: process.arch,
      env: { ELECTRON_CACHE: cache, ELECTRON_MIRROR: UNREACHABLE_MIRROR },
    });

  it("the cached zip's path is the one @electron/get (electron-builder's copy) files it under", () => {
    const fromBuilder = createRequire(createRequire(import.meta.url).resolve('app-builder-lib/package.json'));
    const { Cache } = fromBuilder('@electron/get/dist/cjs/Cache.js') as { Cache: new (root: string) => { getCachePath(url: string, file: string): string } };
    const { fileName, downloadUrl, cachedZip } = artifact();
    expect(cachedZip).toBe(new Cache(cache).getCachePath(downloadUrl, fileName));
  });

  it('a cached zip with its checksums is enough: no download host needed', async () => {
    const { fileName, cachedZip, checksumFiles } = artifact();
    await mkdir(path.dirname(cachedZip), { recursive: true });
    await writeFile(cachedZip, 'zip');
    await writeFile(checksumFiles[0]!, `${'0'.repeat(64)} *${fileName}\n`);
    const problems = await missingPrerequisites({ config, env: offlineEnv({ ELECTRON_CACHE: cache, ELECTRON_MIRROR: UNREACHABLE_MIRROR }) });
    expect(problems.filter((problem) => problem.startsWith('Electron'))).toEqual([]);
  });

  it('a cached zip without checksums still needs the host, and says the SHASUMS256.txt is what is missing', async () => {
    const { cachedZip } = artifact();
    await mkdir(path.dirname(cachedZip), { recursive: true });
    await writeFile(cachedZip, 'zip');
    const problems = await missingPrerequisites({ config, env: offlineEnv({ ELECTRON_CACHE: cache, ELECTRON_MIRROR: UNREACHABLE_MIRROR }) });
    expect(problems.find((problem) => problem.startsWith('Electron'))).toMatch(/is cached, but not the SHASUMS256\.txt/);
  });
});

import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

// scripts/build-redis.sh, the parts that run in seconds: what it refuses and when it has
// nothing to do. The real build (minutes) runs in the release workflow, not here.
const SCRIPT = fileURLToPath(new URL('../../scripts/build-redis.sh', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runScript(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    // Tests never download: every case here stops before that (a --tarball, an up-to-date folder).
    execFile('bash', [SCRIPT, ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

function run(command: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => execFile(command, args, { cwd }, (error) => (error ? reject(error) : resolve())));
}

async function pinnedOf(): Promise<{ version: string; sha256: string }> {
  const text = await readFile(SCRIPT, 'utf8');
  return { version: /^REDIS_VERSION=(\S+)$/m.exec(text)![1]!, sha256: /^REDIS_SHA256=([0-9a-f]{64})$/m.exec(text)![1]! };
}

let dir: string;
let outRoot: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'build-redis-test-'));
  outRoot = path.join(dir, 'build', 'redis');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('scripts/build-redis.sh', () => {
  it('refuses a tarball whose sha256 is not the pinned one, and writes nothing', async () => {
    const { version } = await pinnedOf();
    // Looks like the release (right folder name) but is not its bytes.
    await mkdir(path.join(dir, 'src', `redis-${version}`), { recursive: true });
    await writeFile(path.join(dir, 'src', `redis-${version}`, 'Makefile'), 'all:\n\ttouch pwned\n');
    const fake = path.join(dir, `redis-${version}.tar.gz`);
    await run('tar', ['-czf', fake, '-C', path.join(dir, 'src'), `redis-${version}`], dir);

    const result = await runScript(['--tarball', fake, '--out-root', outRoot]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`sha256 mismatch for ${fake}`);
    expect(result.stderr).toContain('nothing written');
    expect(await readdir(dir)).not.toContain('build');
  });

  it('refuses a missing tarball and unknown options with a message', async () => {
    const missing = await runScript(['--tarball', path.join(dir, 'nope.tar.gz'), '--out-root', outRoot]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('no such tarball');
    const unknown = await runScript(['--frobnicate']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("unknown option '--frobnicate'");
    const half = await runScript(['--version', '7.2.99', '--tarball', path.join(dir, 'x.tar.gz')]);
    expect(half.code).not.toBe(0);
    expect(half.stderr).toContain('--version and --sha256 go together');
  });

  it('leaves a folder that already holds the pinned version alone (no download, no build)', async () => {
    const { version, sha256 } = await pinnedOf();
    const platformDir = path.join(outRoot, `${process.platform}-${process.arch}`);
    await mkdir(platformDir, { recursive: true });
    const exe = path.join(platformDir, process.platform === 'win32' ? 'redis-server.exe' : 'redis-server');
    await writeFile(exe, '#!/bin/sh\n');
    await chmod(exe, 0o755);
    await writeFile(path.join(platformDir, 'VERSION'), `redis ${version}\nsha256 ${sha256}\n`);

    const result = await runScript(['--out-root', outRoot]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Redis ${version} is already in ${platformDir}`);
    expect(await readFile(exe, 'utf8')).toBe('#!/bin/sh\n');
  });
});

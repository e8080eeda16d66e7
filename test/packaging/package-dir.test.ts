/**
 * The real packaged layout: electron-builder packs the app (its `dir` target, from
 * electron-builder.json) around a stand-in Electron binary (no download; installers need
 * the real one, `npm run dist`). Then, as the packaged manager would: the files it reads are
 * in app.asar, what runs outside the archive is unpacked, the bundled redis-server is found
 * and runs, and the MicroPython worker starts from the unpacked folder and runs Python.
 * Needs `npm run build` (dist/). Linux only: the stand-in is a Linux Electron folder.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unpackedPath, unpackedUrl } from '../../electron/manager/package-info.js';
import { findRedisServerBinary, redisServerVersion } from '../../electron/manager/redis/redis-binary.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const platformArch = `${process.platform}-${process.arch}`;
const fromBuilder = createRequire(createRequire(import.meta.url).resolve('app-builder-lib/package.json'));
const asarTool = fromBuilder('@electron/asar') as { listPackage(archive: string, options?: object): string[] };

let dir: string;
let resources: string;
let archived: Set<string>;

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe.skipIf(process.platform !== 'linux')('the app as electron-builder packs it', () => {
  beforeAll(async () => {
    expect(existsSync(path.join(root, 'dist', 'electron', 'app', 'main.js')), 'run npm run build first').toBe(true);
    dir = await mkdtemp(path.join(os.tmpdir(), 'cm-package-'));
    // A stand-in for Electron's unpacked distribution: electron-builder copies it and renames the binary.
    const electronDist = path.join(dir, 'electron');
    await mkdir(path.join(electronDist, 'resources'), { recursive: true });
    await writeFile(path.join(electronDist, 'electron'), '#!/bin/sh\n');
    await chmod(path.join(electronDist, 'electron'), 0o755);
    const config = JSON.parse(await readFile(path.join(root, 'electron-builder.json'), 'utf8')) as Record<string, unknown> & {
      extraResources: Array<{ from: string }>;
    };
    // The redis-server comes from scripts/build-redis.sh; where it has not been run, the
    // OS's (a symlink keeps argv[0] "redis-server") stands in at a temp folder.
    if (!existsSync(path.join(root, 'build', 'redis', platformArch, 'redis-server'))) {
      const redisDir = path.join(dir, 'redis', platformArch);
      await mkdir(redisDir, { recursive: true });
      await symlink('/usr/bin/redis-server', path.join(redisDir, 'redis-server'));
      config.extraResources = config.extraResources.map((set) => ({ ...set, from: path.join(dir, 'redis', '${platform}-${arch}') }));
    }
    const configFile = path.join(dir, 'electron-builder.json');
    await writeFile(
      configFile,
      JSON.stringify({ ...config, electronDist, npmRebuild: false, directories: { output: path.join(dir, 'out'), buildResources: 'build' } }),
    );
    const env = { ...process.env, ELECTRON_MIRROR: 'http://127.0.0.1:9/', ELECTRON_BUILDER_BINARIES_MIRROR: 'http://127.0.0.1:9/', CI: 'true' };
    const cli = path.join(root, 'node_modules', 'electron-builder', 'cli.js');
    const { code, output } = await run(process.execPath, [cli, '--linux', 'dir', '--x64', '--publish', 'never', '--config', configFile], env);
    expect(code, output).toBe(0);
    resources = path.join(dir, 'out', 'linux-unpacked', 'resources');
    archived = new Set(asarTool.listPackage(path.join(resources, 'app.asar'), { isPack: false }).map((entry) => entry.split(path.sep).join('/')));
  }, 180_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('app.asar holds the shell, the manager, the UI, the board firmware and the tray icons, and no source maps or tests', () => {
    for (const file of [
      '/package.json',
      '/dist/electron/app/main.js',
      '/dist/electron/manager/manager.js',
      '/dist/renderer/index.html',
      '/firmware/cm.py',
      '/build/icons/tray-online@2x.png',
    ]) {
      expect(archived.has(file), file).toBe(true);
    }
    for (const module of ['ioredis', 'ws', 'zod', 'serialport', 'esptool-js', 'electron-updater']) {
      expect(archived.has(`/node_modules/${module}/package.json`), module).toBe(true);
    }
    const unwanted = [...archived].filter(
      (file) => file.endsWith('.map') || /^\/(test|bench|renderer\/src|electron)\//.test(file) || file.startsWith('/node_modules/electron/'),
    );
    expect(unwanted).toEqual([]);
  });

  it('what must be a real file is unpacked: the workers, the MicroPython wasm, the serial port binding', () => {
    const unpacked = path.join(resources, 'app.asar.unpacked');
    for (const file of [
      'dist/electron/manager/virtual/micropython-worker.mjs',
      'dist/electron/manager/virtual/micropython-board-worker.mjs',
      'dist/electron/manager/virtual/lab-python/network.py',
      'node_modules/@micropython/micropython-webassembly-pyscript/micropython.wasm',
      'node_modules/@serialport/bindings-cpp/prebuilds/linux-x64/@serialport+bindings-cpp.glibc.node',
    ]) {
      expect(existsSync(path.join(unpacked, file)), file).toBe(true);
    }
  });

  it('the manager finds the bundled redis-server in the resources folder, and it runs', async () => {
    const found = await findRedisServerBinary({
      packageRoot: path.join(resources, 'app.asar'),
      resourcesPath: resources,
      env: { PATH: path.join(dir, 'empty') },
    });
    expect(found).toEqual({ path: path.join(resources, 'redis', platformArch, 'redis-server'), source: 'bundled' });
    expect(await redisServerVersion(found.path)).toMatch(/^7\./);
  });

  it('the MicroPython worker starts from app.asar.unpacked on its own files and runs Python', async () => {
    const inArchive = path.join(resources, 'app.asar', 'dist', 'electron', 'manager', 'virtual', 'micropython-worker.mjs');
    expect(unpackedPath(inArchive)).toBe(path.join(resources, 'app.asar.unpacked', 'dist', 'electron', 'manager', 'virtual', 'micropython-worker.mjs'));
    const worker = new Worker(unpackedUrl(pathToFileURL(inArchive)), {
      workerData: { heapBytes: 256 * 1024, interruptBuffer: new SharedArrayBuffer(4), filesDir: undefined },
    });
    try {
      const printed = await new Promise<string>((resolve, reject) => {
        let output = '';
        worker.on('error', reject);
        worker.on('message', (message: { type: string; data?: Uint8Array; status?: string; error?: string }) => {
          if (message.type === 'ready') worker.postMessage({ type: 'exec', id: 1, context: 'packaged', code: 'print(6 * 7)' });
          if (message.type === 'output' && message.data) output += Buffer.from(message.data).toString();
          if (message.type === 'done') resolve(message.status === 'ok' ? output : `${message.status}: ${message.error}`);
        });
      });
      expect(printed.trim()).toBe('42');
    } finally {
      await worker.terminate();
    }
  });
});

/**
 * Finding our files as real files in the packaged app's layout (resources/app.asar,
 * app.asar.unpacked, resources/redis/…), built here in temp folders: what is spawned or run
 * in a worker thread must be found outside the archive.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { unpackedPath, unpackedUrl } from '../../electron/manager/package-info.js';
import { RedisBinaryNotFoundError, findRedisServerBinary, redisServerVersion } from '../../electron/manager/redis/redis-binary.js';

const REDIS = '/usr/bin/redis-server';
const platformArch = `${process.platform}-${process.arch}`;
let dir: string;
let resources: string;
let asar: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cm-packaged-'));
  resources = path.join(dir, 'Cloudmanager', 'resources');
  // Outside Electron app.asar is a plain name; a folder stands in for the archive here.
  asar = path.join(resources, 'app.asar');
  await mkdir(path.join(asar, 'dist', 'electron', 'manager', 'virtual'), { recursive: true });
  await writeFile(path.join(asar, 'package.json'), '{"name":"cloudmanager-desktop"}');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('unpackedPath', () => {
  const worker = () => path.join(asar, 'dist', 'electron', 'manager', 'virtual', 'micropython-worker.mjs');
  const unpackedWorker = () => path.join(resources, 'app.asar.unpacked', 'dist', 'electron', 'manager', 'virtual', 'micropython-worker.mjs');

  it('maps a file in app.asar to app.asar.unpacked when it was unpacked there', async () => {
    await mkdir(path.dirname(unpackedWorker()), { recursive: true });
    await writeFile(unpackedWorker(), '');
    expect(unpackedPath(worker())).toBe(unpackedWorker());
    expect(unpackedUrl(pathToFileURL(worker())).href).toBe(pathToFileURL(unpackedWorker()).href);
  });

  it('leaves a file that was not unpacked, and any path outside an app.asar, as it is', async () => {
    expect(unpackedPath(worker())).toBe(worker());
    expect(unpackedUrl(pathToFileURL(worker())).href).toBe(pathToFileURL(worker()).href);
    const source = path.join(dir, 'checkout', 'dist', 'electron', 'manager', 'virtual', 'micropython-worker.mjs');
    expect(unpackedPath(source)).toBe(source);
    // Names that only look like the archive are not it.
    const lookalike = path.join(dir, 'my-app.asar', 'x.mjs');
    expect(unpackedPath(lookalike)).toBe(lookalike);
  });
});

describe('the bundled redis-server in the packaged app', () => {
  const noPath = () => ({ PATH: path.join(dir, 'empty') });

  it('is found under resources/redis/<platform>-<arch>/ (extraResources) and runs', async () => {
    const folder = path.join(resources, 'redis', platformArch);
    await mkdir(folder, { recursive: true });
    // A symlink keeps argv[0] "redis-server" (the Debian binary picks its role from argv[0]).
    await symlink(REDIS, path.join(folder, 'redis-server'));
    const found = await findRedisServerBinary({ packageRoot: asar, resourcesPath: resources, env: noPath() });
    expect(found).toEqual({ path: path.join(folder, 'redis-server'), source: 'bundled' });
    expect(await redisServerVersion(found.path)).toMatch(/^7\./);
  });

  it('is found in app.asar.unpacked when shipped inside the app instead', async () => {
    const folder = path.join(resources, 'app.asar.unpacked', 'build', 'redis', platformArch);
    await mkdir(folder, { recursive: true });
    await symlink(REDIS, path.join(folder, 'redis-server'));
    expect(await findRedisServerBinary({ packageRoot: asar, resourcesPath: resources, env: noPath() })).toEqual({
      path: path.join(folder, 'redis-server'),
      source: 'bundled',
    });
  });

  it('when missing, the error lists both bundled places it looked', async () => {
    const error = await findRedisServerBinary({ packageRoot: asar, resourcesPath: resources, env: noPath() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RedisBinaryNotFoundError);
    expect((error as RedisBinaryNotFoundError).searched).toEqual(
      expect.arrayContaining([path.join(asar, 'build', 'redis', platformArch, 'redis-server'), path.join(resources, 'redis', platformArch, 'redis-server')]),
    );
  });
});

/**
 * Facts about the installed package: its root folder (for bundled files), its version, and
 * where a bundled file really is on disk once the app is packaged.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

let cachedRoot: string | undefined;
let cachedVersion: string | undefined;

/** The folder holding our package.json, found from this file (works from src and dist). */
export async function packageRoot(): Promise<string> {
  if (cachedRoot) return cachedRoot;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (existsSync(candidate)) {
      const json = JSON.parse(await readFile(candidate, 'utf8')) as { name?: string };
      if (json.name === 'cloudmanager-desktop') return (cachedRoot = dir);
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the cloudmanager-desktop package folder');
    dir = parent;
  }
}

export async function packageVersion(): Promise<string> {
  if (cachedVersion) return cachedVersion;
  const json = JSON.parse(await readFile(path.join(await packageRoot(), 'package.json'), 'utf8')) as { version: string };
  return (cachedVersion = json.version);
}

/**
 * Where a file of ours is on disk as a real file. In the packaged app the package is
 * `resources/app.asar`; Electron's fs reads inside it, but what is spawned, or loaded by
 * a worker thread, must be a real file. electron-builder puts those (its `asarUnpack` list)
 * at the same relative path under `app.asar.unpacked`, so a path through `app.asar` is
 * mapped there when that file exists. Any other path comes back unchanged (source, dist/).
 */
export function unpackedPath(file: string): string {
  const marker = `${path.sep}app.asar${path.sep}`;
  const at = file.lastIndexOf(marker);
  if (at === -1) return file;
  const unpacked = `${file.slice(0, at)}${path.sep}app.asar.unpacked${path.sep}${file.slice(at + marker.length)}`;
  return existsSync(unpacked) ? unpacked : file;
}

/** unpackedPath() for a file: URL (worker entry points are found from import.meta.url). */
export function unpackedUrl(url: URL): URL {
  if (url.protocol !== 'file:') return url;
  const file = fileURLToPath(url);
  const mapped = unpackedPath(file);
  return mapped === file ? url : pathToFileURL(mapped);
}

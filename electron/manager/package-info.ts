/** Facts about the installed package: its root folder (for bundled files) and version. */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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

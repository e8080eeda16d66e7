// Copies the non-TypeScript runtime files of electron/ (Lua scripts, plain-JS worker
// entries) next to the compiled output in dist/, keeping their relative paths.
import { cpSync, readdirSync, statSync, mkdirSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const assetExtensions = ['.lua', '.mjs', '.py', '.json'];

function copyAssets(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      copyAssets(path);
      continue;
    }
    if (!assetExtensions.some((ext) => name.endsWith(ext))) continue;
    const target = join(root, 'dist', relative(root, path));
    mkdirSync(dirname(target), { recursive: true });
    cpSync(path, target);
  }
}

copyAssets(join(root, 'electron'));

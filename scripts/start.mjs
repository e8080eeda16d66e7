// `npm start`: the desktop app where the Electron binary is installed; otherwise the same
// manager service headless, in the foreground, printing where to reach it.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

if (!existsSync(path.join(root, 'dist', 'electron', 'cli', 'mbm.js'))) {
  console.error('Cloudmanager is not built yet: run `npm run setup` (or `npm run build`) first.');
  process.exit(1);
}

let electronBinary;
try {
  // The electron package exports the path of its binary, and throws if it was never downloaded.
  electronBinary = require('electron');
} catch {
  electronBinary = null;
}

const args = process.argv.slice(2);
let child;
if (typeof electronBinary === 'string' && existsSync(electronBinary)) {
  child = spawn(electronBinary, [root, ...args], { stdio: 'inherit' });
} else {
  console.log('Electron is not installed here: starting the Cloudmanager service headless (Ctrl-C stops it).');
  child = spawn(process.execPath, [path.join(root, 'bin', 'mbm.js'), 'server-start', '--foreground', ...args], { stdio: 'inherit' });
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));

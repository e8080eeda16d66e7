#!/usr/bin/env node
// `mbm`, the Cloudmanager command line. Runs the compiled CLI from dist/ (npm run build).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/electron/cli/mbm.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('mbm: the CLI is not built yet; run `npm run build` (or `npm run setup`) in the Cloudmanager folder.\n');
  process.exit(1);
}
await import(entry.href);

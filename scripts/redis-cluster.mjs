/**
 * npm run cluster:up -- [--masters 3] [--replicas 1] [--port 7000] [--dir DIR] [--redis-binary PATH]
 * npm run cluster:down [-- --dir DIR]
 *
 * A Redis Cluster on loopback for trying the app against a distributed Redis: `up` starts
 * masters × (1 + replicas) daemonized redis-server nodes (from --port, or the next free
 * ports when taken), one folder each under a temp folder (or DIR), creates the cluster,
 * waits until every node reports cluster_state:ok and prints one JSON line: the nodes,
 * the redis+cluster:// URL, the folder and its state file. `down` stops the nodes of the
 * lab in DIR (else the one `up` made last) and removes its folder; with nothing running it
 * says so and exits 0. The redis-server is the one the app would run (its lookup, from the
 * build in dist/), else the one on the PATH.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { labSummary, readLab, rememberedLabDir, startCluster, stopLab } from './redis-cluster-lib.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const usage =
  'usage: npm run cluster:up -- [--masters 3] [--replicas 1] [--port 7000] [--dir DIR] [--redis-binary PATH]\n' +
  '       npm run cluster:down [-- --dir DIR]\n';

function usageError(message) {
  process.stderr.write(`redis-cluster: ${message}\n${usage}`);
  process.exit(2);
}

/** A whole number in [min, max] from option `name`, or a usage error. */
function integer(values, name, fallback, min, max) {
  if (values[name] === undefined) return fallback;
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < min || value > max)
    usageError(`--${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(values[name])})`);
  return value;
}

/** The redis-server the app would use (same lookup and version check), or the PATH's when dist/ is not built. */
async function redisServer(configuredPath) {
  const lookup = path.join(root, 'dist/electron/manager/redis/redis-binary.js');
  if (!existsSync(lookup)) {
    if (configuredPath !== undefined) return path.resolve(configuredPath);
    process.stderr.write('redis-cluster: the app is not built (dist/), so using redis-server from the PATH\n');
    return 'redis-server';
  }
  const { findRedisServerBinary, redisServerVersion } = await import(lookup);
  const found = await findRedisServerBinary({ packageRoot: root, configuredPath });
  await redisServerVersion(found.path);
  return found.path;
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      masters: { type: 'string' },
      replicas: { type: 'string' },
      port: { type: 'string' },
      dir: { type: 'string' },
      'redis-binary': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
} catch (error) {
  usageError(error.message);
}
const { values, positionals } = parsed;
if (values.help) {
  process.stdout.write(usage);
  process.exit(0);
}
const [verb] = positionals;

try {
  if (verb === 'up') {
    const lab = await startCluster({
      redisServer: await redisServer(values['redis-binary']),
      masters: integer(values, 'masters', 3, 3, 100),
      replicas: integer(values, 'replicas', 1, 0, 5),
      port: integer(values, 'port', 7000, 1024, 55_000),
      dir: values.dir,
      remember: true,
    });
    process.stdout.write(`${JSON.stringify(labSummary(lab))}\n`);
  } else if (verb === 'down') {
    const dir = values.dir === undefined ? await rememberedLabDir() : path.resolve(values.dir);
    const lab = dir === undefined ? undefined : await readLab(dir);
    if (lab === undefined) {
      process.stdout.write(`redis-cluster: no lab running${values.dir === undefined ? '' : ` in ${dir}`}\n`);
    } else {
      await stopLab(lab);
      process.stdout.write(`redis-cluster: stopped ${lab.nodes.length} nodes and removed ${lab.dir}\n`);
    }
  } else {
    usageError(verb === undefined ? 'say up or down' : `unknown verb ${JSON.stringify(verb)}`);
  }
} catch (error) {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
}

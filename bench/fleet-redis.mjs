// The Redis a bench:fleet run uses, and how much memory it holds: the manager's embedded
// redis-server, a Redis the user names (--redis-url, one server or redis+cluster://…), or a
// 3-primary/1-replica Redis Cluster on loopback started for the run and stopped after it
// (scripts/redis-cluster-lib.mjs, the lab behind `npm run cluster:up`).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import { startCluster, stopLab } from '../scripts/redis-cluster-lib.mjs';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A 3-primary cluster with one replica each, in a temp folder, for one run: `{ url, pids(), stop() }`. */
export async function startClusterLab(root) {
  const lookup = path.join(root, 'dist/electron/manager/redis/redis-binary.js');
  const { findRedisServerBinary } = existsSync(lookup) ? await import(lookup) : {};
  const redisServer = findRedisServerBinary ? (await findRedisServerBinary({ packageRoot: root })).path : 'redis-server';
  // Away from the lab's default 7000, which the tests' own labs start from.
  const lab = await startCluster({ redisServer, masters: 3, replicas: 1, port: 17000 });
  // Configured like the embedded server where it matters per board (redis-server-config.ts):
  // Redis's default 4 KB stream nodes would cost each board ~6 KB more and blur the comparison.
  for (const node of lab.nodes) {
    const client = new Redis({ host: '127.0.0.1', port: node.port, lazyConnect: true, maxRetriesPerRequest: 1 });
    await client.connect();
    await client.config('SET', 'stream-node-max-bytes', '1024');
    client.disconnect();
  }
  return { url: lab.url, pids: () => lab.nodes.map((node) => node.pid).filter(Boolean), stop: () => stopLab(lab) };
}

/** ioredis options of every primary behind `url` (`redis://`, `redis+cluster://`, `redis+sentinel://`, TLS forms too); replicas are not read. */
export async function primariesOf(url, root) {
  const { parseRedisTarget } = await import(path.join(root, 'dist/electron/manager/redis/redis-connection.js'));
  const target = parseRedisTarget(url);
  if (target.kind === 'single') {
    const { host, port, username, password, tls } = target.endpoint;
    return [{ host, port, username, password, ...(tls ? { tls: {} } : {}) }];
  }
  const credentials = { username: target.username, password: target.password, ...(target.tls ? { tls: {} } : {}) };
  if (target.kind === 'sentinel') {
    // Sentinel watches one primary: the first sentinel that answers says where it is now.
    for (const sentinel of target.sentinels) {
      const client = new Redis({ ...sentinel, password: target.sentinelPassword, lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await client.connect();
        const [host, port] = await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', target.name);
        if (host) return [{ host, port: Number(port), ...credentials }];
      } catch {
        // the next sentinel
      } finally {
        client.disconnect();
      }
    }
    throw new Error(`bench: no sentinel of ${url.replace(/\/\/[^@/]*@/, '//****@')} named the primary ${target.name}`);
  }
  for (const seed of target.nodes) {
    const client = new Redis({ ...seed, ...credentials, lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      const nodes = String(await client.cluster('NODES'));
      // `<id> <host:port@bus> <flags> …`; a primary marked failed holds no slots that count.
      return nodes
        .trim()
        .split('\n')
        .map((line) => line.split(' '))
        .filter(([, , flags]) => flags.split(',').includes('master') && !/fail/.test(flags))
        .map(([, address]) => {
          const hostPort = address.split('@')[0];
          const at = hostPort.lastIndexOf(':');
          return { host: hostPort.slice(0, at) || seed.host, port: Number(hostPort.slice(at + 1)), ...credentials };
        });
    } catch {
      // the next seed
    } finally {
      client.disconnect();
    }
  }
  throw new Error(`bench: no node of ${url.replace(/\/\/[^@/]*@/, '//****@')} answered CLUSTER NODES`);
}

/** The embedded server as the manager's own user sees it (the password is in the data folder). */
export async function embeddedPrimary(dataDir, port) {
  const password = (await readFile(path.join(dataDir, 'secrets', 'redis-manager.password'), 'utf8')).trim();
  return [{ host: '127.0.0.1', port, username: 'cm-manager', password }];
}

/** Reads used_memory from every primary; `usedMemory()` is their sum. */
export async function memoryReader(primaries) {
  const clients = primaries.map((options) => new Redis({ ...options, lazyConnect: true, maxRetriesPerRequest: 1 }));
  // A failed command says what went wrong; reconnect errors after the lab stopped (a run that failed) are not news.
  for (const client of clients) client.on('error', () => {});
  await Promise.all(clients.map((client) => client.connect()));
  const usedMemory = async () => {
    const infos = await Promise.all(clients.map((client) => client.info('memory')));
    return infos.reduce((sum, info) => sum + Number(/^used_memory:(\d+)/m.exec(info)[1]), 0);
  };
  return {
    usedMemory,
    /**
     * used_memory sampled every 250 ms for `seconds`: mean, min and max. An idle board wakes once
     * per heartbeat, and redis-server 7.0 then holds a 20 KB query buffer for it until the
     * connection has been idle for over 2 s (clientsCron), so one reading depends on where
     * in the heartbeat period it falls; the mean over a whole period does not.
     */
    async overPeriod(seconds) {
      const samples = [];
      const end = Date.now() + seconds * 1000;
      while (Date.now() < end) {
        samples.push(await usedMemory());
        await sleep(250);
      }
      return { mean: samples.reduce((sum, value) => sum + value, 0) / samples.length, min: Math.min(...samples), max: Math.max(...samples) };
    },
    close: () => clients.forEach((client) => client.disconnect()),
  };
}

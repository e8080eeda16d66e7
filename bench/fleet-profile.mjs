// Opt-in measurements for `bench/fleet.mjs --cpu-prof-dir DIR` (never used by a plain run):
// the manager child is started with node --cpu-prof (its .cpuprofile lands in DIR when it
// exits), and this module writes DIR/fleet-profile.json with what the profile alone cannot
// say: each broadcast's window on the profile's clock (so scripts/cpuprofile-summary.mjs
// can cut it out), the CPU time every process spent in it, Redis's INFO commandstats delta,
// and where Redis's memory per board goes (per key kind, per client kind).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';

const CLOCK_TICKS = 100; // USER_HZ on Linux: /proc/<pid>/stat counts CPU time in 1/100 s

/** Node options for the manager child only (Node refuses --cpu-prof in NODE_OPTIONS): V8 writes its profile into `dir` at exit. */
export function cpuProfileArgs(dir) {
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/** Microseconds on the monotonic clock V8's profiler stamps its samples with. */
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

/** CPU seconds (user + system) `pid` has used so far; null once it is gone. */
export async function cpuSeconds(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (!stat) return null;
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

function parseCommandStats(info) {
  const stats = {};
  for (const line of info.split('\r\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (match) stats[match[1]] = { calls: Number(match[2]), usec: Number(match[3]) };
  }
  return stats;
}

function parseInfo(info) {
  const fields = {};
  for (const line of info.split('\r\n')) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields[line.slice(0, at)] = Number.isNaN(Number(line.slice(at + 1))) ? line.slice(at + 1) : Number(line.slice(at + 1));
  }
  return fields;
}

function diffCommandStats(before, after) {
  const rows = [];
  for (const [name, { calls, usec }] of Object.entries(after)) {
    const was = before[name] ?? { calls: 0, usec: 0 };
    if (calls === was.calls) continue;
    const dCalls = calls - was.calls;
    const dUsec = usec - was.usec;
    rows.push({ command: name, calls: dCalls, usec: dUsec, usec_per_call: Number((dUsec / dCalls).toFixed(2)) });
  }
  return rows.sort((a, b) => b.usec - a.usec);
}

/** `cm:{v1-7}:cmd` → `cm:{*}:cmd`; blob parts and manager keys keep their own name. */
const keyKind = (key) => key.replace(/^cm:\{(?!mgr\})[^}]+\}/, 'cm:{*}').replace(/:f:[^:]+/, ':f:*');

/** `redisOptions`: ioredis options of the node to read (the manager's user on the embedded server; a cluster's first primary). */
export async function startFleetProfile({ redisOptions, profileDir, processes }) {
  const redis = new Redis({ ...redisOptions, lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  await redis.connect();
  const report = { windows: [], memory: {} };

  const cpuOfAll = async () => {
    const cpu = {};
    for (const [label, pid] of Object.entries(processes())) cpu[label] = await cpuSeconds(pid);
    return cpu;
  };

  return {
    /** Call around one broadcast round: returns the function that closes its window. */
    async beginWindow(label) {
      const commandStats = parseCommandStats(await redis.info('commandstats'));
      const cpu = await cpuOfAll();
      const startUs = nowUs();
      return async () => {
        const endUs = nowUs();
        const cpuAfter = await cpuOfAll();
        const commandStatsAfter = parseCommandStats(await redis.info('commandstats'));
        const cpuS = {};
        for (const label of Object.keys(cpuAfter))
          if (cpu[label] !== null && cpuAfter[label] !== null) cpuS[label] = Number((cpuAfter[label] - cpu[label]).toFixed(2));
        report.windows.push({
          label,
          start_us: startUs,
          end_us: endUs,
          wall_s: (endUs - startUs) / 1e6,
          cpu_s: cpuS,
          redis_commands: diffCommandStats(commandStats, commandStatsAfter),
        });
      };
    },

    /** Redis memory per board: used_memory, per key kind (MEMORY USAGE over a sample of boards), per client kind. */
    async measureMemory(label, boards, boardIds) {
      const memory = parseInfo(await redis.info('memory'));
      const keyspace = await redis.dbsize();
      const kinds = {};
      const add = (kind, bytes) => {
        kinds[kind] ??= { keys: 0, bytes: 0 };
        kinds[kind].keys += 1;
        kinds[kind].bytes += bytes;
      };
      for (const id of boardIds) {
        for (const key of await redis.keys(`cm:{${id}}:*`)) add(keyKind(key), (await redis.memory('USAGE', key, 'SAMPLES', '0')) ?? 0);
      }
      for (const key of await redis.keys('cm:{mgr}:*')) add(keyKind(key), (await redis.memory('USAGE', key, 'SAMPLES', '0')) ?? 0);
      const perBoardKeys = {};
      for (const [kind, { keys, bytes }] of Object.entries(kinds)) {
        perBoardKeys[kind] = kind.startsWith('cm:{mgr}')
          ? { keys, bytes_per_board: Math.round(bytes / boards) }
          : { keys_per_board: keys / boardIds.length, bytes_per_board: Math.round(bytes / boardIds.length) };
      }
      const clients = {};
      for (const line of (await redis.client('LIST')).split('\n').filter(Boolean)) {
        const fields = Object.fromEntries(line.split(' ').map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
        const kind = fields.user.startsWith('cmb-') ? 'board' : fields.user;
        clients[kind] ??= { clients: 0, tot_mem: 0, qbuf: 0, qbuf_free: 0, omem: 0, argv_mem: 0 };
        const row = clients[kind];
        row.clients += 1;
        row.tot_mem += Number(fields['tot-mem']);
        row.qbuf += Number(fields.qbuf);
        row.qbuf_free += Number(fields['qbuf-free']);
        row.omem += Number(fields.omem);
        row.argv_mem += Number(fields['argv-mem'] ?? 0);
      }
      for (const row of Object.values(clients)) row.tot_mem_per_client = Math.round(row.tot_mem / row.clients);
      const config = Object.fromEntries(
        (await redis.config('GET', 'stream-node-max-*'))
          .concat(await redis.config('GET', 'client-query-buffer-limit'))
          .reduce((pairs, value, i, all) => (i % 2 ? pairs : [...pairs, [value, all[i + 1]]]), []),
      );
      report.memory[label] = {
        boards,
        keyspace,
        used_memory: memory.used_memory,
        used_memory_per_board: Math.round(memory.used_memory / boards),
        used_memory_dataset: memory.used_memory_dataset,
        mem_clients_normal: memory.mem_clients_normal,
        used_memory_overhead: memory.used_memory_overhead,
        used_memory_scripts: memory.used_memory_scripts,
        mem_fragmentation_ratio: memory.mem_fragmentation_ratio,
        keys_by_kind: perBoardKeys,
        clients_by_kind: clients,
        config,
      };
    },

    async finish() {
      await writeFile(path.join(profileDir, 'fleet-profile.json'), JSON.stringify(report, null, 1));
      redis.disconnect();
    },
  };
}

// npm run bench:install [-- --boards 20]
//
// board-install, measured through the API as a client sees it (jobs.start → every board's
// result), against the test package index (test/helpers/package-index-lab.ts, HTTP on
// 127.0.0.1) and the service's embedded redis-server. The package: `weather` (3 files)
// with 2 dependencies (1 file each): 5 files, compiled to .mpy on the host.
//   mp1_*     one MicroPython lab board (the real client in the WebAssembly interpreter, 36 KB heap)
//   mpN_*     N MicroPython lab boards at once (the same; N interpreters in worker threads on this machine)
//   refN_*    N reference boards (the service's virtual boards, one process)
//   *_first   first install (download cache emptied before it), *_second the same again
//   *_ms      jobs.start until every board has its result; *_bytes file bytes sent, all boards
// Prints one JSON line. Uses the build in dist/ (npm runs the TypeScript build first).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freeTcpPort, freeUdpPort } from './ports.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (file) => import(path.join(root, 'dist/electron/manager', file));
const { Manager } = await dist('manager.js');
const { ApiClient } = await dist('api/client.js');
const { startMicroPythonFleet } = await dist('virtual/micropython-fleet.js');
const { startVirtualFleet } = await dist('virtual/virtual-fleet.js');
// The index lab is a test helper in TypeScript: loaded through jiti (a declared dev dependency), not built.
const { createJiti } = await import('jiti');
const { startPackageIndexLab } = await createJiti(import.meta.url).import(path.join(root, 'test/helpers/package-index-lab.ts'));

const { values } = parseArgs({ options: { boards: { type: 'string', default: '20' } } });
const boardCount = Number(values.boards);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Plausible module sources of a few KB, different per file. */
function module(name, functions) {
  const lines = [`"""${name}: bench fixture."""`, 'import math', ''];
  for (let i = 0; i < functions; i++) {
    lines.push(
      `def ${name}_f${i}(x, y=${i}):`,
      `    """Returns a value derived from x (${name} #${i})."""`,
      `    return math.sqrt(x * x + y * ${i + 1}) + ${i}`,
      '',
    );
  }
  return lines.join('\n');
}
const FIXTURES = [
  {
    name: 'weather',
    version: '1.0',
    files: {
      'weather/__init__.py': 'from weather.core import reading\nfrom weather.units import celsius\n',
      'weather/core.py': module('core', 40),
      'weather/units.py': module('units', 25),
    },
    deps: [
      ['sensorkit', '2.1'],
      ['ringbuf', 'latest'],
    ],
  },
  { name: 'sensorkit', version: '2.1', files: { 'sensorkit.py': module('sensorkit', 30) } },
  { name: 'ringbuf', version: '0.4', files: { 'ringbuf.py': module('ringbuf', 15) } },
];
const sourceBytes = FIXTURES.reduce((sum, pkg) => sum + Object.values(pkg.files).reduce((n, text) => n + Buffer.byteLength(text), 0), 0);

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-bench-install-'));
const index = await startPackageIndexLab(FIXTURES);
const redisPort = await freeTcpPort();
const manager = new Manager({ dataDir, redisPort, discoveryPort: await freeUdpPort(), heartbeatS: 5, pypiUrl: '' });
let one;
let mp;
let refs;
try {
  await manager.start();
  const api = new ApiClient(manager.apiUrl, manager.apiToken);
  const micropythonBoards = (prefix, count) =>
    startMicroPythonFleet({
      api,
      count,
      prefix,
      root: path.join(dataDir, prefix),
      server: { host: '127.0.0.1', port: redisPort },
      board: { heapBytes: 36 * 1024 },
    });
  one = await micropythonBoards('bench-one', 1);
  mp = await micropythonBoards('bench-mp', boardCount);
  refs = await startVirtualFleet({ api, count: boardCount, prefix: 'bench-ref' });
  for (let i = 0; (await api.call('status', {})).boards.online < 2 * boardCount + 1; i++) {
    if (i > 2400) throw new Error('bench: the boards did not come online');
    await sleep(50);
  }

  const install = async (boards) => {
    const began = performance.now();
    const started = await api.call('jobs.start', { kind: 'install', boards, packages: ['weather'], index: index.url });
    for (;;) {
      const job = await api.call('jobs.get', { id: started.id });
      if (job.state === 'done') {
        const failed = job.targets.filter((target) => target.status !== 'ok');
        if (failed.length > 0) throw new Error(`bench: ${failed[0].board}: ${failed[0].message}`);
        const ms = performance.now() - began;
        return { ms: Math.round(ms), bytes: job.targets.reduce((sum, target) => sum + target.install.bytes, 0), files: job.targets[0].install };
      }
      await sleep(10);
    }
  };
  const cacheDir = path.join(dataDir, 'packages');

  await rm(cacheDir, { recursive: true, force: true });
  const mpFirst = await install('bench-one-1');
  const mpSecond = await install('bench-one-1');
  await rm(cacheDir, { recursive: true, force: true });
  const mpManyFirst = await install('bench-mp-*');
  const mpManySecond = await install('bench-mp-*');
  await rm(cacheDir, { recursive: true, force: true });
  const refFirst = await install('bench-ref-*');
  const refSecond = await install('bench-ref-*');
  console.log(
    JSON.stringify({
      package_files: 5,
      package_source_bytes: sourceBytes,
      mp1_first_ms: mpFirst.ms,
      mp1_first_bytes: mpFirst.bytes,
      mp1_second_ms: mpSecond.ms,
      mp1_second_bytes: mpSecond.bytes,
      mp1_second_skipped: mpSecond.files.skippedFiles,
      [`mp${boardCount}_first_ms`]: mpManyFirst.ms,
      [`mp${boardCount}_first_bytes`]: mpManyFirst.bytes,
      [`mp${boardCount}_second_ms`]: mpManySecond.ms,
      [`mp${boardCount}_second_bytes`]: mpManySecond.bytes,
      [`ref${boardCount}_first_ms`]: refFirst.ms,
      [`ref${boardCount}_first_bytes`]: refFirst.bytes,
      [`ref${boardCount}_second_ms`]: refSecond.ms,
      [`ref${boardCount}_second_bytes`]: refSecond.bytes,
    }),
  );
} finally {
  await one?.close();
  await mp?.close();
  await refs?.close();
  await manager.stop();
  await index.stop();
  await rm(dataDir, { recursive: true, force: true });
}

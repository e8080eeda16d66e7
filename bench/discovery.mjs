// npm run bench:discovery [-- --runs 5]
//
// Board discovery end to end (PROTOCOL.md §9), in the board lab: a MicroPython lab board
// (the real firmware) is provisioned while the service listens on 127.0.0.1 and 127.0.0.3
// and gives boards 127.0.0.3; the service stops and starts again on the same data folder
// on 127.0.0.1 and 127.0.0.2 (a new address from DHCP). The board's connects to 127.0.0.3
// fail, it asks its subnet, the service's responder answers, and it comes back by itself.
//   restart_to_hello_ms   from the call that starts the service again to the board's hello
//                         (its board.online event), median of the runs
//   service_start_ms      of that, the service's own start (median)
//   heap_held_after_bytes heap the client holds once back online after a round, on a 36 KB
//                         board (as bench:firmware's heap_held_bytes: minus the same lab
//                         board without firmware); cm_find is gone, its names stay interned
// Most of it is the board's reconnect backoff: its first connect after losing the service
// comes 1 s later, then 2 s and 4 s (three failures), then the round (one broadcast and
// its answer, a few ms on loopback). Target: under 10 s.
// Prints one JSON line. Uses the build in dist/ (npm runs tsc first).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freeTcpPort, freeUdpPort } from './ports.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (file) => import(path.join(root, 'dist/electron/manager', file));
const { Manager } = await dist('manager.js');
const { ApiClient } = await dist('api/client.js');
const { MicroPythonBoard } = await dist('virtual/micropython-board.js');
const { LAB_WIFI, provisionFolder } = await dist('virtual/micropython-fleet.js');

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
const HEAP = 36 * 1024;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];

async function waitOnline(api, name, timeoutMs) {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(50)) {
    if ((await api.call('boards.get', { board: name })).online) return;
  }
  throw new Error(`bench: ${name} did not come online within ${timeoutMs} ms`);
}

/** One run: provision at the old address, move the service, time the board's return. */
/** Heap in use on a lab board without firmware (what bench:firmware subtracts too). */
async function baselineUsed() {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-bench-disc-base-'));
  const board = new MicroPythonBoard({ folder, heapBytes: HEAP, firmwareModule: 'no_firmware', timing: 'fast' });
  try {
    await board.start();
    return (await board.heap()).used;
  } finally {
    await board.powerOff();
    await rm(folder, { recursive: true, force: true });
  }
}

async function once(run) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-bench-disc-'));
  const common = { dataDir, redisPort: await freeTcpPort(), discoveryPort: await freeUdpPort(), heartbeatS: 5 };
  let manager = new Manager({ ...common, bind: ['127.0.0.1', '127.0.0.3'], advertiseHost: '127.0.0.3' });
  let board;
  try {
    await manager.start();
    let api = new ApiClient(manager.apiUrl, manager.apiToken);
    const name = `moved-${run}`;
    const [credentials] = await api.call('boards.enrollMany', { names: [name], rotate: true });
    const folder = path.join(dataDir, 'board');
    await provisionFolder(folder, credentials, { host: credentials.server, port: credentials.port });
    const configFile = path.join(folder, 'cm_config.json');
    await writeFile(configFile, JSON.stringify({ ...JSON.parse(await readFile(configFile, 'utf8')), dp: common.discoveryPort }));
    board = new MicroPythonBoard({ folder, heapBytes: HEAP, wifi: LAB_WIFI, label: name, timing: 'fast' });
    await board.start();
    await waitOnline(api, name, 30_000);

    await manager.stop();
    manager = new Manager({ ...common, bind: ['127.0.0.1', '127.0.0.2'], advertiseHost: '127.0.0.2' });
    const restartedAt = performance.now();
    await manager.start();
    const upAt = performance.now();
    api = new ApiClient(manager.apiUrl, manager.apiToken);
    let helloAt;
    const subscription = await api.events((event) => {
      if (event.type === 'board.online' && event.board.name === name) helloAt ??= performance.now();
    });
    try {
      await waitOnline(api, name, 60_000);
      helloAt ??= performance.now(); // online before the subscription was made
    } finally {
      subscription.close();
    }
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    if (config.server !== '127.0.0.2') throw new Error(`bench: the board's config says server ${config.server}`);
    await sleep(300); // idle, as bench:firmware measures it
    const heapUsed = (await board.heap()).used;
    return { restartToHello: helloAt - restartedAt, serviceStart: upAt - restartedAt, heapUsed };
  } finally {
    await board?.powerOff();
    await manager.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const baseUsed = await baselineUsed();
const results = [];
for (let run = 0; run < runs; run++) results.push(await once(run));
console.log(
  JSON.stringify({
    restart_to_hello_ms: Math.round(median(results.map((result) => result.restartToHello))),
    service_start_ms: Math.round(median(results.map((result) => result.serviceStart))),
    heap_held_after_bytes: median(results.map((result) => result.heapUsed)) - baseUsed,
    runs: results.map((result) => Math.round(result.restartToHello)),
  }),
);

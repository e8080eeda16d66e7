// npm run bench:firmware [-- --samples 200]
//
// The MicroPython board client, measured in the board lab (MicroPython 1.27 WebAssembly,
// real redis-server started by the manager on loopback):
//   heap_held_bytes   heap the client holds once started and idle on a 36 KB board
//                     (heap in use, minus the same lab board without firmware)
//   client_py_bytes   the client files provisioning writes, as .py source
//   client_mpy_bytes  the same files with the modules compiled to .mpy (main.py stays .py)
//   rtt_p50_ms        exec of print(1) on one board, API call to result (p50 of samples)
// Prints one JSON line. Uses the build in dist/ (npm runs `npm run build` first).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freeTcpPort } from './ports.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (file) => import(path.join(root, 'dist/electron/manager', file));
const { Manager } = await dist('manager.js');
const { ApiClient } = await dist('api/client.js');
const { MicroPythonBoard } = await dist('virtual/micropython-board.js');
const { LAB_WIFI, provisionFolder } = await dist('virtual/micropython-fleet.js');
const { buildProvisioningPayload, CONFIG_PATH } = await dist('fleet/provisioning-payload.js');

const { values } = parseArgs({ options: { samples: { type: 'string', default: '200' } } });
const samples = Number(values.samples);
const HEAP = 36 * 1024;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-bench-fw-'));
const manager = new Manager({ dataDir, redisPort: await freeTcpPort(), heartbeatS: 5 });
const boards = [];
try {
  await manager.start();
  const api = new ApiClient(manager.apiUrl, manager.apiToken);

  // Baseline: the same lab board without firmware.
  const baseFolder = path.join(dataDir, 'baseline');
  await provisionFolder(
    baseFolder,
    { v: 1, id: 'b0', name: 'b0', user: 'cmb-b0', password: 'x'.repeat(43), server: '127.0.0.1', port: 1, hb: 5 },
    { host: '127.0.0.1', port: 1 },
  );
  await writeFile(path.join(baseFolder, 'main.py'), '');
  const baseline = new MicroPythonBoard({ folder: baseFolder, heapBytes: HEAP, firmwareModule: 'no_firmware' });
  await baseline.start();
  const baseUsed = (await baseline.heap()).used;
  await baseline.powerOff();

  const [credentials] = await api.call('boards.enrollMany', { names: ['bench-mp'], rotate: true });
  const server = { host: '127.0.0.1', port: credentials.port };
  const folder = path.join(dataDir, 'bench-mp');
  await provisionFolder(folder, credentials, server);
  const board = new MicroPythonBoard({ folder, heapBytes: HEAP, wifi: LAB_WIFI, label: 'bench-mp' });
  boards.push(board);
  await board.start();
  for (let i = 0; !(await api.call('boards.get', { board: 'bench-mp' })).online; i++) {
    if (i > 400) throw new Error('bench: the board did not come online');
    await sleep(50);
  }
  await sleep(300);
  const heapHeld = (await board.heap()).used - baseUsed;

  const rtts = [];
  for (let i = 0; i < samples + 10; i++) {
    const began = performance.now();
    const { commands } = await api.call('commands.send', { boards: 'bench-mp', request: { op: 'exec', code: 'print(1)' } });
    const [done] = await api.call('commands.wait', { cids: [commands[0].cid], timeoutMs: 10_000 });
    if (done.status !== 'ok') throw new Error(`bench: exec ended ${done.status}`);
    if (i >= 10) rtts.push(performance.now() - began);
  }
  rtts.sort((a, b) => a - b);

  const clientBytes = async (mpy) => {
    const payload = await buildProvisioningPayload({ wifi: LAB_WIFI, server, credentials, mpy });
    return payload.files.filter((file) => file.path !== CONFIG_PATH).reduce((sum, file) => sum + file.data.length, 0);
  };
  console.log(
    JSON.stringify({
      heap_held_bytes: heapHeld,
      client_py_bytes: await clientBytes(null),
      client_mpy_bytes: await clientBytes(774),
      rtt_p50_ms: Number(rtts[Math.floor(rtts.length / 2)].toFixed(2)),
      rtt_p99_ms: Number(rtts[Math.min(rtts.length - 1, Math.floor(rtts.length * 0.99))].toFixed(2)),
      heap_bytes: HEAP,
      samples: rtts.length,
    }),
  );
} finally {
  await Promise.all(boards.map((board) => board.powerOff()));
  await manager.stop();
  await rm(dataDir, { recursive: true, force: true });
}

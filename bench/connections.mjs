// npm run bench:connections [-- --flood 20000 --processes 2 --timeout 120]
//
// Connection exhaustion (issue 11, point 2), measured on loopback: the service runs with
// its embedded Redis; flood processes open `--flood` connections to the boards' port that
// never log in, and re-open every one that is closed at once (from 127.0.x.y source
// addresses, so the flood never runs out of ports). Once Redis refuses connections, a board
// is enrolled and started (a reference board, with the protocol's reconnect backoff: 1 s
// doubling to 60 s) and timed until the service sees it online.
//   board_online_ms    from the board's start to its hello (null: not within --timeout)
//   flood_held_max     most flood connections open at once (as the flood sees them: a
//                      connection Redis refuses is open for a moment too)
//   max_clients        Redis's maxclients; refused, the connections Redis refused meanwhile
//   alarm              the connections-refused alarm of `status` (null when none)
//   redis_used_mb      Redis's used memory during the flood; manager_rss_mb, the manager's
// Each flood process holds at most --flood/--processes sockets: one process's open files
// are limited (ulimit -n), so 20,000 needs two where that limit is 20,000 or less.
// Prints one JSON line. Uses the build in dist/ (npm runs tsc first).
import { fork } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { freeTcpPort, freeUdpPort } from './ports.mjs';

const { values } = parseArgs({
  options: {
    flood: { type: 'string', default: '20000' },
    processes: { type: 'string', default: '2' },
    timeout: { type: 'string', default: '120' },
    child: { type: 'string' },
    count: { type: 'string' },
    offset: { type: 'string', default: '0' },
  },
});

/** A flood process: holds `count` idle connections to `port`, re-opening each one closed. */
function floodChild(port, count, offset) {
  let held = 0;
  let opened = 0;
  let next = offset;
  const open = () => {
    // 127.0.1.0 – 127.0.200.255: a fresh source address now and then keeps ports free.
    const source = `127.0.${1 + (Math.floor(next / 250) % 200)}.${next % 250}`;
    next++;
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: source });
    let up = false;
    socket.on('connect', () => {
      up = true;
      held++;
      opened++;
    });
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.on('close', () => {
      if (up) held--;
      setImmediate(open);
    });
  };
  for (let index = 0; index < count; index++) open();
  setInterval(() => process.send?.({ held, opened }), 500);
}

if (values.child) {
  floodChild(Number(values.child), Number(values.count), Number(values.offset));
} else {
  const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
  const dist = (file) => import(path.join(root, 'dist/electron/manager', file));
  const { Manager } = await dist('manager.js');
  const { ApiClient } = await dist('api/client.js');
  const { ReferenceBoard } = await dist('virtual/reference-board.js');
  const { MemoryFs } = await dist('virtual/board-fs.js');
  const { MicroPythonInterpreter } = await dist('virtual/micropython-interpreter.js');

  const flood = Number(values.flood);
  const processes = Number(values.processes);
  const timeoutMs = Number(values.timeout) * 1000;
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-bench-conn-'));
  const redisPort = await freeTcpPort();
  const manager = new Manager({ dataDir, redisPort, heartbeatS: 5, discoveryPort: await freeUdpPort(), log: () => {} });
  const children = [];
  const interpreter = new MicroPythonInterpreter();
  let board;
  let admin;
  try {
    await manager.start();
    const api = new ApiClient(manager.apiUrl, manager.apiToken);
    // Opened before the flood: a connection opened during it would wait its turn like anyone's.
    admin = new Redis({ port: redisPort, username: 'cm-manager', password: (await readFile(manager.paths.managerPassword, 'utf8')).trim() });
    await admin.ping();
    const before = await api.call('status', {});
    const refusedAlarm = (status) => (status.alarms ?? []).find((alarm) => alarm.kind === 'connections-refused') ?? null;
    let heldMax = 0;
    const per = Math.ceil(flood / processes);
    for (let index = 0; index < processes; index++) {
      const count = Math.min(per, flood - index * per);
      const child = fork(fileURLToPath(import.meta.url), ['--child', String(redisPort), '--count', String(count), '--offset', String(index * 50_000)]);
      child.last = { held: 0, opened: 0 };
      child.on('message', (message) => {
        child.last = message;
        heldMax = Math.max(
          heldMax,
          children.reduce((sum, item) => sum + item.last.held, 0),
        );
      });
      children.push(child);
    }
    // The flood is on once Redis refuses connections (the old service has no alarm: its Redis's refusals are read instead).
    const redisInfo = async () => {
      const text = await admin.info();
      return (name) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(text)?.[1] ?? NaN);
    };
    const started = Date.now();
    for (;;) {
      const info = await redisInfo().catch(() => undefined);
      if (info && info('rejected_connections') > 0) break;
      if (Date.now() - started > 60_000) throw new Error('bench: Redis never refused a connection; is the flood smaller than maxclients?');
      await sleep(200);
    }
    await sleep(3_000);
    const during = await redisInfo();
    const credentials = await api.call('boards.enroll', { name: 'flood-probe' });
    await interpreter.start();
    board = new ReferenceBoard({ credentials, fs: new MemoryFs(), interpreter, host: '127.0.0.1', bootDelayMs: 0 });
    const boardStart = Date.now();
    board.start();
    let boardOnlineMs = null;
    while (Date.now() - boardStart < timeoutMs) {
      if ((await api.call('boards.get', { board: 'flood-probe' })).online) {
        boardOnlineMs = Date.now() - boardStart;
        break;
      }
      await sleep(100);
    }
    const after = await api.call('status', {});
    const info = await redisInfo();
    console.log(
      JSON.stringify({
        flood,
        flood_held_max: heldMax,
        max_clients: Number((await admin.config('GET', 'maxclients'))[1]),
        board_online_ms: boardOnlineMs,
        refused: info('rejected_connections'),
        alarm: refusedAlarm(after),
        redis_used_mb_before: Math.round(before.redis.memoryBytes / 1e5) / 10,
        redis_used_mb: Math.round(during('used_memory') / 1e5) / 10,
        manager_rss_mb: Math.round(process.memoryUsage().rss / 1e5) / 10,
      }),
    );
  } finally {
    for (const child of children) child.kill();
    admin?.disconnect();
    await board?.stop();
    await interpreter.close();
    await manager.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/**
 * The MicroPython board lab: simulated ESP8266 boards (real MicroPython, 36 KB heap) that
 * run a stand-in firmware written by the test into a temp flash folder. The stand-in's
 * start() connects to a TCP "controller" in the test and its step(wait) obeys one line
 * command at a time, which exercises the real socket bridge, the flash mapping, resets
 * and the heap budget end to end. Socket details are checked with run() on idle boards
 * against an echo server and a real redis-server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MicroPythonBoard, type BoardResetReason, type MicroPythonBoardOptions } from '../../electron/manager/virtual/micropython-board.js';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/lab.js';

const STAND_IN_FIRMWARE = `
import socket, json, os, machine

class Client:
    def __init__(self, cfg, boots):
        self.cfg, self.boots, self.s, self.keep = cfg, boots, None, None

    def step(self, wait):
        if self.s is None:
            s = socket.socket()
            s.settimeout(5)
            s.connect(socket.getaddrinfo(self.cfg['host'], self.cfg['port'])[0][-1])
            s.write(b'hello %d\\n' % self.boots)
            self.s = s
            return 0
        self.s.settimeout(wait / 1000)
        try:
            line = self.s.readline()
        except OSError as e:
            if e.args[0] in (11, 110):
                return 0
            raise
        if not line:
            self.s.close()
            self.s = None
            return 100
        self.s.settimeout(5)
        w = line.decode().split()
        if w[0] == 'echo':
            self.s.write(line[5:])
            return 0
        if w[0] == 'write':
            with open(w[1], 'w') as f:
                f.write(w[2])
        elif w[0] == 'delete':
            os.remove(w[1])
        elif w[0] == 'rename':
            os.rename(w[1], w[2])
        elif w[0] == 'alloc':
            self.keep = bytearray(int(w[1]))
        elif w[0] == 'reset':
            machine.reset()
        self.s.write(b'ok\\n')
        return 0

def start():
    with open('cm_config.json') as f:
        cfg = json.load(f)
    try:
        with open('boots.txt') as f:
            boots = int(f.read())
    except OSError:
        boots = 0
    with open('boots.txt', 'w') as f:
        f.write(str(boots + 1))
    print('booted', boots + 1)
    return Client(cfg, boots + 1)
`;

/** One board connection as the controller sees it: line commands out, line answers in. */
class BoardLink {
  private buffer = '';
  private readonly lines: string[] = [];
  private waiters: Array<(line: string) => void> = [];
  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        const waiter = this.waiters.shift();
        if (waiter) waiter(line);
        else this.lines.push(line);
      }
    });
  }
  next(timeoutMs = 5000): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no line from the board')), timeoutMs);
      this.waiters.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  }
  command(text: string): Promise<string> {
    this.socket.write(`${text}\n`);
    return this.next();
  }
}

/** The TCP server the stand-in firmware connects to. */
class Controller {
  readonly server = net.createServer((socket) => this.accept(new BoardLink(socket)));
  private readonly links: BoardLink[] = [];
  private waiters: Array<(link: BoardLink) => void> = [];
  port = 0;
  async listen(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as net.AddressInfo).port;
  }
  private accept(link: BoardLink): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(link);
    else this.links.push(link);
  }
  /** The next board to connect, with its hello line. */
  async connection(timeoutMs = 5000): Promise<{ link: BoardLink; hello: string }> {
    const link =
      this.links.shift() ??
      (await new Promise<BoardLink>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no board connected')), timeoutMs);
        this.waiters.push((l) => {
          clearTimeout(timer);
          resolve(l);
        });
      }));
    return { link, hello: await link.next() };
  }
  async close(): Promise<void> {
    for (const link of this.links) link.socket.destroy();
    this.server.close();
  }
}

const tempDirs: string[] = [];
const boards: MicroPythonBoard[] = [];
const controller = new Controller();
let echoServer: net.Server;
let echoPort = 0;

async function makeBoard(files: Record<string, string>, options: Partial<MicroPythonBoardOptions> = {}) {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-mpboard-'));
  tempDirs.push(folder);
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(folder, name), text);
  const console: string[] = [];
  const board = new MicroPythonBoard({ folder, wifi: { ssid: 'lab-ap', password: 'secret' }, firmwareModule: 'cm_boot', timing: 'fast', ...options });
  board.on('stdout', (text) => console.push(text));
  board.on('stderr', (text) => console.push(text));
  boards.push(board);
  return { board, folder, console };
}

function firmwareFiles(): Record<string, string> {
  return {
    'cm_boot.py': STAND_IN_FIRMWARE,
    'main.py': 'import cm_boot\ncm_boot.run()\n',
    'cm_config.json': JSON.stringify({ host: '127.0.0.1', port: controller.port }),
  };
}

beforeAll(async () => {
  await controller.listen();
  echoServer = net.createServer((socket) => socket.pipe(socket));
  echoServer.listen(0, '127.0.0.1');
  await once(echoServer, 'listening');
  echoPort = (echoServer.address() as net.AddressInfo).port;
});

afterEach(async () => {
  await Promise.all(boards.splice(0).map((board) => board.powerOff()));
});

afterAll(async () => {
  await controller.close();
  echoServer.close();
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('MicroPython board lab', () => {
  it('boots the firmware, which answers commands over real TCP, step by step', async () => {
    const { board, console } = await makeBoard(firmwareFiles());
    await board.start();
    const { link, hello } = await controller.connection();
    expect(hello).toBe('hello 1');
    expect(await link.command('echo ping')).toBe('ping');
    // Commands one after another (their latency is bench:firmware's rtt, not a test's).
    for (let i = 0; i < 30; i++) expect(await link.command(`echo ${i}`)).toBe(String(i));
    expect(console.join('')).toContain('booted 1');
    expect(board.running).toBe(true);
  });

  it("writes the firmware's files to the host folder; deletions and renames follow", async () => {
    const { board, folder } = await makeBoard(firmwareFiles());
    await board.start();
    const { link } = await controller.connection();
    expect(await link.command('write a.txt hello')).toBe('ok');
    expect(await readFile(path.join(folder, 'a.txt'), 'utf8')).toBe('hello');
    expect(await link.command('rename a.txt b.txt')).toBe('ok');
    expect(existsSync(path.join(folder, 'a.txt'))).toBe(false);
    expect(await readFile(path.join(folder, 'b.txt'), 'utf8')).toBe('hello');
    expect(await link.command('delete b.txt')).toBe('ok');
    expect(existsSync(path.join(folder, 'b.txt'))).toBe(false);
    expect(await readFile(path.join(folder, 'boots.txt'), 'utf8')).toBe('1');
  });

  it('machine.reset() reboots from the same flash: start() runs again, files kept', async () => {
    const { board, folder } = await makeBoard(firmwareFiles());
    const resets: BoardResetReason[] = [];
    board.on('reset', (reason) => resets.push(reason));
    await board.start();
    const first = await controller.connection();
    expect(await first.link.command('write kept.txt still-here')).toBe('ok');
    first.link.socket.write('reset\n');
    const second = await controller.connection();
    expect(second.hello).toBe('hello 2');
    expect(resets).toEqual(['machine.reset']);
    expect(board.resets).toBe(1);
    expect(await readFile(path.join(folder, 'boots.txt'), 'utf8')).toBe('2');
    expect(await readFile(path.join(folder, 'kept.txt'), 'utf8')).toBe('still-here');
    expect((await board.run('import machine\nprint(machine.reset_cause() == machine.SOFT_RESET)')).stdout).toBe('True\n');
    await board.reset();
    expect((await controller.connection()).hello).toBe('hello 3');
    expect(resets).toEqual(['machine.reset', 'button']);
  });

  it('without the firmware module, runs boot.py then main.py as is (files written back while it sleeps)', async () => {
    const { board, folder, console } = await makeBoard({
      'boot.py': 'print("boot.py")\n',
      'main.py': 'import time\nfor i in range(3):\n    open("log.txt", "a").write("%d\\n" % i)\n    time.sleep_ms(150)\nprint("main done")\n',
    });
    const exits: string[] = [];
    board.on('exit', (info) => exits.push(info.reason));
    await board.start();
    await waitFor(() => existsSync(path.join(folder, 'log.txt')), 20_000, 'log.txt while main.py sleeps');
    expect(exits).toEqual([]); // main.py is still running
    await waitFor(() => exits.length > 0, 20_000, 'main.py to end');
    expect(exits).toEqual(['program-ended']);
    expect(console.join('')).toBe('boot.py\nmain done\n');
    expect(await readFile(path.join(folder, 'log.txt'), 'utf8')).toBe('0\n1\n2\n');
  });

  it('runs code between steps and reports the heap against the 36 KB budget', async () => {
    const { board } = await makeBoard({});
    await board.start();
    expect(await board.run('print(1+1)')).toEqual({ stdout: '2\n', stderr: '' });
    const failed = await board.run('x = 1/0');
    expect(failed.error).toBe('ZeroDivisionError: divide by zero');
    expect(failed.stderr).not.toContain('.cmlab');
    const heap = await board.heap();
    expect(heap.total).toBeGreaterThan(35 * 1024);
    expect(heap.total).toBeLessThanOrEqual(36 * 1024);
    expect(heap.used).toBeGreaterThan(0);
    expect(heap.used).toBeLessThan(4 * 1024);
    expect(heap.free).toBe(heap.total - heap.used);
    expect((await board.run('import os\nprint(os.listdir("/"))')).stdout).toBe('[]\n');
  });

  it('raises MemoryError beyond the heap budget; uncaught in a step it resets the board', async () => {
    const { board } = await makeBoard(firmwareFiles());
    const events: string[] = [];
    board.on('outOfMemory', () => events.push('outOfMemory'));
    board.on('reset', (reason) => events.push(reason));
    await board.start();
    const caught = await board.run('try:\n    b = bytearray(60000)\nexcept MemoryError:\n    print("MemoryError")');
    expect(caught.stdout).toBe('MemoryError\n');
    const { link } = await controller.connection();
    expect(await link.command('alloc 20000')).toBe('ok'); // fits
    link.socket.write('alloc 60000\n');
    const after = await controller.connection();
    expect(after.hello).toBe('hello 2');
    expect(events).toEqual(['outOfMemory', 'out-of-memory']);
  });

  it("collects garbage only between steps: a step's garbage must fit, unless heapLimit is live-check", async () => {
    const churn = 'for i in range(1000):\n    x = bytearray(100)\nprint("done")';
    const strict = await makeBoard({});
    await strict.board.start();
    expect((await strict.board.run(churn)).error).toMatch(/^MemoryError/);
    expect((await strict.board.run(churn.replace('1000', '100'))).stdout).toBe('done\n');
    expect((await strict.board.heap()).peakUsed).toBeGreaterThan(10_000);

    const live = await makeBoard(firmwareFiles(), { heapLimit: 'live-check' });
    const events: string[] = [];
    live.board.on('outOfMemory', () => events.push('outOfMemory'));
    live.board.on('reset', (reason) => events.push(reason));
    await live.board.start();
    expect((await live.board.run(churn)).stdout).toBe('done\n');
    const { link } = await controller.connection();
    link.socket.write('alloc 60000\n');
    expect((await controller.connection()).hello).toBe('hello 2');
    expect(events).toEqual(['outOfMemory', 'out-of-memory']);
  });

  it('socket: echo round trip, 100 KB in 1 KB reads, timeouts, EAGAIN, ECONNREFUSED', async () => {
    const { board } = await makeBoard({});
    await board.start();
    const closedPort = await freePort();
    const result = await board.run(`
import socket, time
print(socket.getaddrinfo('localhost', ${echoPort}))
s = socket.socket()
s.connect(socket.getaddrinfo('127.0.0.1', ${echoPort})[0][-1])
print(s.send(b'hi\\n'), s.readline())
buf = bytearray(1024)
for i in range(1024):
    buf[i] = i & 255
t = time.ticks_ms()
for i in range(100):
    s.write(buf)
got = 0
ok = True
while got < 102400:
    n = s.readinto(buf)
    ok = ok and buf[0] == got & 255 and buf[n - 1] == (got + n - 1) & 255
    got += n
print('100KB', got, ok, time.ticks_diff(time.ticks_ms(), t))
s.settimeout(0.3)
t = time.ticks_ms()
try:
    s.recv(10)
except OSError as e:
    print('timeout', e.args[0], time.ticks_diff(time.ticks_ms(), t))
s.setblocking(False)
try:
    s.recv(10)
except OSError as e:
    print('nonblocking', e.args[0], s.read(10))
s.close()
try:
    socket.socket().connect(('127.0.0.1', ${closedPort}))
except OSError as e:
    print('refused', e.args[0])
`);
    expect(result.error).toBeUndefined();
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe(`[(2, 1, 0, '', ('127.0.0.1', ${echoPort}))]`);
    expect(lines[1]).toBe("3 b'hi\\n'");
    const [, count, ok] = lines[2]!.split(' ');
    expect([count, ok]).toEqual(['102400', 'True']);
    const [, errno, waited] = lines[3]!.split(' ');
    expect(errno).toBe('110');
    expect(Number(waited)).toBeGreaterThanOrEqual(290);
    expect(lines[4]).toBe('nonblocking 11 None');
    expect(lines[5]).toBe('refused 111');
  });

  it('talks to a real redis-server: PING/PONG and a 100 KB value', async () => {
    const port = await freePort();
    const redis: ChildProcess = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    try {
      await waitFor(
        () =>
          new Promise<boolean>((resolve) => {
            const probe = net.connect(port, '127.0.0.1', () => {
              probe.destroy();
              resolve(true);
            });
            probe.on('error', () => resolve(false));
          }),
        5000,
        'redis-server',
      );
      const { board } = await makeBoard({});
      await board.start();
      const result = await board.run(`
import socket, time
s = socket.socket()
s.settimeout(5)
s.connect(socket.getaddrinfo('127.0.0.1', ${port})[0][-1])
s.write(b'*1\\r\\n$4\\r\\nPING\\r\\n')
print(s.readline())
buf = bytearray(1024)
for i in range(1024):
    buf[i] = i & 255
t = time.ticks_ms()
s.write(b'*3\\r\\n$3\\r\\nSET\\r\\n$1\\r\\nk\\r\\n$102400\\r\\n')
for i in range(100):
    s.write(buf)
s.write(b'\\r\\n')
print(s.readline())
s.write(b'*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n')
print(s.readline())
got = 0
ok = True
while got < 102400:
    n = s.readinto(buf, min(1024, 102400 - got))
    ok = ok and buf[0] == got & 255 and buf[n - 1] == (got + n - 1) & 255
    got += n
print(got, ok, s.read(2), time.ticks_diff(time.ticks_ms(), t))
s.close()
`);
      expect(result.error).toBeUndefined();
      const lines = result.stdout.split('\n');
      expect(lines.slice(0, 3)).toEqual(["b'+PONG\\r\\n'", "b'+OK\\r\\n'", "b'$102400\\r\\n'"]);
      const [count, ok, tail] = lines[3]!.split(' ');
      expect([count, ok, tail]).toEqual(['102400', 'True', "b'\\r\\n'"]);
    } finally {
      redis.kill();
    }
  });

  it('resets with reason crash when the interpreter traps', async () => {
    const { board } = await makeBoard({});
    const resets: BoardResetReason[] = [];
    board.on('reset', (reason) => resets.push(reason));
    await board.start();
    const result = await board.run('import uctypes\nuctypes.bytes_at(0x7ffffff0, 16)');
    expect(result.error).toBeDefined();
    await waitFor(() => resets.length > 0, 5000, 'reset');
    expect(resets).toEqual(['crash']);
    await waitFor(async () => (await board.run('print(3)')).stdout === '3\n', 5000, 'the board back');
  });

  it('resets a board whose step hangs (watchdog), with reason crash', async () => {
    const { board } = await makeBoard(
      {
        'cm_boot.py': 'class C:\n    def step(self, w):\n        while True:\n            pass\n\ndef start():\n    return C()\n',
      },
      { watchdogMs: 300 },
    );
    const resets: BoardResetReason[] = [];
    board.on('reset', (reason) => resets.push(reason));
    await board.start();
    await waitFor(() => resets.length > 0, 20_000, 'watchdog reset');
    expect(resets[0]).toBe('crash');
  });

  it('runs three boards at once in one process, each its own device', async () => {
    const three = await Promise.all([0, 1, 2].map(() => makeBoard(firmwareFiles())));
    await Promise.all(three.map(({ board }) => board.start()));
    const links = await Promise.all(three.map(() => controller.connection()));
    const answers = await Promise.all(links.map(({ link }, i) => link.command(`echo board-${i}`)));
    expect(answers).toEqual(['board-0', 'board-1', 'board-2']);
    const ids = await Promise.all(three.map(({ board }) => board.run('import machine\nprint(machine.unique_id().hex())')));
    expect(new Set(ids.map((r) => r.stdout)).size).toBe(3);
  });

  it('powerOff stops the interpreter and its connections, leaving nothing to keep the process alive', async () => {
    const before = resourceCounts();
    const { board } = await makeBoard(firmwareFiles());
    const exits: string[] = [];
    board.on('exit', (info) => exits.push(info.reason));
    await board.start();
    const { link } = await controller.connection();
    const closed = once(link.socket, 'close');
    await board.powerOff();
    await closed;
    expect(board.running).toBe(false);
    expect(exits).toEqual(['power-off']);
    await expect(board.heap()).rejects.toThrow(/off/);
    const after = resourceCounts();
    for (const kind of ['MessagePort', 'TCPSocketWrap', 'Timeout']) expect(after[kind] ?? 0).toBeLessThanOrEqual(before[kind] ?? 0);
  });
});

function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

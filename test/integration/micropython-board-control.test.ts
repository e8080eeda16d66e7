/**
 * The board lab's Ctrl-C and Ctrl-D (MicroPythonBoard.interrupt() and softReset()), which
 * the REPL simulator builds on: a KeyboardInterrupt lands in a stepping firmware, in a
 * blocking socket call, in a sleep, in run() code; a busy loop that never calls into the
 * lab is replaced; soft resets run boot.py always and the program only when asked. Also
 * run()'s REPL-like extras and the lab's C-like binascii.
 */
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MicroPythonBoard, type BoardExit, type BoardResetReason } from '../../electron/manager/virtual/micropython-board.js';
import { waitFor } from '../helpers/lab.js';

const boards: MicroPythonBoard[] = [];
const folders: string[] = [];

async function makeBoard(files: Record<string, string>) {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-mpctl-'));
  folders.push(folder);
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(folder, name), text);
  const board = new MicroPythonBoard({ folder, firmwareModule: 'fw' });
  const console: string[] = [];
  const exits: BoardExit[] = [];
  const resets: BoardResetReason[] = [];
  board.on('stdout', (text) => console.push(text));
  board.on('stderr', (text) => console.push(text));
  board.on('exit', (info) => exits.push(info));
  board.on('reset', (reason) => resets.push(reason));
  boards.push(board);
  return { board, folder, console, exits, resets };
}

const COUNTING_FIRMWARE = `
steps = 0
class Client:
    def step(self, wait):
        global steps
        steps += 1
        if steps < 0:
            return 0
        return 5
def start():
    return Client()
`;

afterEach(async () => {
  await Promise.all(boards.splice(0).map((board) => board.powerOff()));
});

afterAll(async () => {
  await Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true })));
});

describe('MicroPython board lab: Ctrl-C and Ctrl-D', () => {
  it('interrupt() stops a stepping firmware with a KeyboardInterrupt; the board stays at its REPL', async () => {
    const { board, console, exits } = await makeBoard({ 'fw.py': COUNTING_FIRMWARE });
    await board.start();
    expect(board.mode).toBe('firmware');
    await waitFor(async () => Number((await board.run('import fw\nprint(fw.steps)')).stdout) > 3, 20_000, 'a few steps');
    await board.interrupt();
    expect(board.mode).toBe('idle');
    expect(exits).toEqual([{ reason: 'interrupted', during: 'step()' }]);
    expect(console.join('')).toMatch(/^Traceback \(most recent call last\):\n {2}File "fw.py", line \d+, in step\nKeyboardInterrupt: \n$/);
    const steps = Number((await board.run('import fw\nprint(fw.steps)')).stdout);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(Number((await board.run('print(fw.steps)')).stdout)).toBe(steps);
  });

  it('Ctrl-C lands in a blocking socket call, as KeyboardInterrupt', async () => {
    const server = net.createServer(() => undefined); // accepts, never answers
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as net.AddressInfo).port;
    try {
      const { board, console, exits } = await makeBoard({
        'fw.py': `import socket\nclass C:\n    def step(self, wait):\n        s = socket.socket()\n        s.connect(('127.0.0.1', ${port}))\n        s.recv(10)\n        return 0\ndef start():\n    return C()\n`,
      });
      await board.start();
      await new Promise((resolve) => setTimeout(resolve, 200)); // blocked in recv() by now
      await board.interrupt();
      expect(exits[0]?.reason).toBe('interrupted');
      expect(console.join('')).toContain('KeyboardInterrupt');
      // The board's network still works afterwards.
      expect((await board.run(`import socket\ns = socket.socket()\ns.connect(('127.0.0.1', ${port}))\nprint('ok')`)).stdout).toBe('ok\n');
    } finally {
      server.close();
    }
  });

  it('Ctrl-C ends a sleep in main.py at once, and interrupts run() code', async () => {
    const { board, console, exits } = await makeBoard({ 'main.py': 'import time\nprint("sleeping")\nwhile True:\n    time.sleep(10)\n' });
    await board.start();
    // In the sleep (not still importing time, where Ctrl-C would stop another line).
    await waitFor(() => console.join('').includes('sleeping\n'), 10_000, 'main.py to sleep');
    await board.interrupt();
    expect(exits).toEqual([{ reason: 'interrupted', during: 'main.py' }]);
    expect(console.join('')).toBe('sleeping\nTraceback (most recent call last):\n  File "main.py", line 4, in <module>\nKeyboardInterrupt: \n');
    // run() output is not streamed, so there is no event to wait for: on a loaded machine the
    // Ctrl-C may land before the print; then the run ended early, and it is tried again.
    let result: Awaited<ReturnType<typeof board.run>> | undefined;
    for (let attempt = 0; attempt < 5 && result?.stdout !== 'before\n'; attempt++) {
      const running = board.run('import time\nprint("before")\nwhile True:\n    time.sleep_ms(20)\n');
      await new Promise((resolve) => setTimeout(resolve, 200 * (attempt + 1)));
      await board.interrupt();
      result = await running;
    }
    expect(result).toMatchObject({ stdout: 'before\n', interrupted: true, error: 'KeyboardInterrupt: ' });
    expect(result!.traceback).toContain('File "<stdin>", line 4, in <module>');
  });

  it('a busy loop that never calls into the lab is replaced after the grace period (soft reset, no main.py)', async () => {
    const { board, folder, console, exits, resets } = await makeBoard({
      'boot.py': 'open("boots", "a").write("b")\n',
      'main.py': 'print("looping")\nwhile True:\n    pass\n',
    });
    await board.start();
    // In the loop (not still starting main.py, where Ctrl-C would reach it).
    await waitFor(() => console.join('').includes('looping'), 10_000, 'main.py to loop');
    await board.interrupt();
    expect(exits).toEqual([{ reason: 'interrupted' }]);
    expect(resets).toEqual(['soft-reset']);
    expect(console.join('')).toContain('KeyboardInterrupt: \n');
    expect(board.mode).toBe('idle');
    expect(await readFile(path.join(folder, 'boots'), 'utf8')).toBe('bb');
  }, 15_000);

  it('softReset() runs boot.py always, the program only with runMain, and keeps reset_cause', async () => {
    const { board, folder, resets } = await makeBoard({
      'boot.py': 'open("log", "a").write("boot ")\n',
      'main.py': 'open("log", "a").write("main ")\n',
    });
    await board.start();
    await waitFor(() => board.mode === 'idle', 20_000, 'main.py to end');
    await board.run('x = 1');
    await board.softReset({ runMain: false });
    expect(board.mode).toBe('idle');
    expect((await board.run('print("x" in globals())')).stdout).toBe('False\n');
    expect(await readFile(path.join(folder, 'log'), 'utf8')).toBe('boot main boot ');
    await board.softReset({ runMain: true });
    await waitFor(() => board.mode === 'idle', 20_000, 'main.py to end');
    expect(await readFile(path.join(folder, 'log'), 'utf8')).toBe('boot main boot boot main ');
    expect(resets).toEqual(['soft-reset', 'soft-reset']);
    expect((await board.run('import machine\nprint(machine.reset_cause() == machine.PWRON_RESET)')).stdout).toBe('True\n');
  });

  it('run(): single mode prints expression values; console keeps stdout and stderr in order', async () => {
    const { board } = await makeBoard({});
    await board.start();
    expect(await board.run('6 * 7', { single: true })).toEqual({ stdout: '42\n', stderr: '' });
    const mixed = await board.run('import sys\nprint("a")\nprint("b", file=sys.stderr)\nprint("c")\nraise OSError(2)');
    expect(mixed.console).toBe('a\nb\nc\n');
    expect(mixed.traceback).toBe('Traceback (most recent call last):\n  File "<stdin>", line 5, in <module>\nOSError: [Errno 2] ENOENT\n');
    expect((await board.run('import sys\nsys.exit()')).systemExit).toBe(true);
  });

  it('binascii works in place like the C module: results right, garbage no bigger than the result', async () => {
    const { board } = await makeBoard({});
    await board.start();
    const result = await board.run(`
import binascii, gc
print(binascii.a2b_base64(b'aGVsbG8=\\n'), binascii.a2b_base64('aGk='), binascii.b2a_base64(b'hello'), binascii.b2a_base64(b'hi', newline=False))
print(binascii.hexlify(b'\\x01\\xab'), binascii.hexlify(b'\\x01\\xab', ':'), binascii.unhexlify('01AB'), hex(binascii.crc32(b'hello')), hex(binascii.crc32(b'lo', binascii.crc32(b'hel'))))
for bad in ('aGVsbG8', b'abc'):
    try:
        binascii.a2b_base64(bad) if bad != b'abc' else binascii.unhexlify(bad)
    except ValueError as e:
        print('ValueError', e)
d = b'QUJD' * 1024
gc.collect()
`);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(
      [
        "b'hello' b'hi' b'aGVsbG8=\\n' b'aGk='",
        "b'01ab' b'01:ab' b'\\x01\\xab' 0x3610a686 0x3610a686",
        'ValueError incorrect padding',
        'ValueError odd-length string',
        '',
      ].join('\n'),
    );
    const garbage = await board.run('a = gc.mem_alloc()\nx = binascii.a2b_base64(d)\nprint(len(x), gc.mem_alloc() - a)');
    const [length, allocated] = garbage.stdout.trim().split(' ').map(Number);
    expect(length).toBe(3072);
    expect(allocated).toBeLessThan(3072 + 256);
  });
});

/**
 * os.dupterm in the board lab (lab-python/_cm_dupterm.py): the path a real ESP8266 takes
 * to capture a command's output. The client (firmware/cm.py) puts itself in dupterm slot
 * 0 while a command runs; these tests drive it end to end through the manager's API and
 * check MicroPython's semantics: the previous object comes back, print(),
 * sys.stdout.write() and tracebacks reach every slot in order, a failing stream is
 * deactivated with MicroPython's message, the buffer a write() gets is borrowed, and
 * input is read from the slots after os.dupterm_notify() (Ctrl-C stops the program).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandView } from '../../electron/manager/api/contract.js';
import { MicroPythonBoard, type BoardExit } from '../../electron/manager/virtual/micropython-board.js';
import { LAB_WIFI, provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import { startManager, waitFor } from '../helpers/lab.js';

type Service = Awaited<ReturnType<typeof startManager>>;

/** A Python stream that records what it is given (a copy: the buffer is borrowed). */
const RECORDER = `
import io, os, sys
class Rec(io.IOBase):
    def __init__(self):
        self.got = bytearray()
    def write(self, b):
        self.got += b
        return len(b)
    def readinto(self, b):
        return None
`;

const text = (view: CommandView, stream: 'stdout' | 'stderr' = 'stdout') =>
  view.output
    .filter((chunk) => chunk.stream === stream)
    .map((chunk) => chunk.text)
    .join('');

describe('os.dupterm in the MicroPython board lab', () => {
  let service: Service;
  let board: MicroPythonBoard;
  const name = 'dupterm-1';
  /** What the board's USB console shows (UART(0), dupterm slot 1). */
  let consoleText = '';

  async function exec(code: string): Promise<CommandView> {
    const { commands } = await service.api.call('commands.send', { boards: name, request: { op: 'exec', code } });
    return (await service.api.call('commands.wait', { cids: [commands[0]!.cid], timeoutMs: 20_000 }))[0]!;
  }

  beforeAll(async () => {
    service = await startManager({ heartbeatS: 1 });
    const [credentials] = await service.api.call('boards.enrollMany', { names: [name], rotate: true });
    const folder = path.join(service.dataDir, 'boards', name);
    await provisionFolder(folder, credentials!, { host: '127.0.0.1', port: service.redisPort });
    board = new MicroPythonBoard({ folder, wifi: LAB_WIFI, label: name });
    board.on('stdout', (chunk) => {
      consoleText += chunk;
    });
    await board.start();
    await waitFor(async () => (await service.api.call('boards.get', { board: name })).online, 20_000, `${name} online`);
  }, 60_000);

  afterAll(async () => {
    await board?.powerOff();
    await service?.close();
  });

  it('has os.dupterm (os and uos alike), which returns the previous object of the slot', async () => {
    const done = await exec(`${RECORDER}
import uos
print(hasattr(os, 'dupterm'), uos is os)
a = Rec()
p0 = os.dupterm(a, 0)       # slot 0 holds the client's own capture stream now
back = os.dupterm(p0, 0)    # put it back: the previous object comes back
u = os.dupterm(None, 1)     # slot 1 holds UART(0), the console, as on an ESP8266
again = os.dupterm(u, 1)
print(type(p0).__name__, back is a, u, again)
for bad in ((a, 2), (object(),)):
    try:
        os.dupterm(*bad)
    except Exception as e:
        print(type(e).__name__, e)
`);
    expect(done.status).toBe('ok');
    expect(text(done)).toBe(
      'True True\n' +
        'Client True UART(0, baudrate=115200, bits=8, parity=None, stop=1, rxbuf=15, timeout=0, timeout_char=0) None\n' +
        'ValueError invalid dupterm index\n' +
        'OSError stream operation not supported\n',
    );
  });

  it("streams a command's print(), sys.stdout.write() and tracebacks through dupterm, in order", async () => {
    const done = await exec(`import sys
print('print', 1)
sys.stdout.write('write\\n')
try:
    1 / 0
except Exception as e:
    sys.print_exception(e)
print('to stderr', file=sys.stderr)
print('end')
raise KeyError('uncaught')
`);
    expect([done.status, done.error]).toEqual(['error', 'KeyError: uncaught']);
    // Everything the code printed reaches slot 0, stderr included (a board has one
    // console); only the uncaught exception's traceback is the command's stderr (§7.1).
    expect(text(done)).toBe(
      'print 1\nwrite\nTraceback (most recent call last):\n  File "<string>", line 5, in <module>\n' + 'ZeroDivisionError: divide by zero\nto stderr\nend\n',
    );
    const streams = done.output.map((chunk) => chunk.stream);
    expect(streams.lastIndexOf('stdout')).toBeLessThan(streams.indexOf('stderr'));
    expect(text(done, 'stderr')).toMatch(/^Traceback \(most recent call last\):\n[\s\S]*KeyError: uncaught\n$/);
    // The USB console (UART(0) in slot 1) showed the same output as it ran.
    await waitFor(() => consoleText.includes('write\nTraceback'), 10_000, 'console output');
    expect(consoleText).toContain('print 1\nwrite\n');
  });

  it('deactivates a stream whose write() raises, says so to the other outputs, and keeps running', async () => {
    const done = await exec(`import io, os
class Bad(io.IOBase):
    def write(self, b):
        raise ValueError('bad stream')
u = os.dupterm(Bad(), 1)
print('one')
print('slot 1:', os.dupterm(None, 1))
os.dupterm(u, 1)
print('two')
`);
    expect(done.status).toBe('ok');
    expect(text(done)).toBe(
      'onedupterm: Exception in write() method, deactivating: Traceback (most recent call last):\n' +
        '  File "<string>", line 4, in write\nValueError: bad stream\n\nslot 1: None\ntwo\n',
    );
    // A write() that prints recurses; the recursion ends, the stream is dropped.
    const loud = await exec(`import io, os
class Loud(io.IOBase):
    def write(self, b):
        print('loud')
        return len(b)
u = os.dupterm(Loud(), 1)
print('x')
print('slot 1:', os.dupterm(u, 1))
`);
    expect(loud.status).toBe('ok');
    expect(text(loud)).toContain('dupterm: Exception in write() method, deactivating: ');
    expect(text(loud)).toContain('RuntimeError: maximum recursion depth exceeded\n');
    expect(text(loud)).toMatch(/slot 1: None\n$/);
    const after = await exec('print("alive")');
    expect([after.status, text(after)]).toEqual(['ok', 'alive\n']);
    expect(board.resets).toBe(0);
    expect(board.mode).toBe('firmware');
  });

  it('gives the output to both slots', async () => {
    const done = await exec(`${RECORDER}
r = Rec()
u = os.dupterm(r, 1)
print('both')
sys.stdout.write('slots\\n')
os.dupterm(u, 1)
print(bytes(r.got))
`);
    expect(text(done)).toBe("both\nslots\nb'both\\nslots\\n'\n");
    // Two streams of the program's own (the REPL, between commands): slot 0 and slot 1.
    // While they hold both slots the console (UART(0)) is detached and shows nothing.
    const run = await board.run(`${RECORDER}
a, b = Rec(), Rec()
p0, p1 = os.dupterm(a, 0), os.dupterm(b, 1)
print('unseen on the console')
os.dupterm(p0, 0)
os.dupterm(p1, 1)
print(bytes(a.got), bytes(b.got), p0)
`);
    expect(run.error).toBeUndefined();
    expect(run.stdout).toBe("b'unseen on the console\\n' b'unseen on the console\\n' None\n");
  });

  it("gives the slots the REPL's own traceback of an uncaught exception", async () => {
    expect((await board.run(`${RECORDER}\nr = Rec()\nos.dupterm(r, 0)`)).error).toBeUndefined();
    const failed = await board.run("raise ValueError('from the REPL')");
    expect(failed.error).toBe('ValueError: from the REPL');
    const got = await board.run('print(bytes(os.dupterm(None, 0).got))');
    expect(got.stdout).toBe('b\'Traceback (most recent call last):\\n  File "<stdin>", line 1, in <module>\\nValueError: from the REPL\\n\'\n');
  });

  it('lends write() a buffer that is only valid during the call', async () => {
    const done = await exec(`import io, os
class Keep(io.IOBase):
    def __init__(self):
        self.kept = []
        self.copies = []
    def write(self, b):
        self.kept.append(b)        # wrong: the buffer is borrowed
        self.copies.append(bytes(b))
        return len(b)
k = Keep()
u = os.dupterm(k, 1)
print('borrowed')
os.dupterm(u, 1)
print(type(k.kept[0]).__name__, k.copies[0], bytes(k.kept[0]) == k.copies[0], bytes(k.kept[0]))
`);
    expect(text(done)).toBe("borrowed\nbytearray b'borrowed' False b'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00'\n");
  });

  it("treats write()'s return value as mp_stream_write does", async () => {
    // A short count: called again with the rest. None (EAGAIN): the rest is dropped.
    const run = await board.run(`import io, os, sys
class Part(io.IOBase):
    def __init__(self):
        self.got = []
    def write(self, b):
        self.got.append(bytes(b[:3]))
        return min(3, len(b))
class Again(io.IOBase):
    def __init__(self):
        self.calls = 0
    def write(self, b):
        self.calls += 1
part, again = Part(), Again()
p0, p1 = os.dupterm(part, 0), os.dupterm(again, 1)
sys.stdout.write('abcdefgh')
os.dupterm(p0, 0)
os.dupterm(p1, 1)
print(part.got, again.calls)
`);
    expect(run.stdout).toBe("[b'abc', b'def', b'gh'] 1\n");
    // A negative count is an error code: the stream is deactivated with that OSError.
    const done = await exec(`import io, os
class Neg(io.IOBase):
    def write(self, b):
        return -5
u = os.dupterm(Neg(), 1)
print('z')
print(os.dupterm(u, 1))
`);
    expect(text(done)).toMatch(/^zdupterm: Exception in write\(\) method, deactivating: Traceback \(most recent call last\):\nOSError: .*5.*\n\nNone\n$/);
  });

  it('reads input from a slot after os.dupterm_notify(), and deactivates a slot whose readinto() raises', async () => {
    const first = await exec(`import io, os
class In(io.IOBase):
    def __init__(self):
        self.d = b'hi'
    def write(self, b):
        return len(b)
    def readinto(self, b):
        if not self.d:
            raise OSError(5)
        b[0] = self.d[0]
        self.d = self.d[1:]
        return 1
inp = In()
console = os.dupterm(inp, 1)
os.dupterm_notify(inp)
`);
    expect(first.status).toBe('ok');
    // Served between two steps: the next command finds the bytes on stdin and the slot
    // emptied by the OSError its readinto() raised once the input ran out.
    const second = await exec(`import sys
print(sys.stdin.read(2), os.dupterm(None, 1))
os.dupterm(console, 1)
`);
    expect([second.status, text(second)]).toEqual(['ok', 'hi None\n']);
  });

  // Last: it stops the board's program.
  it('stops the program when Ctrl-C comes in through a slot, as on a board', async () => {
    const exited = new Promise<BoardExit>((resolve) => board.once('exit', resolve));
    const done = await exec(`import io, os
class CtrlC(io.IOBase):
    def write(self, b):
        return len(b)
    def readinto(self, b):
        b[0] = 3
        return 1
c = CtrlC()
os.dupterm(c, 1)
os.dupterm_notify(c)
`);
    expect(done.status).toBe('ok');
    expect(await exited).toEqual({ reason: 'interrupted', during: 'step()' });
    expect(board.mode).toBe('idle');
  });
});

import { afterAll, describe, expect, it } from 'vitest';
import { MicroPythonInterpreter, type ExecOptions, type ExecResult, type OutputStream } from '../../electron/manager/virtual/micropython-interpreter.js';

interface Captured {
  result: ExecResult;
  stdout: string;
  stderr: string;
  chunks: { stream: OutputStream; text: string; at: number }[];
  resolvedAt: number;
}

const logs: string[] = [];
const interpreter = new MicroPythonInterpreter({ onLog: (level, message) => logs.push(`${level}: ${message}`) });

async function run(context: string, code: string, options: Omit<ExecOptions, 'onOutput'> = {}): Promise<Captured> {
  const chunks: Captured['chunks'] = [];
  const decoder = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  const result = await interpreter.exec(context, code, {
    ...options,
    onOutput: (stream, data) => chunks.push({ stream, text: decoder[stream].decode(data, { stream: true }), at: performance.now() }),
  });
  const text = (stream: OutputStream) =>
    chunks
      .filter((c) => c.stream === stream)
      .map((c) => c.text)
      .join('');
  return { result, stdout: text('stdout'), stderr: text('stderr'), chunks, resolvedAt: performance.now() };
}

afterAll(async () => {
  await interpreter.close();
});

describe('MicroPythonInterpreter', () => {
  it('runs code and returns its stdout', async () => {
    const out = await run('basic', 'print(6*7)');
    expect(out.result).toEqual({ status: 'ok' });
    expect(out.stdout).toBe('42\n');
    expect(out.stderr).toBe('');
  });

  it('reports an exception as a traceback of the user code only', async () => {
    const out = await run('errors', 'def f():\n    raise ValueError("bad value")\nf()');
    expect(out.result).toEqual({ status: 'error', error: 'ValueError: bad value' });
    expect(out.stdout).toBe('');
    expect(out.stderr).toBe(
      'Traceback (most recent call last):\n' + '  File "<string>", line 3, in <module>\n' + '  File "<string>", line 2, in f\n' + 'ValueError: bad value\n',
    );
    expect(out.stderr).not.toContain('<cloudmanager>');
  });

  it('reports a syntax error', async () => {
    const out = await run('errors', 'x = (');
    expect(out.result.status).toBe('error');
    expect(out.result.error).toBe('SyntaxError: invalid syntax');
  });

  it('keeps globals per context, separate between contexts', async () => {
    expect((await run('ctx-a', 'x = 5')).result.status).toBe('ok');
    expect((await run('ctx-a', 'print(x + 1)')).stdout).toBe('6\n');
    const other = await run('ctx-b', 'print(x)');
    expect(other.result).toEqual({ status: 'error', error: "NameError: name 'x' isn't defined" });
    expect(other.stderr).toContain('File "<string>", line 1, in <module>');
  });

  it('runs user code as __main__', async () => {
    expect((await run('main-name', 'print(__name__)')).stdout).toBe('__main__\n');
  });

  it('resetContext clears the globals of one context only', async () => {
    await run('reset-a', 'y = 1');
    await run('reset-b', 'y = 2');
    await interpreter.resetContext('reset-a');
    expect((await run('reset-a', 'print(y)')).result.error).toBe("NameError: name 'y' isn't defined");
    expect((await run('reset-b', 'print(y)')).stdout).toBe('2\n');
  });

  it('reports the interpreter version', async () => {
    const info = await interpreter.info();
    expect(info).toEqual({ version: '1.27.0', implementation: 'micropython', mpyAbi: 774 });
  });

  it('streams output while the code runs', async () => {
    const out = await run('stream', 'import time\nfor i in range(5):\n    print(i)\n    time.sleep(0.05)');
    expect(out.result.status).toBe('ok');
    expect(out.stdout).toBe('0\n1\n2\n3\n4\n');
    expect(out.chunks.length).toBeGreaterThanOrEqual(5);
    // The first line arrives while the code still runs: stopped right then, it never gets
    // far (output kept until the end would have let all 100 sleeps run).
    const stop = new AbortController();
    const lines: string[] = [];
    const decoder = new TextDecoder();
    const stopped = await interpreter.exec('stream', 'import time\nfor i in range(100):\n    print(i)\n    time.sleep(0.05)', {
      signal: stop.signal,
      onOutput: (_stream, data) => {
        lines.push(decoder.decode(data, { stream: true }));
        stop.abort();
      },
    });
    expect(stopped.status).toBe('stopped');
    expect(lines[0]).toBe('0\n');
    expect(lines.join('')).not.toContain('99\n');
  });

  it('stops a printing infinite loop with a KeyboardInterrupt and keeps the context', async () => {
    await run('loud', 'kept = "still here"');
    const start = performance.now();
    const out = await run('loud', 'i = 0\nwhile True:\n    print(i)\n    i += 1', { timeoutMs: 200 });
    const elapsed = performance.now() - start;
    expect(out.result).toEqual({ status: 'timeout', error: 'KeyboardInterrupt: ' });
    expect(out.stdout.startsWith('0\n1\n2\n')).toBe(true);
    expect(out.stderr).toContain('KeyboardInterrupt');
    expect(elapsed).toBeGreaterThanOrEqual(190);
    // Same interpreter (no restart): globals survived, the next exec is not interrupted.
    const after = await run('loud', 'for n in range(3): pass\nprint(kept, i > 0)');
    expect(after.result).toEqual({ status: 'ok' });
    expect(after.stdout).toBe('still here True\n');
  });

  it('stops a silent infinite loop by restarting the worker; queued execs still run', async () => {
    await run('silent', 'z = 1');
    const start = performance.now();
    const looping = run('silent', 'while True:\n    pass', { timeoutMs: 100 });
    const queued = run('other', 'print("queued")');
    const out = await looping;
    const elapsed = performance.now() - start;
    expect(out.result.status).toBe('timeout');
    expect(elapsed).toBeGreaterThanOrEqual(1000); // timeout + 1 s grace
    expect((await queued).stdout).toBe('queued\n');
    // The restart lost every context's globals, and the interpreter works.
    const after = await run('silent', 'print(z)');
    expect(after.result.error).toBe("NameError: name 'z' isn't defined");
    expect((await run('silent', 'print(6*7)')).stdout).toBe('42\n');
    expect(logs.some((line) => line.startsWith('warn:') && line.includes('restarting'))).toBe(true);
  });

  it('replaces a worker that dies; the exec it ran reports interpreter-restarted', async () => {
    // User code can reach the worker's JS globals through the port's `js` module.
    const out = await run('crash', 'import js\njs.process.exit(3)');
    expect(out.result.status).toBe('interpreter-restarted');
    expect(out.result.error).toContain('code 3');
    expect((await run('crash', 'print("back")')).stdout).toBe('back\n');
  });

  it('runs 1,000 concurrent execs over 100 contexts', async () => {
    const start = performance.now();
    const outputs = Array.from({ length: 1000 }, (_, i) => run(`many-${i % 100}`, 'print(1)'));
    const results = await Promise.all(outputs);
    const elapsed = performance.now() - start;
    console.log(`1,000 execs over 100 contexts: ${elapsed.toFixed(0)} ms`);
    for (const out of results) {
      expect(out.result).toEqual({ status: 'ok' });
      expect(out.stdout).toBe('1\n');
    }
  });

  it('closing an unused interpreter resolves, and exec afterwards rejects', async () => {
    const spare = new MicroPythonInterpreter();
    await spare.start();
    await spare.close();
    await expect(spare.exec('x', 'print(1)')).rejects.toMatchObject({ name: 'MicroPythonClosedError' });
  });

  it('shared() returns one instance per process', async () => {
    const shared = MicroPythonInterpreter.shared();
    expect(MicroPythonInterpreter.shared()).toBe(shared);
    await shared.close();
    expect(MicroPythonInterpreter.shared()).not.toBe(shared);
  });
});

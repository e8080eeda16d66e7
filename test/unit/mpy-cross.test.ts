import { loadMicroPython, type MicroPython } from '@micropython/micropython-webassembly-pyscript';
import { beforeAll, describe, expect, it } from 'vitest';
import { canLoadMpyV6, compileToMpy, MpyCompileError, mpyAbiOf } from '../../electron/manager/packages/mpy-cross.js';

let mp: MicroPython;
const stdout: string[] = [];

/** Runs code on the interpreter and returns what it printed. */
function run(code: string): string {
  stdout.length = 0;
  mp.runPython(code);
  return stdout.join('\n');
}

/** Puts a compiled module where `import` finds it (only the .mpy: a .py would win). */
function install(moduleName: string, mpy: Buffer): void {
  mp.FS.writeFile(`/lib/${moduleName}.mpy`, mpy);
}

beforeAll(async () => {
  mp = await loadMicroPython({ stdout: (line) => stdout.push(String(line)), heapsize: 64 * 1024 });
  mp.FS.mkdir('/lib'); // on sys.path, but the port does not create it
});

describe('compileToMpy', () => {
  it('produces bytecode that MicroPython 1.27 imports and runs', async () => {
    const source = 'def scale(values, k):\n    return [v * k for v in values]\n\nGREETING = "héllo"\n';
    const mpy = await compileToMpy('cm_scale.py', source);
    // 'M', ABI 6, no native arch, 31-bit small ints (what an ESP8266 supports).
    expect([...mpy.subarray(0, 4)]).toEqual([0x4d, 6, 0, 31]);
    install('cm_scale', mpy);
    expect(run('import cm_scale\nprint(cm_scale.scale([1, 2, 3], 7), cm_scale.GREETING)')).toBe('[7, 14, 21] héllo');
  });

  it('keeps the file name and line numbers for tracebacks on the board', async () => {
    const source = 'def ok():\n    return 1\n\ndef fail():\n    raise ValueError("boom")\n';
    install('cm_trace', await compileToMpy('cm_trace.py', source));
    const out = run('import cm_trace, sys\ntry:\n    cm_trace.fail()\nexcept ValueError as e:\n    sys.print_exception(e, sys.stdout)');
    expect(out).toContain('File "cm_trace.py", line 5, in fail');
  });

  it('drops assert statements only when asked to optimize', async () => {
    const source = 'def check():\n    assert False, "kept"\n    return "asserts removed"\n';
    install('cm_opt0', await compileToMpy('cm_opt0.py', source));
    install('cm_opt1', await compileToMpy('cm_opt1.py', source, { optimize: 1 }));
    expect(run('import cm_opt0\ntry:\n    cm_opt0.check()\nexcept AssertionError as e:\n    print("assert:", e)')).toBe('assert: kept');
    expect(run('import cm_opt1\nprint(cm_opt1.check())')).toBe('asserts removed');
  });

  it('reports a syntax error as MpyCompileError with the line', async () => {
    const source = 'def f():\n    return 1\nx = (1,\ny = 2 +\n';
    const error = await compileToMpy('cm_broken.py', source).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MpyCompileError);
    const compileError = error as MpyCompileError;
    expect(compileError.name).toBe('MpyCompileError');
    expect(compileError.fileName).toBe('cm_broken.py');
    expect(compileError.line).toBe(4);
    expect(compileError.compilerMessage).toContain('File "cm_broken.py", line 4');
    expect(compileError.compilerMessage).toContain('SyntaxError: invalid syntax');
    expect(compileError.message).toContain('cm_broken.py (line 4): SyntaxError: invalid syntax');
  });

  it('refuses syntax newer than MicroPython 1.19 (match, f-string !r) although 1.27 boards accept it', async () => {
    await expect(compileToMpy('m.py', 'match 1:\n    case 1:\n        pass\n')).rejects.toBeInstanceOf(MpyCompileError);
    await expect(compileToMpy('r.py', 'a = 1\nb = f"{a!r}"\n')).rejects.toMatchObject({ name: 'MpyCompileError', line: 2 });
  });

  it('still compiles after a failed compile', async () => {
    await expect(compileToMpy('bad.py', 'def (')).rejects.toBeInstanceOf(MpyCompileError);
    install('cm_after', await compileToMpy('cm_after.py', 'VALUE = 41 + 1\n'));
    expect(run('import cm_after\nprint(cm_after.VALUE)')).toBe('42');
  });

  it('runs 20 concurrent compiles correctly without adding process listeners', async () => {
    await compileToMpy('warm.py', 'pass\n'); // the first compile loads the wasm
    const counts = () => [process.listenerCount('uncaughtException'), process.listenerCount('unhandledRejection')];
    const before = counts();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => compileToMpy(`cm_many${i}.py`, `def which():\n    return ${i} * 1000\n`)));
    expect(counts()).toEqual(before);
    results.forEach((mpy, i) => install(`cm_many${i}`, mpy));
    const imports = results.map((_, i) => `import cm_many${i}`).join('\n');
    const calls = results.map((_, i) => `cm_many${i}.which()`).join(', ');
    expect(run(`${imports}\nprint([${calls}])`)).toBe(`[${results.map((_, i) => i * 1000).join(', ')}]`);
  });

  it('rejects bad arguments', async () => {
    await expect(compileToMpy('', 'pass')).rejects.toBeInstanceOf(TypeError);
    await expect(compileToMpy('x.py', 'pass', { optimize: 7 as 0 })).rejects.toBeInstanceOf(RangeError);
  });
});

describe('mpy ABI of a board', () => {
  it('is the low byte of sys.implementation._mpy', () => {
    expect(mpyAbiOf(774)).toBe(6); // 1.27 wasm port: 6.3, no native arch
    expect(mpyAbiOf(6 | (2 << 8) | (9 << 10))).toBe(6); // an ESP8266 on 1.22: xtensa, 6.2
    expect(mpyAbiOf(5)).toBe(5); // MicroPython 1.12–1.18
    expect(() => mpyAbiOf(-1)).toThrow(RangeError);
  });

  it('decides whether our ABI-6 bytecode can be sent', () => {
    expect(canLoadMpyV6(774)).toBe(true);
    expect(canLoadMpyV6(6 | (2 << 8) | (9 << 10))).toBe(true);
    expect(canLoadMpyV6(5 | (10 << 10))).toBe(false);
    expect(canLoadMpyV6(null)).toBe(false);
    expect(canLoadMpyV6(undefined)).toBe(false);
    expect(canLoadMpyV6(6.5)).toBe(false);
  });
});

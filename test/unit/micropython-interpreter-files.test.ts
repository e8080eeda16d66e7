/** MicroPythonInterpreter with `filesDir`: exec'd code works on a host folder that outlives the interpreter. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MicroPythonInterpreter } from '../../electron/manager/virtual/micropython-interpreter.js';

let folder: string;
const interpreters: MicroPythonInterpreter[] = [];

async function run(interpreter: MicroPythonInterpreter, code: string): Promise<string> {
  let stdout = '';
  const result = await interpreter.exec('board', code, {
    onOutput: (stream, data) => {
      stdout += Buffer.from(data).toString();
    },
  });
  expect(result).toEqual({ status: 'ok' });
  return stdout;
}

function open(): MicroPythonInterpreter {
  const interpreter = new MicroPythonInterpreter({ filesDir: folder });
  interpreters.push(interpreter);
  return interpreter;
}

beforeAll(async () => {
  folder = await mkdtemp(path.join(os.tmpdir(), 'cm-interp-files-'));
});
afterAll(async () => {
  await Promise.all(interpreters.map((interpreter) => interpreter.close()));
  await rm(folder, { recursive: true, force: true });
});

describe('MicroPythonInterpreter with a files folder', () => {
  it('sees the folder as its `/`, including what others write between execs, and writes back what the code changes', async () => {
    await writeFile(path.join(folder, 'hello.txt'), 'from the host');
    const interpreter = open();
    expect(await run(interpreter, 'import os\nprint(sorted(os.listdir("/")))\nprint(open("/hello.txt").read())')).toBe("['hello.txt']\nfrom the host\n");
    await run(interpreter, 'import os\nos.mkdir("/data")\nf = open("/data/n.txt", "w")\nf.write("7")\nf.close()\nos.remove("/hello.txt")');
    expect(await readFile(path.join(folder, 'data', 'n.txt'), 'utf8')).toBe('7');
    await expect(readFile(path.join(folder, 'hello.txt'))).rejects.toThrow();
    await writeFile(path.join(folder, 'later.txt'), 'put between two execs');
    expect(await run(interpreter, 'print(open("/later.txt").read())')).toBe('put between two execs\n');
  });

  it('finds the files again in a new interpreter (a board after a power cut)', async () => {
    expect(await run(open(), 'print(open("/data/n.txt").read())')).toBe('7\n');
  });
});

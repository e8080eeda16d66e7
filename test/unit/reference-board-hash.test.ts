/**
 * The reference board's `hash` (PROTOCOL.md §7.4) on a malformed path list, which the
 * manager never sends: refused with EINVAL, before any file is read. (What it answers to
 * good lists is judged by the conformance suite, through the manager.)
 */
import { describe, expect, it } from 'vitest';
import { MemoryFs } from '../../electron/manager/virtual/board-fs.js';
import { runOperation, type OperationContext } from '../../electron/manager/virtual/board-operations.js';

/** A board with one file, and a record of the files its operations read. */
function boardWithOneFile() {
  const fs = new MemoryFs();
  const reads: string[] = [];
  const readFile = fs.readFile.bind(fs);
  fs.readFile = async (path) => {
    reads.push(path);
    return readFile(path);
  };
  // hash uses the file system only: the rest of a board is not needed here.
  const context = { fs } as unknown as OperationContext;
  return { fs, reads, context };
}

const resultOf = (fields: Array<string | Buffer>) => {
  const map = new Map<string, string>();
  for (let index = 0; index < fields.length; index += 2) map.set(String(fields[index]), String(fields[index + 1]));
  return map;
};

describe('reference board: hash', () => {
  it.each([
    ['no pl', undefined],
    ['pl not JSON', 'not json'],
    ['a string', '"/a.py"'],
    ['no paths', '[]'],
    ['a number', '[1]'],
    ['a relative path', JSON.stringify(['relative.py'])],
    ['a .. segment after a good path', JSON.stringify(['/a.py', '/x/../b.py'])],
    ['33 paths', JSON.stringify(Array.from({ length: 33 }, (_, index) => `/${index}.py`))],
  ])('refuses %s with EINVAL', async (_what, pl) => {
    const { fs, reads, context } = boardWithOneFile();
    await fs.writeFile('/a.py', Buffer.from('x = 1\n'));
    const fields = new Map<string, Buffer>([['o', Buffer.from('hash')]]);
    if (pl !== undefined) fields.set('pl', Buffer.from(pl));
    const res = resultOf(await runOperation(context, 'c1', fields));
    expect([res.get('ok'), res.get('ec')]).toEqual(['0', 'EINVAL']);
    expect(reads).toEqual([]);
  });

  it('keys its answer by the paths as sent', async () => {
    const { fs, context } = boardWithOneFile();
    await fs.writeFile('/a.py', Buffer.from(''));
    const fields = new Map<string, Buffer>([
      ['o', Buffer.from('hash')],
      ['pl', Buffer.from(JSON.stringify(['//a.py', '/']))],
    ]);
    const res = resultOf(await runOperation(context, 'c1', fields));
    expect(JSON.parse(res.get('r')!)).toEqual({ '//a.py': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', '/': null });
  });
});

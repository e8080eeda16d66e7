/** The key builder must produce exactly the keys of the table in firmware/PROTOCOL.md §2. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { boardKeys, boardUser, managerKeys, InvalidIdError } from '../../electron/manager/redis/keys.js';

const protocol = readFileSync(new URL('../../firmware/PROTOCOL.md', import.meta.url), 'utf8');
const section = protocol.slice(protocol.indexOf('## 2. Keys'), protocol.indexOf('## 3.'));
const documentedKeys = [...section.matchAll(/^\| `([^`]+)` \|/gm)].map((match) => match[1]!);

describe('wire contract keys', () => {
  it('builds every key of PROTOCOL.md §2 and nothing else', () => {
    // Build with concrete ids, then put the table's placeholders back.
    const keys = boardKeys('b0');
    const placeholders = (key: string) => key.replace('{b0}', '{ID}').replace(':c0', ':CID');
    const built = [
      keys.cmd,
      keys.state,
      keys.up,
      `${keys.blobPrefix('c0')}:N`,
      keys.pending,
      keys.seen,
      keys.log,
      keys.telemetry,
      keys.fence,
      managerKeys.boards,
      managerKeys.names,
      managerKeys.discoveryKeys,
      managerKeys.lease,
      managerKeys.epoch,
    ].map(placeholders);
    expect(documentedKeys.length).toBeGreaterThan(5);
    expect(built.sort()).toEqual([...documentedKeys].sort());
  });

  it('names board users as documented', () => {
    expect(protocol).toContain('`cmb-<ID>`');
    expect(boardUser('b1')).toBe('cmb-b1');
  });

  it('refuses ids that could escape their keys', () => {
    for (const bad of ['B1', 'a}b', 'a*', 'mgr', 'up', '', 'x'.repeat(33), 'a:b']) {
      expect(() => boardKeys(bad)).toThrow(InvalidIdError);
    }
  });
});

describe('the MicroPython client builds the same keys', () => {
  it('matches the TypeScript key builder for the keys a board uses', async () => {
    const { loadMicroPython } = await import('@micropython/micropython-webassembly-pyscript');
    const mp = await loadMicroPython({ heapsize: 256 * 1024, stdout: () => undefined, stderr: () => undefined });
    mp.FS.mkdir('/lib');
    mp.FS.writeFile('/lib/cm.py', readFileSync(new URL('../../firmware/cm.py', import.meta.url)));
    mp.registerJsModule('socket', {});
    mp.runPython(
      "import cm\nc = cm.Client({'id': 'b0', 'user': 'u', 'password': 'p', 'server': 'h'})\n" + "ks = [str(k, 'utf-8') for k in (c.kc, c.ks, c.ku)]",
    );
    const python = mp.PyProxy.toJs(mp.globals.get('ks')) as string[];
    const keys = boardKeys('b0');
    expect(python).toEqual([keys.cmd, keys.state, keys.up]);
  });
});

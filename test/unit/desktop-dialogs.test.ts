/**
 * The native dialogs of the desktop window (electron/app/dialogs.ts, preload.cts): what the
 * page gets for the files a user chose, what is refused and how it is said, and that the
 * preload forwards on the very channels the main process serves.
 */
import { mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import ts from 'typescript';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DESKTOP_CHANNELS,
  MAX_DIALOG_FILE_BYTES,
  answerPage,
  desktopDialogs,
  safeFileName,
  type DesktopAnswer,
  type NativeDialogs,
} from '../../electron/app/dialogs.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cm-dialogs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Stand-in for Electron's dialog: answers with the given choice and records what was asked. */
function nativeDialogs(choice: { open?: string[]; save?: string | null }) {
  const asked: Array<{ kind: 'open' | 'save'; request: unknown }> = [];
  const native: NativeDialogs = {
    showOpen: async (request) => (asked.push({ kind: 'open', request }), choice.open ?? []),
    showSave: async (request) => (asked.push({ kind: 'save', request }), choice.save ?? null),
  };
  return { native, asked };
}

const answer = <T>(work: () => Promise<T>) => answerPage(work, (error) => expect.fail(`unexpected ${error.message}`));

describe('desktop dialogs', () => {
  it('pickFirmware offers .bin files and returns the chosen file by name and bytes, never its path', async () => {
    const file = path.join(dir, 'ESP8266_GENERIC-v1.27.0.bin');
    await writeFile(file, Buffer.from([0xe9, 1, 2, 3]));
    const { native, asked } = nativeDialogs({ open: [file] });
    const result = await desktopDialogs(native).pickFirmware();
    expect(result).toEqual([{ name: 'ESP8266_GENERIC-v1.27.0.bin', bytes: new Uint8Array([0xe9, 1, 2, 3]) }]);
    expect(asked[0]!.request).toMatchObject({ multiple: false, filters: [{ extensions: ['bin'] }] });
    expect(JSON.stringify(result)).not.toContain(dir);
  });

  it('pickFiles returns [] when the user cancels, and several files when asked for several', async () => {
    expect(await desktopDialogs(nativeDialogs({ open: [] }).native).pickFiles({ multiple: true })).toEqual([]);
    await writeFile(path.join(dir, 'main.py'), 'print(1)\n');
    await writeFile(path.join(dir, 'boot.py'), '');
    const { native, asked } = nativeDialogs({ open: [path.join(dir, 'main.py'), path.join(dir, 'boot.py')] });
    const files = await desktopDialogs(native).pickFiles({ multiple: true });
    expect(files.map((item) => [item.name, new TextDecoder().decode(item.bytes)])).toEqual([
      ['main.py', 'print(1)\n'],
      ['boot.py', ''],
    ]);
    expect(asked[0]!.request).toMatchObject({ multiple: true });
  });

  it('refuses a file over the limit before reading it, with its name and size', async () => {
    const big = path.join(dir, 'huge.bin');
    await writeFile(big, '');
    await truncate(big, MAX_DIALOG_FILE_BYTES + 1); // sparse: nothing written to the disk
    const result = await answer(() => desktopDialogs(nativeDialogs({ open: [big] }).native).pickFirmware());
    expect(result).toEqual({ ok: false, error: 'huge.bin is 64.1 MiB: a file chosen here may be at most 64 MiB' });
  });

  it('refuses a folder and an unreadable file with a message', async () => {
    const dialogs = desktopDialogs(nativeDialogs({ open: [dir] }).native);
    expect(await answer(() => dialogs.pickFiles({ multiple: false }))).toEqual({ ok: false, error: `${path.basename(dir)} is not a file` });
    const gone = desktopDialogs(nativeDialogs({ open: [path.join(dir, 'gone.py')] }).native);
    expect(await answer(() => gone.pickFiles({ multiple: false }))).toEqual({ ok: false, error: 'gone.py cannot be read (ENOENT)' });
  });

  it('checks what the page passes: options, file name, bytes', async () => {
    const { native, asked } = nativeDialogs({ save: path.join(dir, 'x') });
    const dialogs = desktopDialogs(native);
    expect(await answer(() => dialogs.pickFiles('all of them'))).toEqual({ ok: false, error: 'pickFiles takes { multiple: boolean }' });
    expect(await answer(() => dialogs.pickFiles({ multiple: 'yes' }))).toMatchObject({ ok: false });
    expect(await answer(() => dialogs.saveFile(42, new Uint8Array(1)))).toEqual({ ok: false, error: 'saveFile needs a file name' });
    expect(await answer(() => dialogs.saveFile('a.txt', 'text'))).toEqual({ ok: false, error: 'saveFile needs the bytes to save (a Uint8Array)' });
    const tooBig = new Uint8Array(MAX_DIALOG_FILE_BYTES + 1);
    expect(await answer(() => dialogs.saveFile('big.bin', tooBig))).toMatchObject({ ok: false, error: expect.stringContaining('at most 64 MiB') });
    expect(asked).toEqual([]);
  });

  it('saveFile suggests a plain name, writes where the user chose (no temp file left) and says false on cancel', async () => {
    const target = path.join(dir, 'chosen.py');
    const { native, asked } = nativeDialogs({ save: target });
    expect(await desktopDialogs(native).saveFile('lib/../../etc/passwd', new TextEncoder().encode('print(2)\n'))).toBe(true);
    expect(asked[0]!.request).toMatchObject({ defaultName: 'passwd' });
    expect(await readFile(target, 'utf8')).toBe('print(2)\n');
    expect(await readdir(dir)).toEqual(['chosen.py']);
    expect(await desktopDialogs(nativeDialogs({ save: null }).native).saveFile('main.py', new Uint8Array(0))).toBe(false);
  });

  it('says a save that failed plainly', async () => {
    const target = path.join(dir, 'missing-folder', 'main.py');
    const result = await answer(() => desktopDialogs(nativeDialogs({ save: target }).native).saveFile('main.py', new Uint8Array(1)));
    expect(result).toEqual({ ok: false, error: 'main.py could not be saved (ENOENT)' });
  });

  it('turns a bug into a short note for the page and the whole error for the log', async () => {
    const logged: Error[] = [];
    const result = await answerPage(
      async () => {
        throw new TypeError('x is undefined');
      },
      (error) => logged.push(error),
    );
    expect(result).toMatchObject({ ok: false, error: expect.stringContaining('the app log') });
    expect(logged.map((error) => error.message)).toEqual(['x is undefined']);
  });

  it('safeFileName keeps a file name and drops folders and characters file systems refuse', () => {
    expect(safeFileName('main.py')).toBe('main.py');
    expect(safeFileName('C:\\Users\\x\\boot.py')).toBe('boot.py');
    expect(safeFileName('a<b>:c?.txt')).toBe('a_b__c_.txt');
    expect(safeFileName('..')).toBe('download');
    expect(safeFileName('/')).toBe('download');
  });
});

describe('preload', () => {
  /** Runs preload.cts as Electron runs a sandboxed preload: a plain CommonJS script whose require knows 'electron' only. */
  async function runPreload(invoke: (channel: string, ...args: unknown[]) => Promise<DesktopAnswer<unknown>>) {
    const source = await readFile(new URL('../../electron/app/preload.cts', import.meta.url), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: 'preload.cts',
      compilerOptions: {
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
      },
    });
    const exposed = new Map<string, unknown>();
    const required: string[] = [];
    const electronStandIn = { ipcRenderer: { invoke }, contextBridge: { exposeInMainWorld: (key: string, api: unknown) => exposed.set(key, api) } };
    const module = { exports: {} };
    const wrapper = vm.runInThisContext(`(function (require, exports, module) {${outputText}\n})`) as (...args: unknown[]) => void;
    wrapper((name: string) => (required.push(name), name === 'electron' ? electronStandIn : undefined), module.exports, module);
    return { exposed, required };
  }

  it('exposes only window.cmDesktop with the three dialogs, forwarding on the channels the main process serves', async () => {
    const calls: unknown[][] = [];
    const { exposed, required } = await runPreload(async (channel, ...args) => {
      calls.push([channel, ...args]);
      return { ok: true, value: channel === DESKTOP_CHANNELS.saveFile ? true : [] };
    });
    expect(required).toEqual(['electron']);
    expect([...exposed.keys()]).toEqual(['cmDesktop']);
    const api = exposed.get('cmDesktop') as Record<string, (...args: unknown[]) => Promise<unknown>>;
    expect(Object.keys(api).sort()).toEqual(['pickFiles', 'pickFirmware', 'saveFile']);
    await api.pickFirmware!();
    await api.pickFiles!({ multiple: true, extra: 'dropped' });
    const bytes = new Uint8Array([1]);
    expect(await api.saveFile!('main.py', bytes)).toBe(true);
    expect(calls).toEqual([[DESKTOP_CHANNELS.pickFirmware], [DESKTOP_CHANNELS.pickFiles, { multiple: true }], [DESKTOP_CHANNELS.saveFile, 'main.py', bytes]]);
  });

  it("throws the main process's refusal in the page as an Error with its message", async () => {
    const { exposed } = await runPreload(async () => ({ ok: false, error: 'huge.bin is 80 MiB: a file chosen here may be at most 64 MiB' }));
    const api = exposed.get('cmDesktop') as { pickFirmware(): Promise<unknown> };
    await expect(api.pickFirmware()).rejects.toThrow('huge.bin is 80 MiB');
  });
});

/** The page's side of the desktop app's native dialogs (renderer/src/lib/desktop.ts), with a stub window.cmDesktop. */
import { describe, expect, it } from 'vitest';
import { desktopApi, pickFiles, pickFirmwareFile, saveBytes } from '../../renderer/src/lib/desktop.js';
import type { CmDesktopApi } from '../../electron/app/dialogs.js';

/** Stands in for the preload's window.cmDesktop: answers with the given files, records what was asked. */
function stubDesktop(files: Array<{ name: string; bytes: Uint8Array }>, saveAnswer = true) {
  const asked: unknown[][] = [];
  const api: CmDesktopApi = {
    pickFirmware: async () => (asked.push(['pickFirmware']), files),
    pickFiles: async (options) => (asked.push(['pickFiles', options]), files),
    saveFile: async (name, bytes) => (asked.push(['saveFile', name, bytes]), saveAnswer),
  };
  return { api, asked };
}

describe('desktop dialogs in the page', () => {
  it('finds window.cmDesktop only when it has the three dialogs (a browser has none)', () => {
    const { api } = stubDesktop([]);
    expect(desktopApi({ cmDesktop: api })).toBe(api);
    expect(desktopApi({})).toBeNull();
    expect(desktopApi({ cmDesktop: { pickFirmware: () => undefined } })).toBeNull();
    expect(desktopApi({ cmDesktop: 'yes' })).toBeNull();
    expect(desktopApi()).toBeNull();
  });

  it('turns the chosen firmware into a File the wizard adds as it adds a picked one; null when cancelled', async () => {
    const file = await pickFirmwareFile(stubDesktop([{ name: 'ESP8266_GENERIC.bin', bytes: new Uint8Array([0xe9, 3, 2]) }]).api);
    expect(file?.name).toBe('ESP8266_GENERIC.bin');
    expect([...new Uint8Array(await file!.arrayBuffer())]).toEqual([0xe9, 3, 2]);
    expect(await pickFirmwareFile(stubDesktop([]).api)).toBeNull();
  });

  it('gives chosen files as the upload pickers do: the file and its name as the path below the target folder', async () => {
    // A view into a larger buffer, as bytes from IPC can be: only the view's bytes count.
    const shared = new Uint8Array([9, 9, 112, 114, 105, 110, 116, 9]);
    const { api, asked } = stubDesktop([{ name: 'main.py', bytes: shared.subarray(2, 7) }]);
    const picked = await pickFiles(api);
    expect(asked).toEqual([['pickFiles', { multiple: true }]]);
    expect(picked.map((item) => item.relativePath)).toEqual(['main.py']);
    expect(await picked[0]!.file.text()).toBe('print');
  });

  it('saves through the native dialog in the app, and says when the user cancelled', async () => {
    const bytes = new TextEncoder().encode('print(1)\n');
    const saved = stubDesktop([]);
    expect(await saveBytes('main.py', bytes, saved.api)).toBe(true);
    expect(saved.asked).toEqual([['saveFile', 'main.py', bytes]]);
    expect(await saveBytes('main.py', bytes, stubDesktop([], false).api)).toBe(false);
  });

  it("passes on the main process's refusal for the view to show", async () => {
    const api: CmDesktopApi = {
      ...stubDesktop([]).api,
      pickFirmware: async () => {
        throw new Error('huge.bin is 80 MiB: a file chosen here may be at most 64 MiB');
      },
    };
    await expect(pickFirmwareFile(api)).rejects.toThrow('at most 64 MiB');
  });
});

// @ts-check
// MicroPython 1.27's frozen _boot.py (and inisetup.py) for the board lab's worker
// (micropython-board-worker.mjs), and helpers of its start-up.
//
// _boot.py on an ESP8266: `gc.threshold((gc.mem_free() + gc.mem_alloc()) // 4)`, then
// `vfs.mount(bdev, "/")`, and when that fails `inisetup.setup()`: a blank first block
// gives "Performing initial setup", the access point named MicroPython-xxxxxx with the
// password micropythoN, LittleFS v2 created and mounted, boot.py written; anything else
// gives fs_corrupted(), the corrupt-filesystem message every 3 s until Ctrl-C, nothing
// mounted. The main thread reads the flash and tells the worker which case it is
// (micropython-board-flash.ts); the files of a mounted filesystem are the host folder.
import { format } from 'node:util';

/** The boot.py inisetup.setup() writes (MicroPython 1.27). */
export const BOOT_PY = `# This file is executed on every boot (including wake-boot from deepsleep)
#import esp
#esp.osdebug(None)
import os, machine
#os.dupterm(None, 1) # disable REPL on UART(0)
import gc
#import webrepl
#webrepl.start()
gc.collect()
`;

const pauseCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * @typedef {{ apActive: boolean, apSsid: string, apKey: string, apAuthmode: number }} WifiSettings
 * @typedef {{
 *   filesystem: { state: 'mounted' | 'blank' | 'corrupt' | 'none' },
 *   setupWifi?: WifiSettings,
 *   timing: { initialSetupMs: number },
 * }} BootConfig
 */

/**
 * The filesystem part of _boot.py. Returns what the boot found: 'mounted', 'formatted'
 * (initial setup done), 'corrupt' (the caller runs the loop) or 'none'.
 * @param {{
 *   config: BootConfig,
 *   mp: { runPython(code: string): unknown },
 *   FS: any,
 *   flash: import('./micropython-board-worker-flash.mjs').FlashMirror,
 *   host: { setAccessPoint(settings: WifiSettings): void },
 *   print: (text: string) => void,
 *   post: (message: unknown) => void,
 * }} options
 * @returns {'mounted' | 'formatted' | 'corrupt' | 'none'}
 */
export function bootFilesystem({ config, mp, FS, flash, host, print, post }) {
  const { state } = config.filesystem;
  if (state === 'mounted') {
    flash.load();
    return 'mounted';
  }
  if (state === 'blank') {
    print('Performing initial setup\n');
    if (config.setupWifi) host.setAccessPoint(config.setupWifi);
    flash.format();
    post({ type: 'flash', op: 'format' });
    FS.writeFile('/boot.py', BOOT_PY);
    flash.sync();
    // Creating the filesystem and saving the wifi settings take about a second on a board.
    Atomics.wait(pauseCell, 0, 0, config.timing.initialSetupMs);
    return 'formatted';
  }
  // Nothing mounted: the board's open() raises ENODEV, os.listdir('/') is empty.
  mp.runPython('import vfs\nvfs.umount("/")\ndel vfs');
  return state;
}

/**
 * Removes a directory tree of the interpreter's file system.
 * @param {any} FS @param {string} path
 */
export function removeTree(FS, path) {
  const node = FS.lstat(path);
  if (FS.isDir(node.mode)) {
    for (const name of FS.readdir(path)) if (name !== '.' && name !== '..') removeTree(FS, `${path}/${name}`);
    FS.rmdir(path);
  } else {
    FS.unlink(path);
  }
}

/**
 * The GC "total" of a MicroPython heap of `bytes` bytes (py/gc.c, gc_setup_area, 32-bit):
 * each 16-byte block costs 2 bits of allocation table and 1 bit of finaliser table.
 * @param {number} bytes
 */
export function gcTotalFor(bytes) {
  const atbBytes = Math.floor(((bytes - 1) * 8) / (8 + 4 + 8 * 4 * 16));
  return atbBytes * 4 * 16;
}

/**
 * Routes Emscripten's console.* (bound when a module is created) to the parent's log;
 * messages `skip` accepts are dropped (a board's refused memory growth, say).
 * @param {(message: { type: 'log', level: string, message: string }) => void} post
 * @param {RegExp} [skip]
 */
export function routeConsoleToLog(post, skip) {
  for (const [method, level] of /** @type {const} */ ([
    ['log', 'debug'],
    ['debug', 'debug'],
    ['info', 'info'],
    ['warn', 'warn'],
    ['error', 'error'],
  ])) {
    console[method] = (/** @type {unknown[]} */ ...args) => {
      const message = format(...args);
      if (!skip?.test(message)) post({ type: 'log', level, message });
    };
  }
}

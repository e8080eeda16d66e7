/**
 * The host side of the serial line against a simulated ESP8266 at 115200 baud: RawRepl
 * (the `serialport` package on a pty) talking to the REPL simulator backed by real
 * MicroPython with a 36 KB heap running our real firmware, and putFile/getFile on top.
 * Throughput is logged, not asserted: a busy machine makes any floor fail; the speed is
 * measured by `npm run bench:serial-copy`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closeNodeSerialPort, openNodeSerialPort, type NodeSerialPort } from '../../electron/manager/usb/web-serial-port.js';
import { RawRepl } from '../../electron/manager/usb/raw-repl.js';
import { RawReplError, RawReplTimeoutError } from '../../electron/manager/usb/raw-repl-errors.js';
import { getFile, putFile, SerialCopyChecksumError, SerialCopyError } from '../../electron/manager/usb/serial-copy.js';
import { LAB_WIFI, provisionFolder } from '../../electron/manager/virtual/micropython-fleet.js';
import { freePort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/lab.js';
import { PtyLink } from '../lab/pty-link.js';
import { makeReplLab, type ReplLab } from '../lab/micropython-repl/repl-lab.js';
import { MicroPythonReplSimulator } from '../lab/micropython-repl/micropython-repl-simulator.js';

const opened: Array<{ lab: ReplLab; port: NodeSerialPort; repl: RawRepl }> = [];
/** The boards' flash folders (the lab does not remove a folder it was given). */
const folders: string[] = [];

/**
 * Starts a copy: `underway` resolves once its first chunk went out (the moment to break
 * it), `outcome` with its result or error (handled at once: the failure may come while the
 * test is still breaking things).
 */
function startCopy(repl: RawRepl, data: Buffer, dest: string): { underway: Promise<void>; outcome: Promise<unknown> } {
  let markUnderway = () => {};
  const underway = new Promise<void>((resolve) => (markUnderway = resolve));
  const outcome = putFile(repl, data, dest, { onProgress: (progress) => progress.phase === 'send' && markUnderway() }).catch((error: unknown) => error);
  return { underway, outcome };
}

async function openPort(link: PtyLink): Promise<NodeSerialPort> {
  const port = await openNodeSerialPort(link.path, { baudRate: 115_200 });
  port.on('error', () => undefined); // a closed pty surfaces as a read error; RawRepl sees 'close'
  return port;
}

/** A board running our firmware (its server is not there: it keeps retrying) behind the REPL simulator. */
async function firmwareBoard(options: Parameters<typeof makeReplLab>[1] = {}, files: Record<string, string> = {}) {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-serial-copy-'));
  folders.push(folder);
  const credentials = { v: 1, id: 'copy-1', name: 'copy-1', user: 'cmb-copy-1', password: 'secret-password', server: '127.0.0.1', port: 1, hb: 5 };
  await provisionFolder(folder, credentials, { host: '127.0.0.1', port: await freePort() });
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(folder, name), text);
  const lab = await makeReplLab({}, { ...options, folder, board: { wifi: LAB_WIFI, ...options.board } });
  await lab.repl.start();
  const port = await openPort(lab.link);
  const logs: string[] = [];
  const repl = new RawRepl({ port, exitOnError: true, onLog: (level, message) => logs.push(`${level}: ${message}`) });
  opened.push({ lab, port, repl });
  return { lab, port, repl, folder, logs };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** 64 KB of real Python: our firmware and the lab's shims, over and over. */
async function pythonSource(bytes: number): Promise<Buffer> {
  const root = path.resolve(import.meta.dirname, '../..');
  const names = [
    'firmware/cm.py',
    'firmware/cm_ops.py',
    'firmware/cm_async.py',
    'electron/manager/virtual/lab-python/socket.py',
    'electron/manager/virtual/lab-python/network.py',
  ];
  const corpus = Buffer.concat(await Promise.all(names.map((name) => readFile(path.join(root, name)))));
  const out = Buffer.alloc(bytes);
  for (let offset = 0; offset < bytes; offset += corpus.length) corpus.copy(out, offset);
  return out;
}

afterEach(async () => {
  for (const { lab, port, repl } of opened.splice(0)) {
    repl.dispose();
    await closeNodeSerialPort(port);
    await lab.close();
  }
  for (const folder of folders.splice(0)) await rm(folder, { recursive: true, force: true });
});

describe('RawRepl and serial copy through the REPL simulator at 115200 baud', () => {
  it('interrupts the running firmware, then execs in raw-paste mode with stdout and stderr apart', async () => {
    const { lab, repl } = await firmwareBoard();
    expect(lab.board.mode).toBe('firmware');
    await repl.enter();
    expect(lab.board.mode).toBe('idle');
    expect(await repl.exec('print("hello")\nimport sys\nprint("warn", file=sys.stderr)')).toEqual({ stdout: 'hello\r\nwarn\r\n', stderr: '' });
    const failed = await repl.exec('print(1)\nraise ValueError("boom")');
    expect(failed.stdout).toBe('1\r\n');
    expect(failed.stderr).toBe('Traceback (most recent call last):\r\n  File "<stdin>", line 2, in <module>\r\nValueError: boom\r\n');
    expect(repl.rawPaste).toBe(true);
    expect(await repl.eval('6 * 7')).toBe('42');
    expect(lab.repl.stats.rawPasteExecs).toBe(3);
    expect(lab.repl.stats.creditViolations).toBe(0);
  });

  it('a syntax error ends the raw paste early: RawRepl acknowledges it, returns the SyntaxError and stays in step', async () => {
    const { lab, repl } = await firmwareBoard();
    await repl.enter();
    const code = `x = 1\ny = = 2\n${'z = 3\n'.repeat(2000)}`;
    let sent = 0;
    const result = await repl.exec(code, { onSend: (bytes) => (sent = bytes), pipelineNext: true });
    expect(result).toEqual({ stdout: '', stderr: 'Traceback (most recent call last):\r\n  File "<stdin>", line 2\r\nSyntaxError: invalid syntax\r\n' });
    expect(sent).toBeLessThan(code.length); // the board stopped it long before the end
    expect(lab.repl.stats.rawPasteEarlyEnds).toBe(1);
    // The pipelined request was answered after the error: the next exec runs.
    expect(await repl.eval('6 * 7')).toBe('42');
    const failed = await repl.execChecked(`if True:\nprint(1)\n${'n = 2\n'.repeat(1000)}`).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(RawReplError);
    expect((failed as RawReplError).message).toMatch(/^IndentationError|^SyntaxError/);
    await repl.enter(); // exitOnError left the raw REPL after that failure
    expect(await repl.eval('1 + 1')).toBe('2');
    expect(lab.repl.stats.creditViolations).toBe(0);
  });

  it('falls back to plain raw mode when the board answers R\\x00', async () => {
    const { lab, repl } = await firmwareBoard({ repl: { rawPaste: false } });
    await repl.enter();
    const long = `x = ${JSON.stringify('y'.repeat(1500))}\nprint(len(x))`;
    expect(await repl.exec(long)).toEqual({ stdout: '1500\r\n', stderr: '' });
    expect(repl.rawPaste).toBe(false);
    expect(await repl.exec('print(2)')).toEqual({ stdout: '2\r\n', stderr: '' });
    expect(lab.repl.stats.rawPasteExecs).toBe(0);
    expect(lab.repl.stats.overruns).toBe(0);
  });

  it('soft reset: from the raw REPL main.py does not run, with runMain it does', async () => {
    const { lab, repl } = await firmwareBoard({}, { 'boot.py': 'import machine\n' });
    await repl.enter();
    await repl.exec('x = 1');
    await repl.softReset({ runMain: false });
    expect(lab.board.mode).toBe('idle');
    expect(repl.inRawRepl).toBe(true);
    expect((await repl.exec('print("x" in globals(), "client" in globals())')).stdout).toBe('False False\r\n');
    await repl.softReset({ runMain: true });
    expect(repl.inRawRepl).toBe(false);
    await waitFor(() => lab.board.mode === 'firmware', 5000, 'the firmware to run again');
    await repl.enter();
    expect((await repl.exec('print("client" in globals())')).stdout).toBe('True\r\n');
  });

  it('leaves the raw REPL after an error when exitOnError is set', async () => {
    const { lab, repl } = await firmwareBoard();
    await repl.enter();
    await expect(repl.execChecked('1/0')).rejects.toBeInstanceOf(RawReplError);
    expect(repl.inRawRepl).toBe(false);
    // The host has sent its Ctrl-B; the simulator reads it when its turn comes (a loaded machine is slower).
    await waitFor(() => lab.repl.state === 'friendly', 5_000, 'the board back in the friendly REPL');
    await repl.enter();
    await expect(repl.exec('import time\ntime.sleep(5)', { timeoutMs: 300 })).rejects.toBeInstanceOf(RawReplTimeoutError);
    expect(repl.inRawRepl).toBe(false);
    await waitFor(() => lab.repl.state === 'friendly', 5_000, 'the board back in the friendly REPL');
  });

  it('copies 64 KB of random data and 64 KB of Python; sha256 equal in the flash folder', async () => {
    const { lab, repl, folder } = await firmwareBoard();
    await repl.enter();
    const random = randomBytes(64 * 1024);
    const python = await pythonSource(64 * 1024);
    for (const [name, data] of [
      ['random.bin', random],
      ['source.py', python],
    ] as const) {
      const result = await putFile(repl, data, name);
      const kbps = data.length / 1024 / (result.ms / 1000);
      console.info(
        `putFile ${name}: ${data.length} B in ${result.ms} ms = ${kbps.toFixed(1)} KiB/s at 115200 baud (${result.chunks} chunks, ${result.deflated} deflated, ${result.codeBytes} B of code)`,
      );
      expect(sha256(await readFile(path.join(folder, name)))).toBe(sha256(data));
    }
    expect(readdirSync(folder).filter((name) => name.endsWith('.part'))).toEqual([]);
    expect((await getFile(repl, 'source.py')).equals(python)).toBe(true);
    expect(lab.repl.stats.creditViolations).toBe(0);
    expect(lab.repl.stats.overruns).toBe(0);
    const heap = await lab.board.heap();
    console.info(`board heap: ${heap.used} B used of ${heap.total} B, peak ${heap.peakUsed} B during the copies`);
    expect(heap.peakUsed).toBeLessThan(heap.total);
  }, 180_000); // ~20 s on an idle machine; a busy one may take several times that

  it('a failure on the board in the middle: .part removed, destination untouched, raw REPL left', async () => {
    const { lab, repl, folder } = await firmwareBoard();
    await writeFile(path.join(folder, 'keep.bin'), 'old contents');
    await repl.enter();
    const copy = startCopy(repl, randomBytes(32 * 1024), 'keep.bin');
    await copy.underway;
    await lab.board.run('_sc_f.close()'); // the next chunk's write fails on the board
    const error = await copy.outcome;
    expect(error).toBeInstanceOf(SerialCopyError);
    expect((error as SerialCopyError).leftover).toBeUndefined();
    expect((error as SerialCopyError).cause).toBeInstanceOf(RawReplError);
    expect(readdirSync(folder).filter((name) => name.endsWith('.part'))).toEqual([]);
    expect(await readFile(path.join(folder, 'keep.bin'), 'utf8')).toBe('old contents');
    expect(repl.inRawRepl).toBe(false);
    expect(lab.repl.state).toBe('friendly');
    expect((await lab.board.run('print([k for k in globals() if k.startswith("_sc_")])')).stdout).toBe('[]\n');
  }, 30_000);

  it('a copy that does not hash right on the board is removed (SerialCopyChecksumError)', async () => {
    const { lab, repl, folder } = await firmwareBoard();
    await repl.enter();
    const copy = startCopy(repl, randomBytes(16 * 1024), 'sum.bin');
    await copy.underway;
    await lab.board.run('_sc_f.write(b"x")'); // one byte too many lands in the file
    expect(await copy.outcome).toBeInstanceOf(SerialCopyChecksumError);
    expect(readdirSync(folder).filter((name) => name.startsWith('sum.bin'))).toEqual([]);
  }, 30_000);

  it('a failure in the middle leaves the destination untouched; the .part goes once the board is reachable', async () => {
    const { lab, repl, folder, port } = await firmwareBoard();
    await writeFile(path.join(folder, 'keep.bin'), 'old contents');
    await repl.enter();
    const copy = startCopy(repl, randomBytes(32 * 1024), 'keep.bin');
    await copy.underway;
    await lab.link.close(); // the cable is pulled mid-transfer
    const error = await copy.outcome;
    expect(error).toBeInstanceOf(SerialCopyError);
    expect((error as SerialCopyError).leftover).toBe('keep.bin.part');
    expect(await readFile(path.join(folder, 'keep.bin'), 'utf8')).toBe('old contents');
    await closeNodeSerialPort(port);
    // Plugged in again: a new line to the same board; a copy to the same place starts clean.
    const link = await PtyLink.open({ baud: 115_200 });
    const sim = new MicroPythonReplSimulator({ link, board: lab.board });
    await sim.start();
    const port2 = await openPort(link);
    const repl2 = new RawRepl({ port: port2, exitOnError: true });
    try {
      await repl2.enter();
      const data = randomBytes(5000);
      await putFile(repl2, data, 'keep.bin');
      expect(sha256(await readFile(path.join(folder, 'keep.bin')))).toBe(sha256(data));
      expect(existsSync(path.join(folder, 'keep.bin.part'))).toBe(false);
    } finally {
      repl2.dispose();
      sim.close();
      await closeNodeSerialPort(port2);
      await link.close();
    }
  }, 30_000);
});

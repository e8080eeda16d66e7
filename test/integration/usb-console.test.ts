/**
 * The USB serial console against a simulated board (MicroPython's REPL on a pty at
 * 115200 baud): typing reaches the REPL and its answers come back as they arrive; the
 * console owns the port (flash, provision and copy are refused while it is open, and the
 * console is refused while a job runs); unplugging the board ends the console with a
 * reason and frees the port.
 */
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PortBusyError, UsbService, type UsbProgressEvent } from '../../electron/manager/usb/usb-service.js';
import type { SerialConsole } from '../../electron/manager/usb/serial-console.js';
import { FirmwareImageError } from '../../electron/manager/usb/firmware-image.js';
import { MicroPythonBoard } from '../../electron/manager/virtual/micropython-board.js';
import { LAB_WIFI } from '../../electron/manager/virtual/micropython-fleet.js';
import { closeUsbLab, startUsbLab, type UsbLab } from '../helpers/usb-lab.js';
import { PtyLink } from '../lab/pty-link.js';
import { MicroPythonReplSimulator } from '../lab/micropython-repl/micropython-repl-simulator.js';
import { makeEsp8266Image } from '../lab/esp8266-image.js';

/** A board on a USB cable: the device path stays the same when it is plugged in again. */
interface Board {
  dir: string;
  device: string;
  flash: string;
  board: MicroPythonBoard;
  link?: PtyLink;
  sim?: MicroPythonReplSimulator;
}

/** What a terminal shows: everything the console emitted, and a way to wait for text. */
class Screen {
  text = '';
  private waiters: Array<() => void> = [];

  constructor(session: SerialConsole) {
    session.on('data', (bytes) => {
      this.text += bytes.toString('latin1');
      for (const check of [...this.waiters]) check();
    });
  }

  /** Resolves once the text shown so far matches `expected` (checked on every 'data'). */
  waitFor(expected: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = this.text.match(expected);
        if (!match) return;
        done();
        resolve(match);
      };
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((waiter) => waiter !== check);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`the console never showed ${expected}; it showed ${JSON.stringify(this.text.slice(-500))}`));
      }, timeoutMs);
      this.waiters.push(check);
      check();
    });
  }
}

/** Resolves with the reason of the console's 'closed' event. */
async function closedReason(session: SerialConsole, timeoutMs = 20_000): Promise<string> {
  const [reason] = await once(session, 'closed', { signal: AbortSignal.timeout(timeoutMs) });
  return reason as string;
}

describe('the USB serial console (simulated MicroPython board on a pty)', () => {
  let service: UsbLab['service'];
  let usb: UsbService;
  let folder: string;
  const boards: Board[] = [];
  const sessions: SerialConsole[] = [];

  beforeAll(async () => {
    ({ service, usb, folder } = await startUsbLab('cm-usb-console-', { heartbeatS: 1 }));
  });

  afterEach(async () => {
    await Promise.all(sessions.splice(0).map((session) => session.close()));
    for (const board of boards.splice(0)) {
      await unplug(board);
      await board.board.powerOff();
      await rm(board.dir, { recursive: true, force: true });
    }
  });

  afterAll(async () => {
    await closeUsbLab({ service, usb, folder });
  });

  /** A board with nothing in its flash (it boots to the REPL), plugged in at its own path. */
  async function newBoard(): Promise<Board> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cm-usb-console-board-'));
    const flash = path.join(dir, 'flash');
    await mkdir(flash);
    const board: Board = { dir, flash, device: path.join(dir, 'ttyUSB0'), board: new MicroPythonBoard({ folder: flash }) };
    boards.push(board);
    await plug(board);
    return board;
  }

  async function plug(board: Board): Promise<void> {
    board.link = await PtyLink.open({ link: board.device, baud: 115_200 });
    board.sim = new MicroPythonReplSimulator({ link: board.link, board: board.board });
    await board.sim.start();
  }

  /** Pulls the cable: the pty goes away (socat ends and removes the device link). */
  async function unplug(board: Board): Promise<void> {
    board.sim?.close();
    await board.link?.close();
    board.sim = undefined;
    board.link = undefined;
  }

  async function openConsole(port: string): Promise<{ session: SerialConsole; screen: Screen }> {
    const session = await usb.openConsole(port);
    sessions.push(session);
    return { session, screen: new Screen(session) };
  }

  /** The rejection of `promise` (fails the test if it resolves). */
  async function refusal(promise: Promise<unknown>): Promise<PortBusyError> {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PortBusyError);
    return error as PortBusyError;
  }

  it('runs what is typed on the board and shows its answer', async () => {
    const board = await newBoard();
    const { session, screen } = await openConsole(board.device);
    expect(usb.portOwner(board.device)).toBe('console');
    session.write(Buffer.from('print(6*7)\r'));
    await screen.waitFor(/print\(6\*7\)\r\n42\r\n>>> $/);
    session.write(Buffer.from('x = "b" * 3\r'));
    session.write(Buffer.from('x\r'));
    await screen.waitFor(/'bbb'\r\n>>> $/);
  });

  it('a large paste reaches the board whole', { timeout: 60_000 }, async () => {
    const board = await newBoard();
    const { session, screen } = await openConsole(board.device);
    // ~20 KB in paste mode (Ctrl-E): the board echoes every byte it received, then Ctrl-C
    // leaves paste mode without running it (that much source would not fit in its heap).
    const lines = Array.from({ length: 600 }, (_, i) => `t += ${i + 1}  # line ${String(i + 1).padStart(4, '0')} of the paste`);
    const program = ['t = 0', ...lines, 'print("total", t)'].join('\r');
    expect(program.length).toBeGreaterThan(20_000);
    session.write(Buffer.from('\x05'));
    await screen.waitFor(/paste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== $/);
    const start = screen.text.length;
    session.write(Buffer.from(program));
    session.write(Buffer.from('\x03'));
    await screen.waitFor(/\r\n>>> $/, 40_000);
    expect(screen.text.slice(start)).toBe(`${program.replaceAll('\r', '\r\n=== ')}\r\n>>> `);
    expect(board.sim!.stats.overruns).toBe(0);
    // Pasted and run: a smaller program that fits.
    session.write(Buffer.from(`\x05${['t = 0', ...lines.slice(0, 50), 'print("total", t)'].join('\r')}\x04`));
    await screen.waitFor(/(total \d+|Error.*)\r\n>>> $/);
    expect(screen.text).toContain(`total ${(50 * 51) / 2}\r\n>>> `);
  });

  it('owns the port: flash, provision and copy are refused while it is open; a copy works after it is closed', { timeout: 60_000 }, async () => {
    const board = await newBoard();
    const { session, screen } = await openConsole(board.device);

    const copy = await refusal(usb.copy(board.device, Buffer.from('print("hi")\n'), 'main.py'));
    expect(copy.message).toBe(`the USB console of ${board.device} is open: close it before copying a file`);
    expect(copy.owner).toBe('console');
    const flash = await refusal(usb.flash({ port: board.device, image: makeEsp8266Image({ size: 64 * 1024 }) }));
    expect(flash.message).toBe(`the USB console of ${board.device} is open: close it before flashing`);
    const provision = await refusal(usb.provision(board.device, { name: 'desk', wifi: LAB_WIFI }));
    expect(provision.message).toBe(`the USB console of ${board.device} is open: close it before provisioning`);
    const second = await refusal(usb.openConsole(board.device));
    expect(second.message).toBe(`the USB console of ${board.device} is already open (in another window?)`);

    // Nothing reached the board, and the console still works.
    session.write(Buffer.from('print(1+1)\r'));
    await screen.waitFor(/\r\n2\r\n>>> $/);
    await expect(readFile(path.join(board.flash, 'main.py'))).rejects.toMatchObject({ code: 'ENOENT' });

    const closed = closedReason(session);
    await session.close();
    expect(await closed).toBe('the console was closed');
    expect(session.isClosed).toBe(true);
    expect(usb.portOwner(board.device)).toBeNull();
    session.write(Buffer.from('ignored\r')); // never throws after close
    await session.close(); // idempotent

    const result = await usb.copy(board.device, Buffer.from('print("hi")\n'), 'main.py');
    expect(result.bytes).toBe(12);
    expect(await readFile(path.join(board.flash, 'main.py'), 'utf8')).toBe('print("hi")\n');
    expect(usb.portOwner(board.device)).toBeNull();
  });

  it('is refused while a job runs on the port, and opens once it is done', { timeout: 60_000 }, async () => {
    const board = await newBoard();
    const events: UsbProgressEvent[] = [];
    const onProgress = (event: UsbProgressEvent) => events.push(event);
    usb.on('progress', onProgress);
    try {
      const data = Buffer.alloc(8 * 1024, 'x');
      const copying = usb.copy(board.device, data, 'data.txt', { job: 'wizard-7' });
      expect(usb.portOwner(board.device)).toBe('copy');
      const busy = await refusal(usb.openConsole(board.device));
      expect(busy.message).toBe(`${board.device} is busy copying a file to a board: wait until it finishes`);
      expect(busy.owner).toBe('copy');
      await copying;
      expect(events.length).toBeGreaterThan(0);
      expect(events.every((event) => event.job === 'wizard-7' && event.step === 'copy')).toBe(true);
    } finally {
      usb.off('progress', onProgress);
    }
    expect(usb.portOwner(board.device)).toBeNull();
    const { session, screen } = await openConsole(board.device);
    session.write(Buffer.from('print(len(open("data.txt").read()))\r'));
    await screen.waitFor(/\r\n8192\r\n>>> $/);
  });

  it('ends with a reason when the board is unplugged; the port is free again and a new console works once it is back', { timeout: 60_000 }, async () => {
    const board = await newBoard();
    const { session } = await openConsole(board.device);
    const closed = closedReason(session);
    await unplug(board);
    expect(await closed).toBe(`${board.device} went away: was the board unplugged?`);
    expect(session.isClosed).toBe(true);
    expect(usb.portOwner(board.device)).toBeNull();
    session.write(Buffer.from('print(1)\r')); // never throws after the device went away

    // Nothing at that path now: opening fails (not as busy), and the port stays free.
    const gone = await usb.openConsole(board.device).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(gone).toBeInstanceOf(Error);
    expect(gone).not.toBeInstanceOf(PortBusyError);
    expect(usb.portOwner(board.device)).toBeNull();

    await plug(board);
    const again = await openConsole(board.device);
    again.session.write(Buffer.from('print(6*7)\r'));
    await again.screen.waitFor(/\r\n42\r\n>>> $/);
  });

  it('stop() closes the open consoles', async () => {
    const board = await newBoard();
    const own = new UsbService({ fleet: service.manager.fleet, log: () => undefined, firmwareFolder: path.join(folder, 'firmware') });
    const session = await own.openConsole(board.device);
    sessions.push(session);
    const closed = closedReason(session);
    await own.stop();
    expect(await closed).toBe('the console was closed');
    expect(own.portOwner(board.device)).toBeNull();
  });

  it('flash and provision progress events carry the job id given', async () => {
    const events: UsbProgressEvent[] = [];
    const onProgress = (event: UsbProgressEvent) => events.push(event);
    usb.on('progress', onProgress);
    // A path that exists (a port that does not is refused before any step) with no board
    // behind it: both jobs fail after their first step.
    const nowhere = path.join(folder, 'ttyUSB9');
    await writeFile(nowhere, '');
    try {
      await expect(usb.flash({ port: nowhere, image: Buffer.from('not a firmware image'), job: 'wizard-1' })).rejects.toBeInstanceOf(FirmwareImageError);
      await expect(usb.provision(nowhere, { name: 'desk', wifi: LAB_WIFI }, 'wizard-2')).rejects.toThrow();
      await expect(usb.provision(nowhere, { name: 'desk', wifi: LAB_WIFI, job: 'wizard-3' })).rejects.toThrow();
      await expect(usb.provision(nowhere, { name: 'desk', wifi: LAB_WIFI })).rejects.toThrow();
    } finally {
      usb.off('progress', onProgress);
    }
    expect(events.find((event) => event.step === 'flash')).toMatchObject({ job: 'wizard-1', phase: 'check-image', port: nowhere });
    const provisions = events.filter((event) => event.step === 'provision' && event.phase === 'open');
    expect(provisions.map((event) => event.job).slice(0, 2)).toEqual(['wizard-2', 'wizard-3']);
    expect(provisions[2]?.job).toMatch(/^u[0-9a-f]{10}$/);
    expect(usb.portOwner(nowhere)).toBeNull();
  });
});

/**
 * The MicroPython board lab's wifi and heap as MicroPython 1.27 on an ESP8266 has them:
 * joining a network takes time (STAT_CONNECTING first), the board's own access point is
 * on after its first boot and keeps its state across resets (the SDK saves it), and
 * gc.threshold() is a quarter of the heap, as _boot.py sets it, collected at between
 * steps. Timings are only checked from below (the board may always be slower).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MicroPythonBoard, REALISTIC_TIMING, type MicroPythonBoardOptions } from '../../electron/manager/virtual/micropython-board.js';

const WIFI = { ssid: 'lab-ap', password: 'secret' };
const tempDirs: string[] = [];
const boards: MicroPythonBoard[] = [];

async function makeBoard(options: Partial<MicroPythonBoardOptions> = {}): Promise<MicroPythonBoard> {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-mpwifi-'));
  tempDirs.push(folder);
  const board = new MicroPythonBoard({ folder, wifi: WIFI, timing: 'fast', ...options });
  boards.push(board);
  await board.start();
  return board;
}

async function run(board: MicroPythonBoard, code: string): Promise<string> {
  const result = await board.run(code);
  if (result.error) throw new Error(result.traceback ?? result.error);
  return result.stdout;
}

/** Python: connect, then wait (polling) until the join is done; prints first status, final status, ms taken. */
const JOIN = `
import network, time
w = network.WLAN(network.STA_IF)
w.active(True)
def join(ssid, key):
    w.connect(ssid, key)
    t = time.ticks_ms()
    first = (w.status(), w.isconnected())
    while w.status() == network.STAT_CONNECTING:
        time.sleep_ms(10)
    print(first[0], first[1], w.status(), w.isconnected(), time.ticks_diff(time.ticks_ms(), t))
`;

afterEach(async () => {
  await Promise.all(boards.splice(0).map((board) => board.powerOff()));
});
afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

// The board's ticks_ms and the lab's timers are different clocks, each rounded to a
// millisecond: the board may count one less than the lab waited (699 for 700, seen in CI).
const TICK = 1;
describe('wifi in the MicroPython board lab', () => {
  it('joins after a while: STAT_CONNECTING first, then an IP, a wrong password or no such network', async () => {
    const timing = { wifiJoinMs: 300, wifiWrongPasswordMs: 700, wifiNoApMs: 500 };
    const board = await makeBoard({ timing });
    const out = await run(
      board,
      `${JOIN}
join('lab-ap', 'wrong')
join('other-ap', 'secret')
join('lab-ap', 'secret')
print(w.ifconfig()[0], len(w.config('mac')), w.config('ssid'))
`,
    );
    const lines = out
      .trim()
      .split('\n')
      .map((line) => line.split(' '));
    const [wrong, absent, joined] = lines;
    expect(wrong!.slice(0, 4)).toEqual(['1', 'False', '2', 'False']); // STAT_WRONG_PASSWORD
    expect(Number(wrong![4])).toBeGreaterThanOrEqual(timing.wifiWrongPasswordMs - TICK);
    expect(absent!.slice(0, 4)).toEqual(['1', 'False', '3', 'False']); // STAT_NO_AP_FOUND
    expect(Number(absent![4])).toBeGreaterThanOrEqual(timing.wifiNoApMs - TICK);
    expect(joined!.slice(0, 4)).toEqual(['1', 'False', '5', 'True']); // STAT_GOT_IP
    expect(Number(joined![4])).toBeGreaterThanOrEqual(timing.wifiJoinMs - TICK);
    expect(lines[3]).toEqual(['127.0.0.1', '6', 'lab-ap']);
  });

  it('takes seconds to join by default, as a board does', { timeout: 30_000 }, async () => {
    const board = await makeBoard({ timing: undefined });
    const [first, connected, status, isconnected, ms] = (await run(board, `${JOIN}\njoin('lab-ap', 'secret')`)).trim().split(' ');
    expect([first, connected, status, isconnected]).toEqual(['1', 'False', '5', 'True']);
    expect(Number(ms)).toBeGreaterThanOrEqual(REALISTIC_TIMING.wifiJoinMs - TICK);
  });

  it('has its own access point on, MicroPython-xxxxxx with WPA/WPA2, as a first boot leaves it', async () => {
    const board = await makeBoard();
    const out = await run(
      board,
      `
import network, binascii
ap = network.WLAN(network.AP_IF)
sta = network.WLAN(network.STA_IF)
mac = ap.config('mac')
print(ap.active(), ap.config('ssid') == 'MicroPython-' + binascii.hexlify(mac[-3:]).decode(), ap.config('security') == network.AUTH_WPA_WPA2_PSK)
print(ap.status(), ap.isconnected(), ap.ifconfig()[0], hex(mac[0]), hex(sta.config('mac')[0]), mac[1:] == sta.config('mac')[1:])
for f in (lambda: ap.config('password'), lambda: sta.config(ssid='x'), lambda: ap.connect('lab-ap', 'secret')):
    try:
        f()
    except (OSError, ValueError) as e:
        print(type(e).__name__, e)
`,
    );
    expect(out).toBe(
      ['True True True', '-1 False 192.168.4.1 0x5e 0x5c True', 'ValueError unknown config param', 'OSError AP required', 'OSError STA required', ''].join(
        '\n',
      ),
    );
  });

  it('keeps the access point off once turned off (the SDK saves it): across resets and power cycles', async () => {
    const board = await makeBoard();
    await run(board, "import network\nap = network.WLAN(network.AP_IF)\nap.active(False)\nap.config(ssid='porch', key='a-new-password')");
    const check = "import network\nap = network.WLAN(network.AP_IF)\nprint(ap.active(), ap.config('ssid'), ap.ifconfig()[0])";
    expect(await run(board, check)).toBe('False porch 0.0.0.0\n');
    await board.reset();
    expect(await run(board, check)).toBe('False porch 0.0.0.0\n');
    await board.powerOff();
    await board.start();
    expect(await run(board, check)).toBe('False porch 0.0.0.0\n');
    await run(board, 'import network\nnetwork.WLAN(network.AP_IF).active(True)');
    await board.softReset({ runMain: false });
    expect(await run(board, check)).toBe('True porch 192.168.4.1\n');
  });
});

describe("the lab board's heap, as _boot.py leaves it", () => {
  it('gc.threshold() is a quarter of the heap; garbage is collected between steps once the threshold is reached', async () => {
    const board = await makeBoard({ firmwareModule: 'no_firmware_here' });
    const heap = await board.heap();
    const threshold = Number(await run(board, 'import gc\nprint(gc.threshold())'));
    // gc.threshold((gc.mem_free() + gc.mem_alloc()) // 4), kept in 16-byte blocks.
    expect(threshold).toBe(Math.floor(Math.floor(heap.total / 4) / 16) * 16);

    await run(board, 'gc.collect()');
    const base = Number(await run(board, 'print(gc.mem_alloc())'));
    // Less garbage than the threshold: it stays, as on a board.
    await run(board, 'x = bytearray(4000)\nx = None');
    const kept = Number(await run(board, 'print(gc.mem_alloc())'));
    expect(kept - base).toBeGreaterThanOrEqual(4000);
    // Past the threshold: collected as the call returned.
    await run(board, `x = bytearray(${threshold})\nx = None`);
    const after = Number(await run(board, 'print(gc.mem_alloc())'));
    expect(after - base).toBeLessThan(2000);
  });
});

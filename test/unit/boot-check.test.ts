/**
 * Telling how an ESP8266 came up from what it printed, each part with the rate the host
 * read it at: the verdicts, and the watch that follows the board from 74880 (its ROM) to
 * 115200 (MicroPython) and back, against a scripted line that garbles what is sent at
 * another rate as a UART would.
 */
import { describe, expect, it } from 'vitest';
import { judgeBoot, looksLikeGarbage, watchBoot, type BootLine, type BootReading } from '../../electron/manager/usb/boot-check.js';
import { resampleUart } from '../lab/esp8266/boot-console.js';

const at = (baud: number, text: string): BootReading => ({ baud, bytes: Buffer.from(text, 'latin1') });
const ROM = '\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\nload 0x40100000, len 31016, room 16 \r\ntail 8\r\nchksum 0x9a\r\ncsum 0x9a\r\n';
const CORRUPT =
  'The filesystem starting at sector 256 with size 763 sectors looks corrupt.\r\nYou may want to make a flash snapshot and try to recover it. Otherwise,\r\n';
const BANNER = 'MicroPython v1.27.0 on 2025-12-09; ESP module with ESP8266\r\nType "help()" for more information.\r\n>>> ';

describe('judging a boot', () => {
  it.each([
    ['the banner at 115200', [at(74880, ROM), at(115200, BANNER)], 'ok'],
    ['a first boot', [at(74880, ROM), at(115200, 'Performing initial setup\r\n')], 'ok'],
    ['a prompt after a poke', [at(115200, '\r\n>>> ')], 'ok'],
    ['the corrupt file system message', [at(74880, ROM), at(115200, CORRUPT)], 'fs-corrupt'],
    ['"Fatal exception (0)" at 74880', [at(74880, `${ROM}Fatal exception (0): \r\nepc1=0x40100004, epc2=0x00000000\r\n`)], 'crash'],
    ['the SDK\'s "Fatal exception 0(IllegalInstructionCause)"', [at(74880, 'Fatal exception 0(IllegalInstructionCause):\r\nepc1=0x4010000c')], 'crash'],
    ['the ROM finding no image', [at(74880, '\r\n ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\nets_main.c \r\n')], 'crash'],
    ['a checksum the ROM does not accept', [at(74880, ROM.replace('csum 0x9a', 'csum 0x11'))], 'crash'],
    ['the ROM lines three times (two resets nobody asked for)', [at(74880, ROM.repeat(3))], 'boot-loop'],
    [
      'a boot loop read while the last load log was still being printed (no checksum error)',
      [
        at(
          74880,
          ROM.replace('tail 8', 'tail 8\r\nchksum 0x11\r\nload 0x3ffe8000, len 4, room 4 \r\ntail 4').repeat(3) +
            ROM.slice(0, ROM.indexOf('chksum 0x9a')) +
            'chksum 0x11\r\n',
        ),
      ],
      'boot-loop',
    ],
    ['a restart into the bootloader', [at(74880, `${ROM}\r\n ets Jan  8 2013,rst cause:4, boot mode:(1,7)\r\n`)], 'crash'],
  ])('%s', (_what, readings, verdict) => {
    expect(judgeBoot(readings, { expectedResets: 1 })?.verdict).toBe(verdict);
  });

  it('says nothing yet for the ROM lines alone, garbage, or nothing', () => {
    expect(judgeBoot([at(74880, ROM)], { expectedResets: 1 })).toBeNull();
    expect(judgeBoot([{ baud: 115200, bytes: resampleUart(Buffer.from(ROM), 74880, 115200) }])).toBeNull();
    expect(judgeBoot([])).toBeNull();
  });

  it('counts the resets its own start caused: after "run user code" one ROM line is already a restart', () => {
    expect(judgeBoot([at(74880, ROM.repeat(2))], { expectedResets: 1 })).toBeNull();
    expect(judgeBoot([at(74880, ROM.repeat(2))], { expectedResets: 0 })?.verdict).toBe('boot-loop');
  });

  it('names what it saw, with the rate', () => {
    expect(judgeBoot([at(74880, 'Fatal exception (0): ')])?.evidence).toBe('Fatal exception (0) at 74880 baud');
    expect(judgeBoot([at(115200, CORRUPT)])?.evidence).toMatch(/sector 256 with size 763 sectors looks corrupt/);
  });

  it('knows garbage: text sent at 74880 and read at 115200 is mostly NULs', () => {
    expect(looksLikeGarbage(resampleUart(Buffer.from(ROM), 74880, 115200))).toBe(true);
    expect(looksLikeGarbage(resampleUart(Buffer.from(BANNER), 115200, 74880))).toBe(true);
    expect(looksLikeGarbage(Buffer.from(BANNER))).toBe(false);
  });
});

/**
 * A board on a line: `script` says what it sends at which rate, after how many ms from the
 * start; the host reads it through the rate its port had when it was sent (garbled when
 * the two differ), whenever the host looks. `echoPrompt`: a REPL answers a carriage return
 * with a prompt, `echoDelayMs` later.
 */
function scriptedLine(script: { afterMs: number; baud: number; text: string }[], options: { echoPrompt?: boolean; echoDelayMs?: number } = {}) {
  let received = Buffer.alloc(0);
  // The script's clock starts when the host first touches the line, not when the script is
  // made: on a loaded machine a few ms can pass in between, and data scripted for the start
  // would be read at the rate the line had before the host set its own.
  let started: number | undefined;
  const elapsedMs = () => Date.now() - (started ??= Date.now());
  const rates: number[] = [];
  const rateChanges: { atMs: number; baud: number }[] = [{ atMs: -Infinity, baud: 115_200 }];
  const writes: number[][] = [];
  const pending = [...script];
  const hostBaudAt = (atMs: number) => rateChanges.filter((change) => change.atMs <= atMs).at(-1)!.baud;
  const line: BootLine = {
    received: () => {
      const now = elapsedMs();
      while (pending.length > 0 && now >= pending[0]!.afterMs) {
        const next = pending.shift()!;
        const bytes = Buffer.from(next.text, 'latin1');
        const host = hostBaudAt(next.afterMs);
        received = Buffer.concat([received, next.baud === host ? bytes : resampleUart(bytes, next.baud, host)]);
      }
      return received;
    },
    setBaud: async (baud) => {
      rateChanges.push({ atMs: elapsedMs(), baud });
      rates.push(baud);
    },
    write: async (data) => {
      writes.push([...data]);
      if (!options.echoPrompt) return;
      pending.push({ afterMs: elapsedMs() + (options.echoDelayMs ?? 0), baud: 115_200, text: '\r\n>>> ' });
      pending.sort((a, b) => a.afterMs - b.afterMs);
    },
  };
  return { line, rates, writes };
}

describe('watching a boot', () => {
  it('reads the ROM at 74880, then MicroPython at 115200', async () => {
    const { line, rates } = scriptedLine([
      { afterMs: 5, baud: 74880, text: ROM },
      { afterMs: 250, baud: 115200, text: BANNER },
    ]);
    const watch = await watchBoot(line, { watchMs: 3000, readRom: true, expectedResets: 1, pollMs: 5 });
    expect(watch.verdict).toBe('ok');
    expect(rates).toEqual([74880, 115200]);
    expect(watch.readings.map((reading) => reading.baud)).toEqual([74880, 115200]);
    expect(Buffer.from(watch.readings[0]!.bytes).toString('latin1')).toContain('rst cause:2, boot mode:(3,6)');
  });

  it('sees an early crash at 74880 and a boot loop through it', async () => {
    const crash = `${ROM}Fatal exception (0): \r\nepc1=0x40100004\r\n`;
    const { line } = scriptedLine([{ afterMs: 5, baud: 74880, text: crash }]);
    expect((await watchBoot(line, { watchMs: 3000, readRom: true, expectedResets: 1, pollMs: 5 })).verdict).toBe('crash');
    // A board that resets every 150 ms without a word of its own (a watchdog, say).
    const loop = scriptedLine(Array.from({ length: 12 }, (_, i) => ({ afterMs: 5 + 150 * i, baud: 74880, text: ROM })));
    expect((await watchBoot(loop.line, { watchMs: 3000, readRom: true, expectedResets: 1, pollMs: 5 })).verdict).toBe('boot-loop');
  });

  it('goes back to 74880 when garbage says the ROM talks again', async () => {
    const { line, rates } = scriptedLine([
      { afterMs: 5, baud: 74880, text: ROM },
      { afterMs: 400, baud: 74880, text: `${ROM}${'x'.repeat(40)}` },
      { afterMs: 700, baud: 74880, text: `${ROM}${ROM}` },
    ]);
    const watch = await watchBoot(line, { watchMs: 3000, readRom: true, expectedResets: 1, pollMs: 5 });
    expect(rates.slice(0, 3)).toEqual([74880, 115200, 74880]);
    expect(watch.verdict).toBe('boot-loop');
  });

  it('pokes a quiet board with a carriage return; a REPL answers with a prompt', async () => {
    const { line, writes } = scriptedLine([{ afterMs: 5, baud: 74880, text: ROM }], { echoPrompt: true });
    const watch = await watchBoot(line, { watchMs: 4000, readRom: true, expectedResets: 1, pollMs: 5 });
    expect(writes).toEqual([[13]]);
    expect(watch.verdict).toBe('ok');
  });

  it('a busy computer: a prompt that answers the poke after watchMs still counts', async () => {
    const { line, writes } = scriptedLine([{ afterMs: 5, baud: 74880, text: ROM }], { echoPrompt: true, echoDelayMs: 500 });
    // The poke goes out ~0.9 s in; its answer comes after the 1 s watch: it is waited for.
    const watch = await watchBoot(line, { watchMs: 1000, readRom: true, expectedResets: 1, pollMs: 5 });
    expect(writes).toEqual([[13]]);
    expect(watch.verdict).toBe('ok');
  });

  it('a busy computer: what the board printed before the watch began is read (romFrom)', async () => {
    // The caller set 74880 and started the board; the crash was printed before the watch's first look.
    const { line, rates } = scriptedLine([{ afterMs: 0, baud: 74880, text: `${ROM}Fatal exception (0): \r\nepc1=0x40100004\r\n` }]);
    await line.setBaud(74880);
    line.received();
    const watch = await watchBoot(line, { watchMs: 1000, readRom: true, romFrom: 0, expectedResets: 1, pollMs: 5 });
    expect(watch).toMatchObject({ verdict: 'crash', evidence: 'Fatal exception (0) at 74880 baud' });
    expect(rates).toEqual([74880, 115200]);
  });

  it('a busy computer: a crash read only as garbage at 115200 after the image loaded is still a crash', async () => {
    // The watch had gone to 115200 when the early crash and the restart into the bootloader
    // came, both at 74880, in one burst (the board's output reached the host late); back at
    // 74880 it hears nothing more. Their words are lost, but a firmware that runs never
    // talks at another rate than 115200.
    const crashThenBootloader = `Fatal exception (0): \r\nepc1=0x40100004\r\n\r\n ets Jan  8 2013,rst cause:4, boot mode:(1,7)\r\n\r\nwaiting for host\r\n`;
    const { line, rates } = scriptedLine([
      { afterMs: 5, baud: 74880, text: ROM },
      { afterMs: 400, baud: 74880, text: crashThenBootloader },
    ]);
    const watch = await watchBoot(line, { watchMs: 1200, readRom: true, expectedResets: 1, pollMs: 5 });
    expect(rates.slice(0, 3)).toEqual([74880, 115200, 74880]);
    expect(watch).toMatchObject({
      verdict: 'crash',
      evidence: expect.stringMatching(/^after the ROM loaded the image the board printed \d+ bytes at another rate/),
    });
    expect(rates.at(-1)).toBe(115200);
  });

  it('silent when nothing conclusive comes, ending at 115200', async () => {
    const { line, rates } = scriptedLine([{ afterMs: 5, baud: 74880, text: ROM }]);
    const watch = await watchBoot(line, { watchMs: 1200, readRom: true, expectedResets: 1, pollMs: 5 });
    expect(watch.verdict).toBe('silent');
    expect(watch.evidence).toMatch(/only the ROM's boot lines/);
    expect(rates.at(-1)).toBe(115200);
  });
});

/**
 * The REPL simulator as a host sees it through a real pty at 115200 baud: the banner at
 * boot, the friendly REPL, Ctrl-C into a running program (our real firmware included),
 * the raw REPL and raw-paste mode byte for byte as shared/runtime/pyexec.c produces them,
 * and soft resets.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LAB_WIFI, provisionFolder } from '../../../electron/manager/virtual/micropython-fleet.js';
import { freePort } from '../../helpers/free-port.js';
import { waitFor } from '../../helpers/lab.js';
import { HostTerminal, makeReplLab, type ReplLab } from './repl-lab.js';

const BANNER = 'MicroPython v1.27.0 on 2025-12-10; ESP module with ESP8266\r\nType "help()" for more information.\r\n>>> ';
const RAW = 'raw REPL; CTRL-B to exit\r\n>';

const labs: ReplLab[] = [];
const terminals: HostTerminal[] = [];
const folders: string[] = [];
const servers: net.Server[] = [];

async function open(files: Record<string, string> = {}, options: Parameters<typeof makeReplLab>[1] = {}) {
  const lab = await makeReplLab(files, options);
  labs.push(lab);
  const host = await HostTerminal.open(lab.link);
  terminals.push(host);
  return { lab, host };
}

/** A lab REPL in raw-paste mode, the board's header (window size) read. */
async function inRawPaste() {
  const { lab, host } = await open();
  await lab.repl.start();
  await host.take(BANNER);
  host.write('\x01');
  await host.take(RAW);
  host.write('\x05A\x01');
  await host.take(/R\x01[\s\S]{3}/);
  return { lab, host };
}

afterEach(async () => {
  await Promise.all(terminals.splice(0).map((t) => t.close()));
  await Promise.all(labs.splice(0).map((lab) => lab.close()));
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

describe('MicroPython REPL simulator', () => {
  it('prints the banner at boot and runs lines in the friendly REPL, with echo', async () => {
    const { lab, host } = await open({ 'boot.py': 'print("boot.py ran")\n' });
    await lab.repl.start();
    expect(await host.take(BANNER)).toBe(`boot.py ran\r\n\r\n${BANNER}`);
    host.write('1 + 1\r');
    expect(await host.take('>>> ')).toBe('1 + 1\r\n2\r\n>>> ');
    host.write('x = 6 * 7\rprint(x)\r');
    expect(await host.take(/print\(x\)\r\n42\r\n>>> /)).toBe('x = 6 * 7\r\n>>> print(x)\r\n42\r\n>>> ');
    host.write('for i in range(2):\r');
    expect(await host.take('...     ')).toBe('for i in range(2):\r\n...     ');
    host.write('print(i)\r\r');
    expect(await host.take(/1\r\n>>> /)).toBe('print(i)\r\n...     \r\n0\r\n1\r\n>>> ');
    host.write('1/0\r');
    expect(await host.take(/>>> $/)).toBe(
      '1/0\r\nTraceback (most recent call last):\r\n  File "<stdin>", line 1, in <module>\r\nZeroDivisionError: divide by zero\r\n>>> ',
    );
    host.write('abc\x03');
    expect(await host.take('>>> ')).toBe('abc\r\n>>> ');
    host.write('\x02');
    expect(await host.take(BANNER)).toBe(`\r\n${BANNER}`);
  });

  it('raw REPL: OK, stdout, \\x04, stderr, \\x04> exactly; Ctrl-C clears; Ctrl-B leaves', async () => {
    const { lab, host } = await open();
    await lab.repl.start();
    await host.take(BANNER);
    host.write('\r\x01');
    expect(await host.take(RAW)).toBe(`\r\n>>> \r\n${RAW}`);
    host.write('print("out")\nraise ValueError("bad")\x04');
    expect(await host.take(/\x04>$/)).toBe(
      'OKout\r\n\x04Traceback (most recent call last):\r\n  File "<stdin>", line 2, in <module>\r\nValueError: bad\r\n\x04>',
    );
    host.write('print("dropped")\x03print(2)\x04');
    expect(await host.take(/\x04>$/)).toBe('OK2\r\n\x04\x04>');
    host.write('\x02');
    expect(await host.take(BANNER)).toBe(`\r\n${BANNER}`);
  });

  it('raw-paste: R\\x01, a 128-byte window and two windows of credit, one \\x01 per window consumed', async () => {
    const { lab, host } = await open();
    await lab.repl.start();
    await host.take(BANNER);
    host.write('\x01');
    await host.take(RAW);
    host.write('\x05A\x01');
    expect(await host.take('R\x01')).toBe('R\x01');
    const header = await host.take(/^[\s\S]{3}/);
    expect([...Buffer.from(header, 'latin1')]).toEqual([128, 0, 1]);
    // 256 bytes: exactly the credit; the board grants a window for each 128 consumed.
    const code = `x = ${JSON.stringify('a'.repeat(235))}\nprint(len(x))\n`;
    expect(code.length).toBe(256);
    host.write(code);
    expect(await host.take('\x01\x01')).toBe('\x01\x01');
    host.write('\x04');
    expect(await host.take(/\x04>$/)).toBe('\x04235\r\n\x04\x04>');
    // Ctrl-C instead of Ctrl-D abandons the paste.
    host.write('\x05A\x01');
    await host.take(/R\x01[\s\S]{3}/);
    host.write('print(1)\x03');
    expect(await host.take(/\x04>$/)).toBe('\x04\x04KeyboardInterrupt: \r\n\x04>');
    expect(lab.repl.stats.creditViolations).toBe(0);
  });

  it("raw-paste ends early at a syntax error, as the board's compiler does: \\x04, input dropped until the host's \\x04, then the error", async () => {
    const { lab, host } = await inRawPaste();
    // Line 2 cannot be mended by anything after it; 2.4 KB follow.
    const code = `x = 1\ny = = 2\n${'z = 3\n'.repeat(400)}`;
    host.write(code.slice(0, 256)); // the credit granted
    expect(await host.take('\x04')).toBe('\x04'); // instead of a \x01: no more credit, the paste is over
    host.write(code.slice(256, 512)); // already on its way: dropped
    host.write('\x04');
    expect(await host.take(/\x04>$/)).toBe('\x04Traceback (most recent call last):\r\n  File "<stdin>", line 2\r\nSyntaxError: invalid syntax\r\n\x04>');
    expect(lab.repl.stats.rawPasteEarlyEnds).toBe(1);
    expect(lab.repl.stats.creditViolations).toBe(0);
    // In step with the host: the next exec runs.
    host.write('print(7)\x04');
    expect(await host.take(/\x04>$/)).toBe('OK7\r\n\x04\x04>');
  });

  it('raw-paste does not end early for code that later lines complete (a triple-quoted string, a try block)', async () => {
    const { lab, host } = await inRawPaste();
    const code = `s = """\n${'line of a long text\n'.repeat(30)}"""\ntry:\n${'    n = 1\n'.repeat(30)}except OSError:\n    pass\nprint(len(s))\n`;
    let credit = 256;
    for (let sent = 0; sent < code.length;) {
      if (credit === 0) {
        await host.take('\x01');
        credit += 128;
        continue;
      }
      const n = Math.min(credit, code.length - sent);
      host.write(code.slice(sent, sent + n));
      sent += n;
      credit -= n;
    }
    host.write('\x04');
    expect(await host.take(/\x04>$/)).toMatch(/^\x01*\x04601\r\n\x04\x04>$/);
    expect(lab.repl.stats.rawPasteEarlyEnds).toBe(0);
  });

  it('rawPaste: false answers R\\x00 and a prompt', async () => {
    const { lab, host } = await open({}, { repl: { rawPaste: false } });
    await lab.repl.start();
    await host.take(BANNER);
    host.write('\x01');
    await host.take(RAW);
    host.write('\x05A\x01');
    expect(await host.take('>')).toBe('R\x00>');
  });

  it('soft reset: in the raw REPL boot.py runs but not main.py; in the friendly REPL both', async () => {
    const { lab, host } = await open({ 'boot.py': 'print("boot")\n', 'main.py': 'print("main")\n' });
    await lab.repl.start();
    expect(await host.take(BANNER)).toBe(`boot\r\nmain\r\n\r\n${BANNER}`);
    host.write('\x01');
    await host.take(RAW);
    host.write('\x04');
    expect(await host.take(RAW)).toBe(`OK\r\nMPY: soft reboot\r\nboot\r\n${RAW}`);
    host.write('\x02');
    await host.take(BANNER);
    host.write('\x04');
    expect(await host.take(BANNER)).toBe(`\r\nMPY: soft reboot\r\nboot\r\nmain\r\n${BANNER}`);
  });

  it('friendly paste mode (Ctrl-E), sys.exit() soft-resets, a busy board keeps 255 bytes of input', async () => {
    const { lab, host } = await open({ 'main.py': 'print("main")\n' });
    await lab.repl.start();
    await host.take(BANNER);
    host.write('\x05');
    expect(await host.take('=== ')).toBe('\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ');
    host.write('a = 2\rprint(a * 21)\r\x04');
    expect(await host.take(/42\r\n>>> /)).toBe('a = 2\r\n=== print(a * 21)\r\n=== \r\n42\r\n>>> ');
    host.write('import sys; sys.exit()\r');
    expect(await host.take(BANNER)).toBe(`import sys; sys.exit()\r\nMPY: soft reboot\r\nmain\r\n${BANNER}`);
    // While a line runs, what the host types waits in the REPL's 256-byte ring buffer
    // (255 usable); more is lost.
    host.write(`import time; time.sleep_ms(300)\r${'x'.repeat(300)}`);
    expect(await host.take(`>>> ${'x'.repeat(255)}`)).toBe(`import time; time.sleep_ms(300)\r\n>>> ${'x'.repeat(255)}`);
    expect(lab.repl.stats.overruns).toBe(45);
    // Exactly those 255 made it: they are the next line.
    host.write('\r');
    expect(await host.take(/>>> $/)).toBe(
      `\r\nTraceback (most recent call last):\r\n  File "<stdin>", line 1, in <module>\r\nNameError: name '${'x'.repeat(255)}' isn't defined\r\n>>> `,
    );
  });

  it('Ctrl-C interrupts main.py (asleep) with a KeyboardInterrupt traceback, then the REPL', async () => {
    const { lab, host } = await open({ 'main.py': 'import time\nprint("running")\nwhile True:\n    time.sleep(1)\n' });
    await lab.repl.start();
    await host.take('running\r\n');
    host.write('\x03');
    // Promptly, not after the second-long sleep: the interrupt wakes it (how fast is not a test's business).
    expect(await host.take(BANNER)).toBe(`Traceback (most recent call last):\r\n  File "main.py", line 4, in <module>\r\nKeyboardInterrupt: \r\n\r\n${BANNER}`);
    host.write('print("at the REPL")\r');
    expect(await host.take(/REPL\r\n>>> /)).toContain('at the REPL\r\n>>> ');
  });

  it('Ctrl-C interrupts our real firmware (retrying a server that hangs up) and gives a prompt', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'cm-repl-fw-'));
    folders.push(folder);
    // A "server" that hangs up on every connection: the firmware keeps retrying it.
    let attempts = 0;
    const server = net.createServer((socket) => {
      attempts++;
      socket.destroy();
    });
    servers.push(server);
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    const credentials = { v: 1, id: 'repl-fw-1', name: 'repl-fw-1', user: 'cmb-repl-fw-1', password: 'secret-password', server: '127.0.0.1', port: 1, hb: 5 };
    await provisionFolder(folder, credentials, { host: '127.0.0.1', port });
    const { lab, host } = await open({}, { folder, board: { wifi: LAB_WIFI } });
    await lab.repl.start();
    expect(lab.repl.state).toBe('program');
    await waitFor(() => attempts >= 1, 15_000, 'the firmware to try the server');
    host.write('\r\x03\x03');
    const text = await host.take(BANNER, 5000);
    expect(text).toMatch(/Traceback \(most recent call last\):\r\n[\s\S]*KeyboardInterrupt: \r\n\r\n/);
    expect(lab.board.mode).toBe('idle');
    host.write('\x01');
    await host.take(RAW);
    host.write('print(client.__class__.__name__)\x04');
    expect(await host.take(/\x04>$/)).toBe('OKClient\r\n\x04\x04>');
  });
});

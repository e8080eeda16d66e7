/**
 * npm run lab:flash-loop -- [--runs 20] [--data-dir DIR]
 *
 * The README's flash walkthrough, repeated on fresh lab boards: for each run a new
 * simulated NodeMCU (`lab:esp8266 --adapter auto`, its own folder), `mbm board-flash` of a
 * test image with the lab's wifi, then a check of what the CLI said against the truth:
 * a run that printed "is online" must have a board the service lists online. Every third
 * board hangs on its first start (`--silent-boots 1`: restarted, then online), every
 * seventh never starts (`--silent-boots 9`: must fail, saying what to do). Prints one line
 * per run and the counts; exits 1 on any false success.
 *
 * Needs the build (dist/) and a free data folder: the service is started for the loop and
 * stopped at the end.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, 'data-dir': { type: 'string' } } });
const runs = Number(values.runs);
const work = await mkdtemp(path.join(os.tmpdir(), 'cm-flash-loop-'));
const dataDir = values['data-dir'] ?? path.join(work, 'data');

function run(command, args, { input } = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    child.on('close', (code) => resolve({ code, out }));
    child.stdin.end(input ?? '');
  });
}
const mbm = (...args) => run(process.execPath, ['bin/mbm.js', ...args, '--data-dir', dataDir]);

/** Starts a lab board; resolves with its RFC 2217 port and a stop function. */
function labBoard(folder, silentBoots) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['dist/test/lab/cli/esp8266.js', '--adapter', 'auto', '--port', '0', '--dir', folder, '--silent-boots', String(silentBoots)],
      { cwd: root },
    );
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk;
      const port = /rfc2217:\/\/127\.0\.0\.1:(\d+)/.exec(text)?.[1];
      if (port)
        resolve({
          port,
          stop: () =>
            new Promise((done) => {
              child.once('close', done);
              child.kill('SIGINT');
            }),
        });
    });
    child.on('close', (code) => reject(new Error(`the lab board ended (${code}): ${text}`)));
  });
}

const image = path.join(work, 'micropython.bin');
const wifi = path.join(work, 'wifi.txt');
await run(process.execPath, ['dist/test/lab/cli/make-image.js', image, '--size', '600000']);
await import('node:fs/promises').then((fs) => fs.writeFile(wifi, 'lab-password\n'));
const started = await mbm('server-start');
if (started.code !== 0) throw new Error(`server-start failed: ${started.out}`);
const counts = { online: 0, failedWithAdvice: 0, falseSuccess: 0, other: 0 };
try {
  for (let i = 1; i <= runs; i++) {
    const silentBoots = i % 7 === 0 ? 9 : i % 3 === 0 ? 1 : 0;
    const board = await labBoard(path.join(work, `board-${i}`), silentBoots);
    const name = `loop-${i}`;
    const began = Date.now();
    const flash = await mbm(
      'board-flash',
      '--port',
      `rfc2217://127.0.0.1:${board.port}`,
      '--firmware',
      image,
      '--name',
      name,
      '--wifi-ssid',
      'cloudmanager-lab',
      '--wifi-password-file',
      wifi,
    );
    const listed = await mbm('board-list', '--json');
    const truth = JSON.parse(listed.out || '[]').find((b) => b.name === name)?.online === true;
    await board.stop();
    const saidOnline = new RegExp(`^${name} is online\\.$`, 'm').test(flash.out);
    const saidFlashed = /^Flashed /m.test(flash.out);
    // A claim of success ("Flashed …", "… is online.", exit 0) must be true: the board online.
    const claimed = flash.code === 0 || saidOnline || saidFlashed;
    let verdict;
    if (claimed) verdict = flash.code === 0 && saidOnline && truth ? 'online' : 'falseSuccess';
    else verdict = /(press RESET|Unplug the board|check the)/.test(flash.out) ? 'failedWithAdvice' : 'other';
    counts[verdict]++;
    const last = flash.out.trim().split('\n').at(-1);
    process.stdout.write(`run ${i} (silent boots ${silentBoots}): ${verdict}, exit ${flash.code}, ${((Date.now() - began) / 1000).toFixed(1)} s — ${last}\n`);
  }
} finally {
  await mbm('server-stop');
  if (!values['data-dir']) await rm(work, { recursive: true, force: true });
}
process.stdout.write(
  `${runs} runs: ${counts.online} online, ${counts.failedWithAdvice} failed saying what to do, ${counts.falseSuccess} false successes, ${counts.other} other\n`,
);
process.exit(counts.falseSuccess === 0 && counts.other === 0 ? 0 : 1);

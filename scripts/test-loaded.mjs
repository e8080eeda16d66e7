// `npm run test:loaded [-- vitest args]`: the test suite on a busy machine. Builds first
// (npm's pretest, unloaded: the build is not what is tested), then keeps every core busy
// with one spinning node process per core at normal priority — they really compete with
// the tests — runs `npm test` without its pretest, stops the spinners and exits with
// vitest's code. Tests that pass only on an idle machine (wall-clock thresholds, fixed
// sleeps, boot watches timed by the clock) fail here.
import { spawn } from 'node:child_process';
import os from 'node:os';

const args = process.argv.slice(2);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

// Spins in 50 ms slices so its event loop still runs: when the IPC channel to this script
// closes (the script ended, however it ended — even SIGKILL), the spinner exits too.
const SPINNER = `
process.on('disconnect', () => process.exit(0));
const spin = () => { const end = Date.now() + 50; while (Date.now() < end); setImmediate(spin); };
spin();`;

/** @type {import('node:child_process').ChildProcess[]} */
const spinners = [];
/** @type {import('node:child_process').ChildProcess | null} */
let tests = null;
let stopping = false;

function startSpinners(count) {
  for (let i = 0; i < count; i++) {
    spinners.push(spawn(process.execPath, ['-e', SPINNER], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
  }
}

function stopSpinners() {
  for (const spinner of spinners.splice(0)) {
    if (spinner.exitCode === null && spinner.signalCode === null) spinner.kill('SIGKILL');
  }
}

/** Runs npm with `npmArgs`, output to this terminal; resolves with its exit code. */
function runNpm(npmArgs) {
  return new Promise((resolve) => {
    tests = spawn(npm, npmArgs, { stdio: 'inherit' });
    tests.on('error', (error) => {
      console.error(`test:loaded: could not run npm: ${error.message}`);
      resolve(1);
    });
    tests.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

process.on('exit', stopSpinners);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    stopping = true;
    stopSpinners();
    // Ctrl-C reaches the whole foreground group; SIGTERM/SIGHUP sent to this script alone
    // must still end the tests (vitest stops its workers on SIGTERM).
    if (tests && tests.exitCode === null) tests.kill('SIGTERM');
  });
}

const built = await runNpm(['run', 'pretest']);
if (stopping) process.exit(130);
if (built !== 0) {
  console.error('test:loaded: the build (npm run pretest) failed');
  process.exit(built);
}
const cores = os.availableParallelism();
startSpinners(cores);
console.log(
  `test:loaded: ${cores} spinning process${cores === 1 ? '' : 'es'} keep${cores === 1 ? 's' : ''} ${cores === 1 ? 'the core' : `all ${cores} cores`} busy while the tests run`,
);
const code = await runNpm(['test', '--ignore-scripts', '--', ...args]);
stopSpinners();
process.exit(stopping ? 130 : code);

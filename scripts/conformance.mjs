// `npm run conformance -- --board-cmd "CMD {creds} {fs}"`: the protocol conformance suite
// (test/helpers/board-conformance.ts) against any board process. For each of three boards
// the suite starts CMD with `{creds}` replaced by the board's credentials file
// (firmware/PROTOCOL.md §1) and `{fs}` by a folder that is its flash; it stops the process
// with SIGKILL for a power cut and SIGTERM at the end. Prints `N passed, N failed` last and
// exits non-zero on any failure. npm's preconformance builds the lab boards (dist/test/lab).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const USAGE = `usage: npm run conformance -- --board-cmd "CMD {creds} {fs}"
  Runs the protocol conformance suite against three board processes started from CMD:
  {creds}  the board's credentials file (JSON, firmware/PROTOCOL.md §1: server, port, user, password, …)
  {fs}     a folder that is the board's flash; it must keep its files there across restarts
  The command is split into words like a shell does (quotes, backslashes) and run without a shell.
  Power loss is SIGKILL, the end of the run SIGTERM. Each board's output is kept in a log on failure.
example: npm run conformance -- --board-cmd "node dist/test/lab/cli/board.js --kind reference {creds} {fs}"
`;

function usageError(message) {
  process.stderr.write(`conformance: ${message}\n${USAGE}`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({ options: { 'board-cmd': { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
} catch (error) {
  usageError(error.message);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const command = values['board-cmd']?.trim();
if (!command) usageError('--board-cmd is required');
for (const placeholder of ['{creds}', '{fs}']) {
  if (!command.includes(placeholder))
    usageError(`--board-cmd must contain ${placeholder} (where the board's ${placeholder === '{fs}' ? 'flash folder' : 'credentials file'} goes)`);
}

const root = fileURLToPath(new URL('..', import.meta.url));
const work = await mkdtemp(path.join(os.tmpdir(), 'cm-conformance-'));
const report = path.join(work, 'report.json');
const logDir = path.join(work, 'board-logs');
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const code = await new Promise((resolve) => {
  const child = spawn(
    process.execPath,
    [vitest, 'run', '--config', 'test/conformance/vitest.config.ts', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`],
    { cwd: root, stdio: 'inherit', env: { ...process.env, CM_BOARD_CMD: command, CM_BOARD_LOG_DIR: logDir } },
  );
  child.on('error', (error) => {
    process.stderr.write(`conformance: could not run vitest: ${error.message}\n`);
    resolve(1);
  });
  child.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
  // Ctrl-C reaches vitest too (same foreground group); SIGTERM to this script alone is passed on.
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  process.on('SIGINT', () => undefined);
});

let passed = 0;
let failed = 0;
try {
  const results = JSON.parse(await readFile(report, 'utf8'));
  passed = results.numPassedTests;
  // A suite whose setup failed (the boards never came online) counts each of its tests as failed.
  failed = results.numFailedTests + (results.numPassedTests + results.numFailedTests === 0 ? results.numTotalTests : 0);
} catch (error) {
  process.stderr.write(`conformance: vitest left no report (${error.message})\n`);
}
const ok = code === 0 && failed === 0 && passed > 0;
if (ok) await rm(work, { recursive: true, force: true });
else process.stdout.write(`each board's output: ${logDir}\n`);
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exit(ok ? 0 : 1);

/**
 * node dist/test/lab/cli/board.js --kind reference|micropython CREDS FS
 *
 * Runs ONE board of the lab as a process of its own, so anything that judges a board
 * process (`npm run conformance`) can judge ours the same way it judges another client:
 * - CREDS: the credentials file of firmware/PROTOCOL.md §1; its `server`/`port` say where
 *   the board connects.
 * - FS: a host folder that is the board's flash and outlives the process. The MicroPython
 *   board gets what provisioning writes on its first start (kept if already there); the
 *   reference board keeps its files there and its settings in `/cm_config.json`.
 * SIGTERM/SIGINT is a clean shutdown (the board says bye); SIGKILL is a power cut.
 */
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { BoardCredentials } from '../../../electron/manager/fleet/fleet.js';
import { CONFIG_PATH } from '../../../electron/manager/fleet/provisioning-payload.js';
import { HostFolderFs } from '../../../electron/manager/virtual/board-fs.js';
import { MicroPythonInterpreter } from '../../../electron/manager/virtual/micropython-interpreter.js';
import { LAB_WIFI, provisionFolder } from '../../../electron/manager/virtual/micropython-fleet.js';
import { MicroPythonBoard } from '../../../electron/manager/virtual/micropython-board.js';
import { ReferenceBoard, sayByeAlone } from '../../../electron/manager/virtual/reference-board.js';

const USAGE =
  'usage: node dist/test/lab/cli/board.js --kind reference|micropython CREDS FS\n' +
  "  CREDS  the board's credentials file (JSON, firmware/PROTOCOL.md §1); server and port say where it connects\n" +
  "  FS     a folder that is the board's flash; it keeps its files (and settings) there across restarts\n" +
  'SIGTERM or Ctrl-C shuts the board down cleanly (it says bye); SIGKILL is a power cut.\n';
const KINDS = ['reference', 'micropython'] as const;
type Kind = (typeof KINDS)[number];

function fail(message: string, code = 2): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

const log = (message: string) => process.stderr.write(`[board] ${message}\n`);

/** Reads and checks a credentials file: a user gets told which field is wrong. */
async function readCredentials(file: string): Promise<BoardCredentials> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    fail(`cannot read the credentials file ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const value = parsed as Record<string, unknown>;
  const wrong = (['id', 'name', 'user', 'password', 'server'] as const).filter((key) => typeof value?.[key] !== 'string' || value[key] === '');
  if (!Number.isInteger(value?.port) || (value.port as number) < 1 || (value.port as number) > 65_535) wrong.push('port' as never);
  if (!Number.isInteger(value?.hb) || (value.hb as number) < 1 || (value.hb as number) > 300) wrong.push('hb' as never);
  if (wrong.length > 0) fail(`the credentials file ${file} lacks a valid ${wrong.join(', ')} (see firmware/PROTOCOL.md §1)`);
  return value as unknown as BoardCredentials;
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

async function writePrivate(file: string, text: string): Promise<void> {
  await writeFile(file, text, { mode: 0o600 });
  await chmod(file, 0o600); // the mode of writeFile applies only to a new file
}

/** The board's own config, as a board keeps it: what is in FS, or the credentials on a first start. */
async function readBoardConfig(fsDir: string): Promise<Record<string, unknown> | null> {
  const file = path.join(fsDir, CONFIG_PATH);
  if (!(await exists(file))) return null;
  try {
    return JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    fail(
      `the board's settings ${file} are not JSON (${error instanceof Error ? error.message : String(error)}): remove the file to start from the credentials again`,
      1,
    );
  }
}

/**
 * The bye of a board being switched off on purpose, sent with the board's own credentials
 * after its program stopped: the MicroPython client has no shutdown of its own, and a bye
 * sent while it waits in XREAD BLOCK would sit behind that call on its connection.
 */
function sayBye(config: Record<string, unknown>): Promise<void> {
  return sayByeAlone({ host: String(config.server), port: Number(config.port) }, String(config.user), String(config.password), String(config.id));
}

interface RunningBoard {
  stop(): Promise<void>;
}

async function startReference(credentials: BoardCredentials, fsDir: string): Promise<RunningBoard> {
  const configFile = path.join(fsDir, CONFIG_PATH);
  const saved = await readBoardConfig(fsDir);
  // A config saved under another id belongs to an earlier enrollment: the credentials win.
  const config = saved?.id === credentials.id ? ({ ...credentials, ...saved } as BoardCredentials) : credentials;
  if (config === credentials) await writePrivate(configFile, JSON.stringify(credentials));
  // An interpreter of its own, whose `/` is FS: exec'd code sees the board's files, and
  // finds what it wrote after a power cut, as on a real board.
  const interpreter = new MicroPythonInterpreter({ filesDir: fsDir, onLog: (level, message) => level !== 'debug' && log(`interpreter: ${message}`) });
  await interpreter.start();
  const board = new ReferenceBoard({
    credentials: config,
    fs: new HostFolderFs(fsDir),
    interpreter,
    saveConfig: (changed) => writePrivate(configFile, JSON.stringify(changed)),
  });
  board.on('connected', () => log('connected'));
  board.on('disconnected', (error) => log(`disconnected${error ? `: ${error.message}` : ''}`));
  board.on('rebooted', () => log('rebooted'));
  board.start();
  return {
    async stop() {
      await board.stop();
      await interpreter.close();
    },
  };
}

async function startMicroPython(credentials: BoardCredentials, fsDir: string): Promise<RunningBoard> {
  if ((await readBoardConfig(fsDir)) === null) {
    log(`first start: writing what provisioning writes into ${fsDir}`);
    await provisionFolder(fsDir, credentials, { host: credentials.server, port: credentials.port });
  }
  const board = new MicroPythonBoard({
    label: credentials.name,
    folder: fsDir,
    wifi: LAB_WIFI,
    onLog: (level, message) => level !== 'debug' && log(message),
  });
  board.on('stdout', (text) => process.stdout.write(text));
  board.on('stderr', (text) => process.stderr.write(text));
  board.on('reset', (reason) => log(`reset (${reason})`));
  await board.start();
  return {
    async stop() {
      await board.powerOff();
      const config = await readBoardConfig(fsDir);
      if (config) await sayBye(config).catch((error: Error) => log(`could not say bye: ${error.message}`));
    },
  };
}

const { values, positionals } = (() => {
  try {
    return parseArgs({ options: { kind: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true });
  } catch (error) {
    return fail(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
  }
})();
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (!KINDS.includes(values.kind as Kind)) fail(`--kind must be one of ${KINDS.join(', ')}\n${USAGE}`);
if (positionals.length !== 2) fail(`expected CREDS and FS, got ${positionals.length} argument(s)\n${USAGE}`);
const [credsFile, fsArg] = positionals as [string, string];
const fsDir = path.resolve(fsArg);
if (
  !(await stat(fsDir).then(
    (info) => info.isDirectory(),
    () => false,
  ))
)
  fail(`FS ${fsDir} is not a folder: create it first`);
const credentials = await readCredentials(credsFile);
const kind = values.kind as Kind;
const board = kind === 'reference' ? await startReference(credentials, fsDir) : await startMicroPython(credentials, fsDir);
process.stdout.write(`board ${credentials.name} (${kind}) connecting to ${credentials.server}:${credentials.port}, flash in ${fsDir}\n`);
const signal = await new Promise<string>((resolve) => {
  process.once('SIGINT', () => resolve('SIGINT'));
  process.once('SIGTERM', () => resolve('SIGTERM'));
});
log(`${signal}: shutting down`);
await board.stop();
process.stdout.write('bye\n');
process.exit(0);

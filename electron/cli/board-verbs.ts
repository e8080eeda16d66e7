/** The board verbs of `mbm`: the original tool's, plus the obvious ones. */
import { readFile, writeFile, rename, rm, access } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { ApiCommandRequest, CommandView } from '../manager/api/contract.js';
import { validateBoardPath, InvalidCommandError } from '../manager/fleet/command-ops.js';
import { ApiRequestError } from '../manager/api/client.js';
import { CliError, intOption, numberOption, write, type OptionSpec, type VerbContext, type VerbSpec } from './cli-framework.js';
import { connectService } from './service-control.js';
import { expireOption, jobExitCode, pollJob } from './job-follow.js';
import { reportFailures, runExitCode, runOnBoards, type RunOptions } from './board-runner.js';
import { formatAgo, formatBytes, table } from './format.js';

export const WAIT_OPTIONS: Record<string, OptionSpec> = {
  timeout: { type: 'string', valueName: 'SECONDS', description: 'time limit on the board (default 30)' },
  expire: { type: 'string', valueName: 'SECONDS', description: 'how long the command waits for an offline board (default 3600)' },
  'wait-offline': { type: 'boolean', description: 'wait for offline boards to come back and run the command' },
};

function runOptions(context: VerbContext, streamOutput = false): RunOptions {
  return {
    safeOutput: Boolean(context.values.safe),
    timeoutMs: Math.round(numberOption(context.values, 'timeout', 30, 0.1, 3600) * 1000),
    expireMs: expireOption(context.values),
    waitOffline: Boolean(context.values['wait-offline']),
    streamOutput,
    out: context.out,
    err: context.err,
  };
}

/** A path on the board, checked here so bad input gets exit code 2 before anything is sent. */
export function boardPath(value: string, what: string): string {
  try {
    return validateBoardPath(value, what);
  } catch (error) {
    if (error instanceof InvalidCommandError) throw new CliError(error.message, 2);
    throw error;
  }
}

/** DEST of a copy: a DEST ending in / keeps the local file's name. */
export function boardDest(destArg: string, file: string): string {
  return boardPath(destArg.endsWith('/') ? destArg + path.basename(file) : destArg, 'DEST');
}

/**
 * Runs a command and prints each board's result with `print`; `hint` adds what to do to a
 * failure. Exit code: EXIT.failed if any failed, EXIT.queued if some only wait for offline boards.
 */
export async function runAndReport(
  context: VerbContext,
  boards: string,
  request: ApiCommandRequest,
  print: (view: CommandView) => string,
  hint?: (view: CommandView) => string | undefined,
): Promise<number> {
  const api = await connectService(context.values);
  const outcome = await runOnBoards(api, boards, request, runOptions(context));
  for (const view of outcome.finished) {
    if (view.status !== 'ok') continue;
    const text = print(view);
    write(context.out, `## ${view.board}\n${text}${text.endsWith('\n') ? '' : '\n'}`);
  }
  return runExitCode(outcome, reportFailures(outcome.finished, context.err, hint));
}

async function readStdin(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

export const boardList: VerbSpec = {
  name: 'board-list',
  summary: 'list enrolled boards with their state and when they were last seen',
  args: [],
  options: { json: { type: 'boolean', description: 'print a JSON array (name, online, platform, lastSeen, …)' } },
  async run({ values, out }) {
    const boards = await (await connectService(values)).call('boards.list', {});
    if (values.json) {
      write(out, JSON.stringify(boards) + '\n');
      return 0;
    }
    if (boards.length === 0) {
      write(out, 'No boards enrolled yet. Enroll one with `mbm board-enroll NAME`, or try `mbm sim --boards 3`.\n');
      return 0;
    }
    write(
      out,
      table(
        ['NAME', 'STATE', 'LAST SEEN', 'PLATFORM', 'MICROPYTHON', 'IP', 'FREE', 'TAGS'],
        boards.map((board) => [
          board.name,
          board.online ? (board.busy ? 'busy' : 'online') : 'offline',
          board.online ? 'now' : formatAgo(board.lastSeen),
          // The service's own mark, not the board's word: a real board cannot pass for a virtual one.
          `${board.platform ?? '-'}${board.virtual ? ' (virtual)' : ''}`,
          board.micropython ?? '-',
          board.ip ?? '-',
          board.memFree === null ? '-' : formatBytes(board.memFree),
          board.tags.join(',') || '-',
        ]),
      ),
    );
    return 0;
  },
};

export const boardEnroll: VerbSpec = {
  name: 'board-enroll',
  summary: 'create a board with its own Redis user and write its credentials file',
  args: ['NAME'],
  options: {
    out: { type: 'string', valueName: 'FILE', description: 'credentials file to write (default NAME.credentials.json)' },
    rotate: { type: 'boolean', description: 'issue new credentials for an enrolled board (the old ones stop working)' },
    server: { type: 'string', valueName: 'HOST', description: 'address the board should use to reach Redis' },
    force: { type: 'boolean', description: 'overwrite an existing credentials file' },
  },
  details: "The credentials file holds the board's password: it is written readable by you only (0600).",
  async run({ values, positionals, out }) {
    const name = positionals[0]!;
    const file = path.resolve((values.out as string | undefined) ?? `${name}.credentials.json`);
    if (
      !values.force &&
      (await access(file).then(
        () => true,
        () => false,
      ))
    ) {
      throw new CliError(`${file} exists; pass --force to overwrite it or --out to choose another file`, 2);
    }
    const api = await connectService(values);
    let credentials;
    try {
      credentials = await api.call('boards.enroll', { name, rotate: Boolean(values.rotate), server: values.server as string | undefined });
    } catch (error) {
      if (error instanceof ApiRequestError && error.code === 'conflict' && !values.rotate) {
        throw new CliError(
          `a board named ${JSON.stringify(name)} is already enrolled; \`mbm board-enroll ${name} --rotate\` issues new credentials for it (the old ones stop working)`,
        );
      }
      throw error;
    }
    const temp = `${file}.${process.pid}.tmp`;
    await writeFile(temp, JSON.stringify(credentials, null, 2) + '\n', { mode: 0o600 });
    await rename(temp, file);
    write(
      out,
      `Enrolled ${credentials.name} (id ${credentials.id}, Redis user ${credentials.user}).\nCredentials written to ${file}; the board connects to ${credentials.server}:${credentials.port}.\n`,
    );
    return 0;
  },
};

export const boardExecute: VerbSpec = {
  name: 'board-execute',
  summary: 'run Python code on boards, streaming their output',
  args: ['BOARDS'],
  options: {
    code: { type: 'string', short: 'c', valueName: 'CODE', description: 'code to run (default: read from stdin)' },
    safe: { type: 'boolean', description: 'show control characters in the output escaped (\\u001b) instead of passing them to the terminal' },
    ...WAIT_OPTIONS,
  },
  details:
    'Examples:\n  mbm board-execute sim-1 -c "print(6*7)"\n  echo "import os; print(os.listdir())" | mbm board-execute "esp-[1-4]"\n' +
    'The output is printed as the program wrote it, escape sequences included; --safe escapes them (for output you do not trust).\n' +
    'Exit code 1 if the code failed (or timed out) on any board, 4 if it only waits for offline boards, 130 after Ctrl-C\n' +
    '(Ctrl-C cancels the code on the boards: queued commands are withdrawn, running ones asked to stop).',
  async run(context) {
    const code = typeof context.values.code === 'string' ? context.values.code : await readStdin(context.stdin);
    if (code.trim() === '') throw new CliError('no code given (use -c CODE or pipe it to stdin)', 2);
    const api = await connectService(context.values);
    const options = runOptions(context, true);
    const outcome = await runOnBoards(api, context.positionals[0]!, { op: 'exec', code, timeoutMs: options.timeoutMs }, options);
    return runExitCode(outcome, reportFailures(outcome.finished, context.err));
  },
};

export const boardUpload: VerbSpec = {
  name: 'board-upload',
  summary: 'copy a file to boards (sha256-checked, written atomically)',
  args: ['BOARDS', 'FILE', 'DEST'],
  options: WAIT_OPTIONS,
  details: "DEST is an absolute path on the board; a DEST ending in / keeps the file's name.",
  async run(context) {
    const [boards, file, destArg] = context.positionals as [string, string, string];
    const dest = boardDest(destArg, file);
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (error) {
      throw new CliError(`cannot read ${file}: ${(error as Error).message}`, 2);
    }
    return runAndReport(
      context,
      boards,
      { op: 'put', path: dest, dataBase64: data.toString('base64') },
      (view) => `${dest}: ${formatBytes(data.length)}, sha256 ${(view.result as { sha256?: string })?.sha256 ?? '?'}`,
    );
  },
};

export const boardDownload: VerbSpec = {
  name: 'board-download',
  summary: 'copy a file from a board (sha256-checked); DEST - writes to stdout',
  args: ['BOARD', 'SRC', 'DEST'],
  options: WAIT_OPTIONS,
  async run(context) {
    const [board, srcArg, dest] = context.positionals as [string, string, string];
    const src = boardPath(srcArg, 'SRC');
    const api = await connectService(context.values);
    const outcome = await runOnBoards(api, board, { op: 'get', path: src }, runOptions(context));
    const view = outcome.finished[0];
    // Not run yet (an offline board) or failed: no file is written.
    if (!view || view.status !== 'ok') return runExitCode(outcome, reportFailures(outcome.finished, context.err));
    const file = await api.call('commands.file', { cid: view.cid });
    const data = Buffer.from(file.dataBase64, 'base64');
    if (createHash('sha256').update(data).digest('hex') !== file.sha256) throw new CliError('the file was corrupted on the way (sha256 mismatch)');
    if (dest === '-') {
      context.out.write(data);
      return 0;
    }
    const target = path.resolve(dest);
    const temp = `${target}.${process.pid}.part`;
    try {
      await writeFile(temp, data);
      await rename(temp, target);
    } catch (error) {
      await rm(temp, { force: true });
      throw new CliError(`cannot write ${target}: ${(error as Error).message}`);
    }
    write(context.err, `${src} → ${target} (${formatBytes(data.length)}, sha256 ${file.sha256})\n`);
    return 0;
  },
};

function formatListing(view: CommandView): string {
  const entries = (view.result as Array<[string, string, number]>) ?? [];
  if (entries.length === 0) return '(empty)\n';
  return entries.map(([name, type, size]) => (type === 'd' ? `${''.padStart(10)}  ${name}/` : `${String(size).padStart(10)}  ${name}`)).join('\n') + '\n';
}

export const boardLs: VerbSpec = {
  name: 'board-ls',
  summary: 'list a directory on boards',
  args: ['BOARDS', 'PATH?'],
  options: WAIT_OPTIONS,
  async run(context) {
    return runAndReport(context, context.positionals[0]!, { op: 'ls', path: boardPath(context.positionals[1] ?? '/', 'PATH') }, formatListing);
  },
};

export const boardRm: VerbSpec = {
  name: 'board-rm',
  summary: 'remove a file (or, with -r, a directory tree) on boards',
  args: ['BOARDS', 'PATH'],
  options: { recursive: { type: 'boolean', short: 'r', description: 'remove a directory and everything in it' }, ...WAIT_OPTIONS },
  async run(context) {
    const target = boardPath(context.positionals[1]!, 'PATH');
    if (target === '/') throw new CliError('refusing to remove / (remove its entries one by one)', 2);
    return runAndReport(
      context,
      context.positionals[0]!,
      { op: 'rm', path: target, recursive: Boolean(context.values.recursive) },
      () => `removed ${target}`,
      (view) => (view.errorCode === 'ENOTEMPTY' ? `to remove it and everything in it: mbm board-rm ${view.board} ${target} -r` : undefined),
    );
  },
};

export const boardRename: VerbSpec = {
  name: 'board-rename',
  summary: 'rename a board (its queue and history stay with it)',
  args: ['BOARD', 'NAME'],
  options: {},
  async run({ values, positionals, out }) {
    const board = await (await connectService(values)).call('boards.rename', { board: positionals[0]!, name: positionals[1]! });
    write(out, `${positionals[0]} is now ${board.name}${board.online ? '' : ' (the board learns its new name when it comes online)'}.\n`);
    return 0;
  },
};

export const boardReboot: VerbSpec = {
  name: 'board-reboot',
  summary: 'reboot boards and wait until they are back online',
  args: ['BOARDS'],
  options: WAIT_OPTIONS,
  details:
    'A board counts as rebooted once it is online again (up to a minute, or 3 heartbeats).\n' +
    'A board flashed with BOOT/RESET pressed by hand, and not reset since, restarts into its bootloader:\n' +
    'it is reported with what to do (press RESET once).',
  async run(context) {
    const api = await connectService(context.values);
    const options = runOptions(context);
    const started = await api.call('jobs.start', { kind: 'reboot', boards: context.positionals[0]!, expireMs: options.expireMs });
    const job = await pollJob(api, started.id, { waitOffline: options.waitOffline === true, pollMs: 500 });
    for (const target of job.targets) {
      if (target.status === 'ok') write(context.out, `## ${target.board}\nrebooted, back online\n`);
      else if (target.status === 'waiting') write(context.err, `${target.board}: offline; it reboots when it comes back (--wait-offline waits for it)\n`);
      else write(context.err, `${target.board}: ${target.message ?? 'failed'}\n`);
    }
    return jobExitCode(job);
  },
};

export const boardTag: VerbSpec = {
  name: 'board-tag',
  summary: 'add (+TAG) and remove (-TAG) tags on boards',
  args: ['BOARDS', 'TAGS...'],
  positionalPattern: /^[+-][A-Za-z0-9][A-Za-z0-9_.-]*$/,
  options: {},
  details:
    'Examples:\n  mbm board-tag "esp-[1-4]" +garden -kitchen\n  mbm board-execute tag:garden -c "print(1)"\n' +
    'Tags are lower case: 1-32 characters a-z, 0-9, _, . and -. Any BOARDS argument accepts tag:NAME.',
  async run({ values, positionals, out }) {
    const [boards, ...changes] = positionals as [string, ...string[]];
    const add: string[] = [];
    const remove: string[] = [];
    for (const change of changes) {
      if (change.startsWith('+')) add.push(change.slice(1));
      else if (change.startsWith('-')) remove.push(change.slice(1));
      else throw new CliError(`${JSON.stringify(change)}: write +TAG to add a tag or -TAG to remove one`, 2);
    }
    const tagged = await (await connectService(values)).call('boards.tag', { boards, add, remove });
    write(
      out,
      table(
        ['NAME', 'TAGS'],
        tagged.map((board) => [board.name, board.tags.join(',') || '-']),
      ),
    );
    return 0;
  },
};

export const boardRemove: VerbSpec = {
  name: 'board-remove',
  summary: 'remove a board from the fleet and delete its Redis user and keys',
  args: ['BOARD'],
  options: {},
  async run({ values, positionals, out }) {
    await (await connectService(values)).call('boards.remove', { board: positionals[0]! });
    write(out, `Removed ${positionals[0]}; its credentials no longer work.\n`);
    return 0;
  },
};

export const boardHistory: VerbSpec = {
  name: 'board-history',
  summary: 'show the latest commands a board ran',
  args: ['BOARD'],
  options: { count: { type: 'string', valueName: 'N', description: 'how many (default 20)' }, json: { type: 'boolean', description: 'print JSON' } },
  async run({ values, positionals, out }) {
    const entries = await (await connectService(values)).call('boards.history', { board: positionals[0]!, count: intOption(values, 'count', 20, 1, 200) });
    if (values.json) write(out, JSON.stringify(entries) + '\n');
    else
      write(
        out,
        table(
          ['FINISHED', 'STATUS', 'COMMAND'],
          entries.map((entry) => [new Date(Number(entry.finishedAt)).toISOString().replace('T', ' ').slice(0, 19), entry.status ?? '', entry.summary ?? '']),
        ),
      );
    return 0;
  },
};

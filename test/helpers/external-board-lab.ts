/**
 * A BoardLab (board-conformance.ts) whose boards are processes started from a command
 * line, so the conformance suite can judge any board client: `{creds}` in the command
 * becomes the board's credentials file, `{fs}` its flash folder. Power off is SIGKILL,
 * power on starts the command again with the same files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BoardCredentials } from '../../electron/manager/fleet/fleet.js';
import { pathSegments } from '../../electron/manager/virtual/board-fs.js';
import { RedisFaultProxy } from '../lab/redis-fault-proxy.js';
import type { BoardLab } from './board-conformance.js';
import { startManager, waitFor } from './lab.js';

/** Splits a command line the way a POSIX shell splits words: quotes and backslashes, nothing else. */
export function splitCommand(command: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let index = 0; index < command.length; index++) {
    const char = command[index]!;
    if (quote === "'") {
      if (char === "'") quote = null;
      else word += char;
    } else if (quote === '"') {
      if (char === '"') quote = null;
      else if (char === '\\' && '"\\$`'.includes(command[index + 1] ?? '')) word += command[++index];
      else word += char;
    } else if (char === "'" || char === '"') {
      quote = char;
      inWord = true;
    } else if (char === '\\') {
      if (index + 1 >= command.length) throw new Error('the board command ends with a lone backslash');
      word += command[++index];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += char;
      inWord = true;
    }
  }
  if (quote) throw new Error(`the board command has an unclosed ${quote} quote`);
  if (inWord) words.push(word);
  return words;
}

interface BoardProcess {
  credentials: BoardCredentials;
  credsFile: string;
  fsDir: string;
  logFile: string;
  child: ChildProcess | null;
  exited: Promise<void>;
  starts: number;
}

export interface ExternalBoardLabOptions {
  /** The command line; `{creds}` and `{fs}` are replaced in each word after splitting. */
  command: string;
  /** Where each board's output goes (`<name>.log`); default: the lab's temp folder, removed on close. */
  logDir?: string;
  prefix?: string;
  onlineTimeoutMs?: number;
}

const tail = async (file: string, lines = 30) => (await readFile(file, 'utf8').catch(() => '')).split('\n').slice(-lines).join('\n');

export interface ExternalBoardLab extends BoardLab {
  /** SIGTERM, a clean shutdown, and waits for the process to end. */
  shutDown(name: string): Promise<void>;
  /** Where the board's output goes (every start appends). */
  logFile(name: string): string;
}

export async function startExternalBoardLab(options: ExternalBoardLabOptions): Promise<ExternalBoardLab> {
  const words = splitCommand(options.command);
  if (words.length === 0) throw new Error('the board command is empty');
  // 2 s, offline after 4 s of silence: with 1 s a board process that a loaded machine stalls
  // for 2 s went offline for 'no heartbeat' just before the bye a test waited for.
  const service = await startManager({ heartbeatS: 2 });
  const proxy = await RedisFaultProxy.start({ port: service.redisPort });
  const root = await mkdtemp(path.join(os.tmpdir(), 'cm-ext-boards-'));
  const logDir = options.logDir ?? root;
  const boards = new Map<string, BoardProcess>();

  const start = (board: BoardProcess) => {
    const [program, ...args] = words.map((word) => word.replaceAll('{creds}', board.credsFile).replaceAll('{fs}', board.fsDir));
    const log: WriteStream = createWriteStream(board.logFile, { flags: 'a' });
    log.write(`--- start ${++board.starts}: ${[program, ...args].join(' ')}\n`);
    const child = spawn(program!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    board.child = child;
    board.exited = new Promise<void>((resolve) => {
      let ended = false;
      const end = (why: string) => {
        if (ended) return;
        ended = true;
        log.end(`--- ${why}\n`);
        if (board.child === child) board.child = null;
        resolve();
      };
      child.once('error', (error) => end(`could not start: ${error.message}`));
      child.once('close', (code, signal) => end(`exited (${signal ?? `code ${code}`})`));
    });
  };
  const stop = async (board: BoardProcess, signal: NodeJS.Signals) => {
    if (!board.child) return;
    board.child.kill(signal);
    await board.exited;
  };
  const byName = (name: string) => {
    const board = boards.get(name);
    if (!board) throw new Error(`no board named ${name} in this lab`);
    return board;
  };
  const close = async () => {
    // A board that ignores SIGTERM is cut off after 10 s rather than left running.
    await Promise.all(
      [...boards.values()].map(async (board) => {
        const killer = setTimeout(() => board.child?.kill('SIGKILL'), 10_000);
        await stop(board, 'SIGTERM');
        clearTimeout(killer);
      }),
    );
    await proxy.close();
    await service.close();
    await rm(root, { recursive: true, force: true });
  };

  try {
    const names = Array.from({ length: 3 }, (_, index) => `${options.prefix ?? 'ext'}-${index + 1}`);
    const enrolled = await service.api.call('boards.enrollMany', { names, rotate: true });
    if (options.logDir) await mkdir(options.logDir, { recursive: true });
    for (const item of enrolled) {
      // The board reaches Redis through the proxy, which the suite uses to lose replies.
      const credentials: BoardCredentials = { ...item, server: '127.0.0.1', port: proxy.port };
      const credsFile = path.join(root, `${item.name}.json`);
      await writeFile(credsFile, JSON.stringify(credentials, null, 2), { mode: 0o600 });
      const fsDir = path.join(root, `${item.name}-fs`);
      await mkdir(fsDir);
      const board: BoardProcess = {
        credentials,
        credsFile,
        fsDir,
        logFile: path.join(logDir, `${item.name}.log`),
        child: null,
        exited: Promise.resolve(),
        starts: 0,
      };
      boards.set(item.name, board);
      start(board);
    }
    await waitFor(
      async () => {
        for (const [name, board] of boards) {
          if (!board.child) throw new Error(`board ${name} exited before it came online; the end of its output:\n${await tail(board.logFile)}`);
        }
        return (await service.api.call('status', {})).boards.online === boards.size;
      },
      options.onlineTimeoutMs ?? 50_000,
      'the board processes to come online',
    );
  } catch (error) {
    let message = error instanceof Error ? error.message : String(error);
    if (!message.includes('exited before')) {
      for (const [name, board] of boards) message += `\n--- the end of ${name}'s output:\n${await tail(board.logFile, 10)}`;
    }
    await close();
    throw new Error(message, { cause: error });
  }

  return {
    api: service.api,
    redisPort: service.redisPort,
    proxy,
    names: [...boards.keys()],
    credentials: (name) => byName(name).credentials,
    powerOff: (name) => stop(byName(name), 'SIGKILL'),
    powerOn: async (name) => {
      const board = byName(name);
      if (!board.child) start(board);
    },
    readFile: (name, file) => readFile(path.join(byName(name).fsDir, ...pathSegments(file))),
    shutDown: (name) => stop(byName(name), 'SIGTERM'),
    logFile: (name) => byName(name).logFile,
    close,
  };
}

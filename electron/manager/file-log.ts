/**
 * A Logger that writes to a file in the data folder (`<data>/logs/desktop.log` for the
 * app), rotated by size so a long-running service never fills the disk: past `maxBytes`
 * the file becomes `.1`, `.1` becomes `.2`, and so on up to `keep` old files. Plain Node,
 * usable by the headless service too.
 *
 * The file is a place users attach to bug reports, so secrets never reach it: fields whose
 * name says secret are masked, and every line is scrubbed of Redis URL passwords, AUTH
 * arguments, bearer tokens and one-time sign-in codes, whatever the caller passed.
 */
import { mkdir, open, rename, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger, LogLevel } from './log.js';
import { escapeControlCharacters } from './printable-text.js';

export const DEFAULT_LOG_MAX_BYTES = 5 * 1024 * 1024;
export const DEFAULT_LOG_KEEP = 3;

export interface FileLogOptions {
  file: string;
  /** Size past which the file is rotated (default 5 MiB). */
  maxBytes?: number;
  /** How many rotated files are kept beside the current one (default 3). */
  keep?: number;
  /** Lines below this level are dropped (default 'info'). */
  minLevel?: LogLevel;
  now?: () => Date;
  /** Where the one note goes when the file cannot be written (default stderr). */
  onWriteError?: (error: Error) => void;
}

export interface FileLog {
  log: Logger;
  /** Resolves when every line logged so far is in the file. */
  flush(): Promise<void>;
  /** Flushes and closes the file; later lines are dropped. */
  close(): Promise<void>;
}

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const SECRET_FIELD = /pass(word)?|secret|token|auth|cookie|session|credential/i;
const REDACTED = '****';

/** One argument of a Redis command as written inline: quoted (maybe cut short) or a plain word. */
const COMMAND_ARGUMENT = String.raw`(?:"(?:[^"\\]|\\.)*"?|'[^']*'?|[^\s"',)]+)`;

/**
 * Masks the secrets a message may carry, wherever it came from. The one scrubber of every
 * log: the service's (`manager.log`, the terminal of `server-start --foreground`), the
 * desktop app's, and each line redis-server writes, as it is read (redis-server-supervisor.ts).
 */
export function redactSecrets(text: string): string {
  return (
    text
      // Redis logs the start of a client's query buffer with a protocol error: whatever the
      // client sent, an AUTH with its password in any form (inline, quoted, RESP) included.
      .replace(/(Query buffer during protocol error:).*/g, `$1 ${REDACTED}`)
      // redis://user:password@host — the user name stays, it helps and is not secret.
      .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:@/\s]*:)[^@/\s]*@/gi, `$1${REDACTED}@`)
      // AUTH password / AUTH user password (also HELLO … AUTH, and inline commands in any
      // case); not `cmd=auth` of a Redis client description, which is followed by its fields.
      .replace(new RegExp(String.raw`(?<![\w=])(AUTH2?)(?:\s+${COMMAND_ARGUMENT}){1,2}`, 'gi'), `$1 ${REDACTED}`)
      // ACL SETUSER … >password / #sha256, CONFIG SET requirepass|masterauth value.
      .replace(/\bACL\s+SETUSER\b.*/gi, (command) => command.replace(/(\s)[>#<!]\S+/g, `$1${REDACTED}`))
      .replace(/\b(requirepass|masterauth)\s+\S+/gi, `$1 ${REDACTED}`)
      .replace(/\b(Bearer)\s+[\w.~+/=-]+/gi, `$1 ${REDACTED}`)
      // One-time sign-in links and any token in a query string.
      .replace(/([?&](?:code|token|password)=)[^&\s#"']+/gi, `$1${REDACTED}`)
  );
}

function fieldsText(fields: Record<string, unknown> | undefined): string {
  if (!fields || Object.keys(fields).length === 0) return '';
  try {
    return ' ' + JSON.stringify(fields, (key, value: unknown) => (key !== '' && SECRET_FIELD.test(key) ? REDACTED : value));
  } catch {
    return ' {"fields":"unprintable"}';
  }
}

/**
 * One log line. Continuation lines are indented, so a message cannot forge a line of its
 * own, and control characters are escaped, so a board's text cannot drive the terminal of
 * whoever reads the log (`tail -f`, `server-start --foreground`).
 */
export function formatLogLine(time: Date, level: LogLevel, message: string, fields?: Record<string, unknown>): string {
  const text = escapeControlCharacters(`${message}${fieldsText(fields)}`.replace(/\r?\n/g, '\n    '), { keepLines: true });
  return redactSecrets(`${time.toISOString()} ${level.toUpperCase().padEnd(5)} ${text}`) + '\n';
}

export function createFileLog(options: FileLogOptions): FileLog {
  const maxBytes = options.maxBytes ?? DEFAULT_LOG_MAX_BYTES;
  const keep = Math.max(1, options.keep ?? DEFAULT_LOG_KEEP);
  const minLevel = LEVEL_ORDER[options.minLevel ?? 'info'];
  const now = options.now ?? (() => new Date());
  const onWriteError = options.onWriteError ?? ((error: Error) => process.stderr.write(`could not write the log ${options.file}: ${error.message}\n`));
  let handle: FileHandle | undefined;
  let size = 0;
  let queue: string[] = [];
  let draining: Promise<void> | undefined;
  let closed = false;
  let failed = false;

  async function openFile(): Promise<FileHandle> {
    await mkdir(path.dirname(options.file), { recursive: true, mode: 0o700 });
    const opened = await open(options.file, 'a', 0o600);
    // The mode above applies only to a new file: one left by an older version is tightened too.
    if (process.platform !== 'win32') await opened.chmod(0o600);
    size = (await opened.stat()).size;
    return opened;
  }

  async function rotate(): Promise<void> {
    await handle?.close();
    handle = undefined;
    // .2 → .3 first, so each rename lands on a name already moved on (the oldest is replaced).
    for (let index = keep - 1; index >= 1; index--) {
      await rename(`${options.file}.${index}`, `${options.file}.${index + 1}`).catch(() => undefined);
    }
    await rename(options.file, `${options.file}.1`).catch(() => undefined);
  }

  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.join('');
      queue = [];
      try {
        handle ??= await openFile();
        const bytes = Buffer.byteLength(batch);
        if (size > 0 && size + bytes > maxBytes) {
          await rotate();
          handle = await openFile();
        }
        await handle.write(batch);
        size += bytes;
        failed = false;
      } catch (error) {
        // Logging never takes the app down; the first failure of a run is said once.
        if (!failed) onWriteError(error as Error);
        failed = true;
      }
    }
  }

  function kick(): Promise<void> {
    draining ??= drain().finally(() => {
      draining = undefined;
      if (queue.length > 0) void kick();
    });
    return draining;
  }

  const log: Logger = (level, message, fields) => {
    if (closed || LEVEL_ORDER[level] < minLevel) return;
    queue.push(formatLogLine(now(), level, message, fields));
    void kick();
  };

  async function flush(): Promise<void> {
    while (draining || queue.length > 0) await kick();
  }

  return {
    log,
    flush,
    async close() {
      await flush();
      closed = true;
      await handle?.close();
      handle = undefined;
    },
  };
}

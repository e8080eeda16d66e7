/**
 * The CLI's small framework: every verb is one table entry (name → options, positionals,
 * help, handler), parsed with node:util parseArgs; `--help` works on every verb.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { escapeControlCharacters } from '../manager/printable-text.js';
import { didYouMean } from './suggest.js';

/** Exit codes of every verb (README, "The mbm command line"). */
export const EXIT = {
  ok: 0,
  /** The command failed (on at least one board: an error, a timeout, …). */
  failed: 1,
  /** Bad arguments or options: nothing was done. */
  usage: 2,
  /** The service is not running or does not answer. */
  noService: 3,
  /** Nothing failed, but a command waits in the queue of an offline board: not run yet. */
  queued: 4,
  /** Stopped with Ctrl-C (the commands still running were cancelled). */
  interrupted: 130,
} as const;

export type OptionSpec = {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  description: string;
  valueName?: string;
  default?: string | boolean;
};

export interface VerbContext {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

export interface VerbSpec {
  name: string;
  summary: string;
  /** Positional arguments, e.g. ['BOARDS', 'FILE', 'DEST']; a trailing '?' marks optional, '...' any number (≥ 1). */
  args: string[];
  /** Arguments that look like options but are positionals (e.g. `-kitchen` of board-tag). */
  positionalPattern?: RegExp;
  options: Record<string, OptionSpec>;
  /** Extra help text (examples, notes). */
  details?: string;
  /** Returns the process exit code. */
  run(context: VerbContext): Promise<number>;
}

/** An error meant for the user: printed without a stack, with this exit code. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  'data-dir': {
    type: 'string',
    valueName: 'DIR',
    description: 'data folder of the service (default: the per-user app data folder, or $CLOUDMANAGER_DATA_DIR)',
  },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export function verbHelp(verb: VerbSpec): string {
  const options = { ...verb.options, ...COMMON_OPTIONS };
  const lines = [
    `Usage: mbm ${verb.name}${verb.args.map((arg) => (arg.endsWith('?') ? ` [${arg.slice(0, -1)}]` : ` ${arg}`)).join('')} [options]`,
    '',
    verb.summary,
    '',
  ];
  lines.push('Options:');
  for (const [name, spec] of Object.entries(options)) {
    const flag = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.type === 'string' ? ` ${spec.valueName ?? 'VALUE'}` : ''}`;
    lines.push(`  ${flag.padEnd(30)} ${spec.description}`);
  }
  if (verb.details) lines.push('', verb.details.trim());
  return lines.join('\n') + '\n';
}

export function usage(verbs: VerbSpec[]): string {
  const lines = ['Usage: mbm VERB [arguments] [options]', '', 'Manage a fleet of MicroPython boards through the Cloudmanager service.', '', 'Verbs:'];
  for (const verb of verbs) lines.push(`  ${verb.name.padEnd(16)} ${verb.summary}`);
  lines.push(
    '',
    'Run `mbm VERB --help` for the arguments and options of a verb.',
    'BOARDS accepts names, ranges and globs: esp8266-0[08-11],wipy2-[1,3,7] or sim-*',
  );
  return lines.join('\n') + '\n';
}

/** Parses argv for one verb; throws CliError with the verb's usage on bad input. */
export function parseVerbArgs(verb: VerbSpec, argv: string[]): { values: Record<string, string | boolean | undefined>; positionals: string[]; help: boolean } {
  const options: ParseArgsConfig['options'] = {};
  for (const [name, spec] of Object.entries({ ...verb.options, ...COMMON_OPTIONS })) {
    options[name] = { type: spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.default !== undefined ? { default: spec.default } : {}) };
  }
  // Tokens the verb takes as positionals go after a `--`, which parseArgs leaves alone.
  const claimed = verb.positionalPattern ? argv.filter((arg) => verb.positionalPattern!.test(arg) && arg !== '-h') : [];
  const rest = argv.filter((arg) => !claimed.includes(arg));
  let parsed;
  try {
    parsed = parseArgs({ args: claimed.length > 0 ? [...rest, '--', ...claimed] : argv, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new CliError(`${optionProblem(error as Error & { code?: string }, Object.keys(options))}\n\n${verbHelp(verb)}`, EXIT.usage);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) return { values, positionals: parsed.positionals, help: true };
  const required = verb.args.filter((arg) => !arg.endsWith('?'));
  const variadic = verb.args.some((arg) => arg.endsWith('...'));
  const given = parsed.positionals.length;
  if (given < required.length) {
    const missing = required.slice(given).map((arg) => arg.replace(/\.\.\.$/, ''));
    throw new CliError(`${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing\n\n${verbHelp(verb)}`, EXIT.usage);
  }
  if (!variadic && given > verb.args.length) {
    const extra = parsed.positionals
      .slice(verb.args.length)
      .map((arg) => JSON.stringify(arg))
      .join(' ');
    throw new CliError(`too many arguments: ${extra} (it takes ${verb.args.join(' ') || 'no arguments'})\n\n${verbHelp(verb)}`, EXIT.usage);
  }
  return { values, positionals: parsed.positionals, help: false };
}

/** parseArgs' message made short, with the nearest option for an unknown one. */
function optionProblem(error: Error & { code?: string }, known: string[]): string {
  const unknown = error.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-{1,2}[^'=]+)/.exec(error.message)?.[1] : undefined;
  if (unknown === undefined) return error.message;
  const hint = unknown.startsWith('--') ? didYouMean(unknown.slice(2), known, (name) => `--${name}`) : '';
  return `unknown option ${unknown}${hint}`;
}

export function intOption(values: VerbContext['values'], name: string, fallback: number, min: number, max: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new CliError(`--${name} must be a whole number from ${min} to ${max}`, 2);
  return value;
}

export function numberOption(values: VerbContext['values'], name: string, fallback: number, min: number, max: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) throw new CliError(`--${name} must be a number from ${min} to ${max}`, 2);
  return value;
}

/**
 * Resolves on Ctrl-C or SIGTERM (verbs that run until interrupted), or when `also` fires.
 * Then it stops listening: a second Ctrl-C or SIGTERM ends the process at once, whichever
 * signal came first.
 */
export function untilInterrupted(also?: (resolve: () => void) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
    also?.(done);
  });
}

/**
 * Everything the CLI prints goes through here: listings carry text boards sent (their
 * hello, file names, errors), so control characters are shown escaped (\u001b), never
 * passed to the terminal. Line breaks and tabs stay.
 */
export function write(stream: NodeJS.WritableStream, text: string): void {
  stream.write(escapeControlCharacters(text, { keepLines: true }));
}

/** Prints as it is: only for what the user asked for verbatim (their own program's output, a file to stdout). */
export function writeRaw(stream: NodeJS.WritableStream, text: string | Uint8Array): void {
  stream.write(text);
}

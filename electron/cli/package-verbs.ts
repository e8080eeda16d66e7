/**
 * The package verbs of `mbm` (issue 12): board-install resolves and downloads on the
 * service's computer and uploads only what each board lacks; board-packages lists what a
 * board's record says is installed; board-uninstall removes exactly a package's files.
 */
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ApiClient } from '../manager/api/client.js';
import type { JobSummary, JobTarget } from '../manager/api/contract.js';
import { CliError, EXIT, numberOption, write, type OptionSpec, type VerbContext, type VerbSpec } from './cli-framework.js';
import { connectService } from './service-control.js';
import { expireOption, jobExitCode, pollJob } from './job-follow.js';
import { boardPath } from './board-verbs.js';
import { table } from './format.js';

const FOLLOW_OPTIONS: Record<string, OptionSpec> = {
  expire: { type: 'string', valueName: 'SECONDS', description: 'how long each step waits for an offline board (default 3600)' },
  'wait-offline': { type: 'boolean', description: 'wait for offline boards to come back and finish' },
  json: { type: 'boolean', description: 'print one JSON line per board' },
};
const POLL_MS = 300;

/** Specs that name something on this computer are sent as absolute paths (the service may run elsewhere in its own folder). */
async function localOrAsTyped(spec: string): Promise<string> {
  if (/^(github:|gitlab:|[a-z][a-z0-9+.-]*:\/\/)/i.test(spec)) return spec;
  const looksLikePath = /[\\/]/.test(spec) || /^\.{1,2}$/.test(spec) || /\.(py|tar\.gz|tgz)$/i.test(spec);
  if (!looksLikePath) return spec;
  const expanded = spec === '~' || spec.startsWith('~/') ? path.join(os.homedir(), spec.slice(1)) : spec;
  const absolute = path.resolve(expanded);
  try {
    await stat(absolute);
  } catch {
    throw new CliError(
      `${spec}: no such file or folder (a package on this computer must exist; an index package is given by name, e.g. logging@0.6)`,
      EXIT.usage,
    );
  }
  return absolute;
}

/** The numbers and result of one board as --json prints them. */
export function jsonLine(target: JobTarget): string {
  const numbers = target.install ?? { uploadedFiles: 0, skippedFiles: 0, removedFiles: 0, bytes: 0 };
  const line: Record<string, unknown> = {
    board: target.board,
    ok: target.status === 'ok',
    uploaded_files: numbers.uploadedFiles,
    skipped_files: numbers.skippedFiles,
    removed_files: numbers.removedFiles,
    bytes: numbers.bytes,
  };
  if (target.status === 'waiting' || target.status === 'queued') {
    line.queued = true;
    line.error = 'offline: not finished yet, it goes on when the board is back';
  } else if (target.status !== 'ok') line.error = target.message ?? 'failed';
  return JSON.stringify(line);
}

/**
 * Follows a package job: a live line on a terminal, one stderr line per board as it
 * finishes, then per board its result on stdout. Returns the exit code (failed > queued > ok).
 */
async function followJob(api: ApiClient, started: JobSummary, context: VerbContext): Promise<number> {
  const json = Boolean(context.values.json);
  const waitOffline = Boolean(context.values['wait-offline']);
  const live = (context.err as NodeJS.WriteStream).isTTY === true;
  const reported = new Set<number>();
  const job = await pollJob(api, started.id, {
    waitOffline,
    pollMs: POLL_MS,
    onPoll: (job) => {
      job.targets.forEach((target, index) => {
        if ((target.status !== 'ok' && target.status !== 'failed') || reported.has(index)) return;
        reported.add(index);
        if (live) context.err.write('\r\x1b[K');
        write(context.err, `[${reported.size}/${job.targets.length}] ${target.board}: ${target.status === 'ok' ? 'done' : 'failed'}\n`);
      });
      if (live) {
        const files = job.targets.reduce((sum, target) => ({ done: sum.done + target.done, total: sum.total + target.total }), { done: 0, total: 0 });
        context.err.write(`\r\x1b[K${job.counts.ok + job.counts.failed}/${job.targets.length} boards done, ${files.done}/${files.total} files`);
      }
    },
  });
  if (live) context.err.write('\r\x1b[K');
  for (const target of job.targets) {
    if (json) write(context.out, jsonLine(target) + '\n');
    else if (target.status === 'ok') write(context.out, `${target.board}: ${target.message ?? 'done'}\n`);
    else if (target.status === 'failed') write(context.out, `${target.board}: failed: ${target.message ?? 'failed'}\n`);
    else write(context.out, `${target.board}: offline; it goes on when the board comes back (--wait-offline waits for it)\n`);
  }
  return jobExitCode(job);
}

export const boardInstall: VerbSpec = {
  name: 'board-install',
  summary: 'install MicroPython packages (micropython-lib, github:, URL, local) on boards',
  args: ['BOARDS', 'PKG...'],
  options: {
    index: { type: 'string', valueName: 'URL', description: 'package index (default https://micropython.org/pi/v2)' },
    target: { type: 'string', valueName: 'DIR', description: 'folder on the board (default /lib)' },
    source: { type: 'boolean', description: 'upload the .py files as they are (default: compiled to .mpy when the board loads them)' },
    ...FOLLOW_OPTIONS,
  },
  details:
    'Everything is resolved and downloaded on this computer first (dependencies, pins, hashes); a problem\n' +
    'stops the install before any board gets a file. Files a board already has (same sha256) are skipped.\n' +
    'PKG: name, name@1.0 or name==1.0 (the index), github:org/repo[/path][@ref], gitlab:…, an http(s) URL\n' +
    'of a package.json or .py, or a folder, .py or .tar.gz on this computer.\n' +
    'Examples:\n  mbm board-install kitchen logging\n  mbm board-install "esp-*" umqtt.simple@1.3.4 github:org/sensors --json\n' +
    '  mbm board-install kitchen ./mylib --target /lib --source',
  async run(context) {
    const [boards, ...specs] = context.positionals as [string, ...string[]];
    if (specs.length > 20) throw new CliError('at most 20 packages at a time', EXIT.usage);
    const packages = await Promise.all(specs.map(localOrAsTyped));
    const target = typeof context.values.target === 'string' ? boardPath(context.values.target, '--target') : undefined;
    const index = typeof context.values.index === 'string' ? context.values.index : undefined;
    if (index !== undefined && !/^https?:\/\/\S+$/i.test(index)) throw new CliError(`--index ${index}: must be an http:// or https:// URL`, EXIT.usage);
    const api = await connectService(context.values);
    if ((context.err as NodeJS.WriteStream).isTTY) context.err.write('resolving and downloading packages…');
    let started: JobSummary;
    try {
      started = await api.call('jobs.start', {
        kind: 'install',
        boards,
        packages,
        index,
        target,
        source: context.values.source === true ? true : undefined,
        expireMs: expireOption(context.values),
      });
    } finally {
      if ((context.err as NodeJS.WriteStream).isTTY) context.err.write('\r\x1b[K');
    }
    return followJob(api, started, context);
  },
};

export const boardUninstall: VerbSpec = {
  name: 'board-uninstall',
  summary: 'remove installed packages (exactly their files) from boards',
  args: ['BOARDS', 'PKG...'],
  options: FOLLOW_OPTIONS,
  details: 'Removes the files the board recorded for each package at install, except those another installed package also has.',
  async run(context) {
    const [boards, ...packages] = context.positionals as [string, ...string[]];
    if (packages.length > 20) throw new CliError('at most 20 packages at a time', EXIT.usage);
    const api = await connectService(context.values);
    const started = await api.call('jobs.start', { kind: 'uninstall', boards, packages, expireMs: expireOption(context.values) });
    return followJob(api, started, context);
  },
};

export const boardPackages: VerbSpec = {
  name: 'board-packages',
  summary: 'list the packages board-install put on a board',
  args: ['BOARD'],
  options: {
    json: { type: 'boolean', description: 'print a JSON array (name, version, target, source, installedAt, files)' },
    wait: { type: 'string', valueName: 'SECONDS', description: 'how long to wait for an offline board (default 30)' },
  },
  async run(context) {
    const api = await connectService(context.values);
    const timeoutMs = Math.round(numberOption(context.values, 'wait', 30, 0, 600) * 1000);
    const { packages } = await api.call('packages.list', { board: context.positionals[0]!, timeoutMs });
    if (context.values.json) {
      write(context.out, JSON.stringify(packages) + '\n');
      return EXIT.ok;
    }
    if (packages.length === 0) {
      write(context.out, 'no packages installed by board-install\n');
      return EXIT.ok;
    }
    write(
      context.out,
      table(
        ['NAME', 'VERSION', 'FILES', 'TARGET'],
        packages.map((pkg) => [pkg.name, pkg.version, String(pkg.files.length), pkg.target]),
      ),
    );
    return EXIT.ok;
  },
};

/**
 * board-install and board-uninstall on the boards (issue 12): after the host has resolved
 * and downloaded everything (packages/ preparePackages, before the job exists), each board
 * gets a sequence of ordinary commands through `fleet.send`, one at a time, so a board that
 * is offline simply keeps them queued and the sequence carries on when it is back:
 *   info (which .mpy it loads) → get the record → hash what would be written → put what
 *   differs → rm what an earlier install left that the new one does not have → put the
 *   record. Uninstall: get the record → rm the packages' files → put the record.
 * Each board reports through `PackageTargetReport`; JobService turns that into the target.
 */
import path from 'node:path';
import { ManagerError, type ErrorKind } from '../errors.js';
import { canLoadMpyV6, compileToMpy, MpyCompileError } from '../packages/mpy-cross.js';
import { preparePackages, type PreparedFile, type PreparedPackage } from '../packages/package-prepare.js';
import { sha256 } from '../transfer/upload-blob.js';
import { validateBoardPath } from '../transfer/board-path.js';
import { FINAL_STATUSES, type CommandView } from './command-dispatcher.js';
import { hashBatches, parseHashResult, type BoardInfoResult, type CommandRequest } from './command-ops.js';
import type { Logger } from '../log.js';
import type { BoardState } from './board-registry.js';
import type { Fleet } from './fleet.js';
import type { InstallNumbers, JobKind, JobProgress } from './job-model.js';
import {
  PACKAGE_RECORD_PATH,
  installedPackages,
  parsePackageRecord,
  recordInstall,
  recordUninstall,
  sameRecord,
  serializePackageRecord,
  type InstalledPackage,
  type PackageInstalled,
  type PackageRecord,
} from './package-record.js';

export type PackageJobRequest =
  | { kind: 'install'; boards: string; packages: string[]; index?: string; target?: string; source?: boolean; expireMs?: number }
  | { kind: 'uninstall'; boards: string; packages: string[]; expireMs?: number };

export function isPackageJob(kind: JobKind): boolean {
  return kind === 'install' || kind === 'uninstall';
}

/** A target a stopped service left unfinished (its run cannot be resumed: the restarted service starts none). */
export function packageTargetInterrupted(kind: JobKind): string {
  return kind === 'uninstall'
    ? 'the service stopped before this finished; uninstall again'
    : 'the service stopped before this finished; install again: files already there are skipped';
}

/** A package's files in the two forms a board may get: as they came, and with .py compiled to .mpy. */
export interface InstallPayload {
  target: string;
  packages: Array<{ name: string; version: string; source: string; files: PreparedFile[]; compiled: PreparedFile[] | null }>;
  /** The job asked for source (--source): never compile. */
  source: boolean;
  /** When the install started (the record's `at`). */
  at: number;
}

/** What one board's run tells the job. */
export interface PackageTargetReport {
  /** A command was sent for the board (kept in the target, so the job's Cancel reaches it). */
  sent(cid: string): void;
  /** The board took a command: it is running now. */
  running(): void;
  /** Files handled (skipped or written) of files planned. */
  progress(done: number, total: number): void;
  finished(status: 'ok' | 'failed', message: string, numbers: InstallNumbers): void;
}

export class PackageListError extends ManagerError {
  override name = 'PackageListError';
  readonly kind: ErrorKind = 'conflict';
}

/** A command of the sequence ended otherwise than ok (its message is the board's or the dispatcher's). */
class StepFailed extends Error {
  constructor(
    message: string,
    readonly status: CommandView['status'] | 'stopped' = 'error',
  ) {
    super(message);
  }
}

/** Files the interpreter runs by name at boot: always sent as source. */
const NEVER_COMPILED = new Set(['boot.py', 'main.py']);

/** "12.5 KB" (1 KB = 1024 bytes, one decimal under 100 KB); bytes under 1 KB ("0 B", "300 B"), so a small file does not show as 0 KB. */
export function formatKilobytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const kb = bytes / 1024;
  return `${kb < 100 ? Math.round(kb * 10) / 10 : Math.round(kb)} KB`;
}

export function installMessage(numbers: InstallNumbers, warnings: readonly string[] = []): string {
  const parts = [`${numbers.uploadedFiles} uploaded`, `${numbers.skippedFiles} skipped`, `${formatKilobytes(numbers.bytes)} sent`];
  if (numbers.removedFiles > 0) parts.push(`${numbers.removedFiles} old removed`);
  return [parts.join(', '), ...warnings].join('; ');
}

/**
 * Compiles every `.py` (but boot.py/main.py) to `.mpy` once per distinct source, for the
 * boards that load ABI 6. A file that does not compile fails the whole job before it
 * starts, naming the file and pointing at --source.
 */
export async function compilePayload(
  prepared: { target: string; packages: ReadonlyArray<Pick<PreparedPackage, 'name' | 'version' | 'source' | 'files'>> },
  options: { source: boolean; at?: number },
): Promise<InstallPayload> {
  const bySource = new Map<string, Promise<Buffer>>();
  const packages = [];
  for (const pkg of prepared.packages) {
    let compiled: PreparedFile[] | null = null;
    if (!options.source) {
      compiled = [];
      for (const file of pkg.files) {
        const base = path.posix.basename(file.boardPath);
        if (!base.endsWith('.py') || NEVER_COMPILED.has(base)) {
          compiled.push(file);
          continue;
        }
        const name = path.posix.relative(prepared.target, file.boardPath);
        const key = `${file.sha256}\0${name}`;
        let mpy = bySource.get(key);
        if (!mpy) {
          mpy = compileToMpy(name.startsWith('..') ? base : name, file.data.toString('utf8'));
          bySource.set(key, mpy);
        }
        let data: Buffer;
        try {
          data = await mpy;
        } catch (error) {
          if (error instanceof MpyCompileError) {
            throw new PackageCompileError(
              `${pkg.name}: ${file.boardPath} does not compile to .mpy: ${error.compilerMessage.trim().split('\n').pop()}` +
                `${error.line === undefined ? '' : ` (line ${error.line})`}; install with --source to send the .py as it is`,
            );
          }
          throw error;
        }
        compiled.push({ package: pkg.name, boardPath: file.boardPath.slice(0, -3) + '.mpy', data, sha256: sha256(data) });
      }
    }
    packages.push({ name: pkg.name, version: pkg.version, source: pkg.source, files: pkg.files, compiled });
  }
  return { target: prepared.target, packages, source: options.source, at: options.at ?? Date.now() };
}

export class PackageCompileError extends ManagerError {
  override name = 'PackageCompileError';
  readonly kind: ErrorKind = 'bad_request';
}

interface BoardRun {
  fleet: Fleet;
  boardId: string;
  expireMs?: number;
  report: PackageTargetReport;
  /** Aborted when the service stops: the run ends without a result (the restarted service marks it failed). */
  stopping: AbortSignal;
  /** Aborted by the job's Cancel: no further command is sent. */
  cancelled: AbortSignal;
}

/** What the service configures for install jobs. */
export interface PackageJobOptions {
  /** Downloads cache (`<data>/packages`). */
  cacheDir?: string;
  /** Default package index (a job's `index` overrides it). */
  indexUrl?: string;
  /** PyPI for the sdist fallback ('' turns it off). */
  pypiUrl?: string;
}

export interface PackageJobContext extends PackageJobOptions {
  fleet: Fleet;
  /** The service log: the host's notes (e.g. working offline from the cache) go there as well as into the job. */
  log?: Logger;
  /**
   * Each board's latest install/uninstall run (the service's, across jobs): a new run on a board
   * starts after the one before it, since both would read the board's record and the last to
   * write it would drop the other's packages.
   */
  boardRuns: Map<string, Promise<void>>;
  stopping: AbortSignal;
  cancelled: AbortSignal;
  /** The host phase (resolve, download, compile), then 'boards'. */
  progress(progress: JobProgress): void;
  /** Where board number `index` of the job reports. */
  target(index: number): PackageTargetReport;
  /** Every board has its result. */
  ended(): void;
}

/**
 * Prepares an install on the host (resolve, download, compile) and starts every board's run;
 * resolves once the runs are started. Rejects, with nothing sent to any board, when the
 * preparation fails.
 */
export async function launchPackageJob(request: PackageJobRequest, boards: readonly BoardState[], context: PackageJobContext): Promise<void> {
  let runOne: (run: BoardRun) => Promise<void>;
  if (request.kind === 'install') {
    if (!context.cacheDir) throw new PackageCompileError('board-install is not available in this service (no package cache folder configured)');
    const target = request.target === undefined ? undefined : validateBoardPath(request.target, 'target folder');
    const prepared = await preparePackages(request.packages, {
      indexUrl: request.index ?? context.indexUrl,
      pypiUrl: context.pypiUrl,
      target,
      cacheDir: context.cacheDir,
      log: context.log,
      onProgress: (progress) => context.progress({ ...progress }),
    });
    const sources = prepared.packages.reduce((sum, pkg) => sum + pkg.files.filter((file) => file.boardPath.endsWith('.py')).length, 0);
    context.progress({ phase: 'compile', message: request.source ? 'keeping the .py files as they are' : `compiling ${sources} .py files to .mpy` });
    const payload = await compilePayload(prepared, { source: request.source ?? false });
    runOne = (run) => installOnBoard(run, payload);
  } else {
    const names = request.packages.map((name) => name.trim());
    runOne = (run) => uninstallOnBoard(run, names);
  }
  context.progress({
    phase: 'boards',
    message: `${request.kind === 'install' ? 'installing on' : 'uninstalling from'} ${boards.length} board${boards.length === 1 ? '' : 's'}`,
  });
  const runs = boards.map((board, index) => {
    const run: BoardRun = {
      fleet: context.fleet,
      boardId: board.id,
      expireMs: request.expireMs,
      report: context.target(index),
      stopping: context.stopping,
      cancelled: context.cancelled,
    };
    // Runs never reject (a failure is the board's result), so the chain goes on after any of them.
    const mine = (context.boardRuns.get(board.id) ?? Promise.resolve()).then(() => runOne(run));
    context.boardRuns.set(board.id, mine);
    void mine.then(() => {
      if (context.boardRuns.get(board.id) === mine) context.boardRuns.delete(board.id);
    });
    return mine;
  });
  void Promise.allSettled(runs).then(() => context.ended());
}

/** Installs the payload on one board; never throws (a failure is reported as the board's result). */
export async function installOnBoard(run: BoardRun, payload: InstallPayload): Promise<void> {
  const numbers: InstallNumbers = { uploadedFiles: 0, skippedFiles: 0, removedFiles: 0, bytes: 0 };
  const commands = new BoardCommands(run);
  try {
    const info = (await commands.run({ op: 'info' })).result as Partial<BoardInfoResult> | null;
    const compiled = !payload.source && canLoadMpyV6(info?.mpy);
    const files = payload.packages.flatMap((pkg) => (compiled && pkg.compiled ? pkg.compiled : pkg.files));
    run.report.progress(0, files.length);
    const { record, warning } = await readRecord(commands);

    const onBoard = new Map<string, string | null>();
    for (const chunk of hashBatches(files.map((file) => file.boardPath))) {
      const hashed = await commands.run({ op: 'hash', paths: chunk }, { allow: ['EUNSUPPORTED', 'ENOMEM'] });
      // A board without `hash` (older client), or without the memory for it now, gets every file: nothing can be skipped safely.
      if (hashed.status !== 'ok') break;
      for (const [file, hash] of Object.entries(parseHashResult(chunk, hashed.result))) onBoard.set(file, hash);
    }
    const toSend = files.filter((file) => onBoard.get(file.boardPath) !== file.sha256);
    numbers.skippedFiles = files.length - toSend.length;
    let done = numbers.skippedFiles;
    run.report.progress(done, files.length);
    for (const file of toSend) {
      await commands.run({ op: 'put', path: file.boardPath, data: file.data });
      numbers.uploadedFiles++;
      numbers.bytes += file.data.length;
      run.report.progress(++done, files.length);
    }

    const installed: PackageInstalled[] = payload.packages.map((pkg) => ({
      name: pkg.name,
      version: pkg.version,
      target: payload.target,
      source: pkg.source,
      at: payload.at,
      files: Object.fromEntries((compiled && pkg.compiled ? pkg.compiled : pkg.files).map((file) => [file.boardPath, file.sha256])),
    }));
    const next = recordInstall(record, installed);
    for (const stale of next.remove) {
      await commands.run({ op: 'rm', path: stale }, { allow: ['ENOENT'] });
      numbers.removedFiles++;
    }
    await writeRecord(commands, record, next.record);
    run.report.finished('ok', installMessage(numbers, warning ? [warning] : []), numbers);
  } catch (error) {
    reportFailure(run, error, numbers);
  }
}

/** Removes the named packages' files from one board and updates its record; never throws. */
export async function uninstallOnBoard(run: BoardRun, names: readonly string[]): Promise<void> {
  const numbers: InstallNumbers = { uploadedFiles: 0, skippedFiles: 0, removedFiles: 0, bytes: 0 };
  const commands = new BoardCommands(run);
  try {
    const { record, warning } = await readRecord(commands);
    const next = recordUninstall(record, names);
    const notInstalled = next.missing.length > 0 ? `not installed here: ${next.missing.join(', ')}` : null;
    if (next.missing.length === names.length) {
      run.report.finished('failed', [notInstalled, warning].filter(Boolean).join('; '), numbers);
      return;
    }
    run.report.progress(0, next.remove.length);
    for (const file of next.remove) {
      await commands.run({ op: 'rm', path: file }, { allow: ['ENOENT'] });
      numbers.removedFiles++;
      run.report.progress(numbers.removedFiles, next.remove.length);
    }
    await writeRecord(commands, record, next.record);
    const message = [`removed ${numbers.removedFiles} file${numbers.removedFiles === 1 ? '' : 's'}`, notInstalled, warning].filter(Boolean).join('; ');
    run.report.finished('ok', message, numbers);
  } catch (error) {
    reportFailure(run, error, numbers);
  }
}

/** The packages a board's record lists; waits up to `timeoutMs` for an offline board. */
export async function listBoardPackages(fleet: Fleet, board: BoardState, timeoutMs: number): Promise<InstalledPackage[]> {
  const controller = new AbortController();
  const commands = new BoardCommands({
    fleet,
    boardId: board.id,
    expireMs: Math.max(1_000, timeoutMs),
    stopping: controller.signal,
    cancelled: controller.signal,
    report: { sent: () => undefined, running: () => undefined, progress: () => undefined, finished: () => undefined },
  });
  try {
    const view = await commands.run({ op: 'get', path: PACKAGE_RECORD_PATH }, { allow: ['ENOENT'] });
    const bytes = view.status === 'ok' ? fleet.dispatcher.file(view.cid) : null;
    return installedPackages(parsePackageRecord(bytes).record);
  } catch (error) {
    if (error instanceof StepFailed && error.status === 'expired') {
      throw new PackageListError(
        `${board.name} is offline and did not come back within ${Math.round(timeoutMs / 1000)} s: list its packages once it is online`,
      );
    }
    if (error instanceof StepFailed) throw new PackageListError(`cannot read ${board.name}'s package record: ${error.message}`);
    throw error;
  }
}

function reportFailure(run: BoardRun, error: unknown, numbers: InstallNumbers): void {
  if (run.stopping.aborted) return;
  const done = numbers.uploadedFiles + numbers.removedFiles > 0 ? ` (after ${installMessage(numbers)})` : '';
  run.report.finished('failed', `${run.cancelled.aborted ? 'cancelled' : (error as Error).message}${done}`, numbers);
}

async function readRecord(commands: BoardCommands): Promise<{ record: PackageRecord; warning: string | null }> {
  const view = await commands.run({ op: 'get', path: PACKAGE_RECORD_PATH }, { allow: ['ENOENT'] });
  if (view.status !== 'ok') return parsePackageRecord(null);
  const bytes = commands.fleet.dispatcher.file(view.cid);
  if (!bytes) throw new StepFailed(`the board's package record ${PACKAGE_RECORD_PATH} was read but is no longer held by the service: try again`);
  return parsePackageRecord(bytes);
}

async function writeRecord(commands: BoardCommands, before: PackageRecord, after: PackageRecord): Promise<void> {
  if (sameRecord(before, after)) return;
  if (Object.keys(after.packages).length === 0) {
    await commands.run({ op: 'rm', path: PACKAGE_RECORD_PATH }, { allow: ['ENOENT'] });
    return;
  }
  await commands.run({ op: 'put', path: PACKAGE_RECORD_PATH, data: serializePackageRecord(after) });
}

/** Sends one command at a time to a board and waits for its end. */
class BoardCommands {
  readonly fleet: Fleet;
  private started = false;

  constructor(private readonly options: BoardRun) {
    this.fleet = options.fleet;
  }

  /** The finished command; throws StepFailed unless it ended ok (or with an error code in `allow`). */
  async run(request: CommandRequest, options: { allow?: string[] } = {}): Promise<CommandView> {
    if (this.options.stopping.aborted) throw new StepFailed('the service is stopping', 'stopped');
    if (this.options.cancelled.aborted) throw new StepFailed('cancelled', 'cancelled');
    const board = this.fleet.registry.get(this.options.boardId);
    if (!board) throw new StepFailed('the board was removed');
    const sent = await this.fleet.send(board, request, { expireMs: this.options.expireMs });
    this.options.report.sent(sent.cid);
    const view = await this.finished(sent);
    if (view.status === 'ok') return view;
    if (view.status === 'error' && view.errorCode && options.allow?.includes(view.errorCode)) return view;
    const what = request.op === 'put' || request.op === 'rm' || request.op === 'get' ? `${request.op} ${request.path}` : request.op;
    throw new StepFailed(
      `${what}: ${view.status === 'error' ? (view.error ?? 'failed') : `${view.status}${view.error ? ` (${view.error})` : ''}`}`,
      view.status,
    );
  }

  private finished(sent: CommandView): Promise<CommandView> {
    const dispatcher = this.fleet.dispatcher;
    return new Promise((resolve, reject) => {
      let settled = false;
      const check = (view: CommandView) => {
        if (view.cid !== sent.cid) return;
        if ((view.status === 'running' || view.startedAt !== null) && !this.started) {
          this.started = true;
          this.options.report.running();
        }
        if (!FINAL_STATUSES.has(view.status)) return;
        cleanup();
        resolve(view);
      };
      const onStop = () => {
        cleanup();
        reject(new StepFailed('the service is stopping', 'stopped'));
      };
      // The job's Cancel may come while this command was being queued, before the job knew its id.
      const onCancel = () => void dispatcher.cancel(sent.cid).catch(() => undefined);
      const cleanup = () => {
        settled = true;
        dispatcher.off('command', check);
        this.options.stopping.removeEventListener('abort', onStop);
        this.options.cancelled.removeEventListener('abort', onCancel);
      };
      dispatcher.on('command', check);
      this.options.stopping.addEventListener('abort', onStop);
      this.options.cancelled.addEventListener('abort', onCancel);
      check(dispatcher.get(sent.cid) ?? sent);
      if (!settled && this.options.cancelled.aborted) onCancel();
    });
  }
}

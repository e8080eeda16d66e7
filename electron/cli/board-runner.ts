/**
 * Sends one command to the boards a BOARDS pattern names and follows it to the end:
 * output is streamed as it arrives under a `## BOARD` header, offline boards are reported
 * as queued (or waited for), and the final state of every command is returned.
 */
import type { ApiClient, EventSubscription } from '../manager/api/client.js';
import type { ApiCommandRequest, CommandView, SentCommand } from '../manager/api/contract.js';
import { EXIT, write, writeRaw } from './cli-framework.js';
import { formatDuration } from './format.js';

export interface RunOptions {
  /** Time limit for the command on the board (ms). */
  timeoutMs?: number;
  /** How long a command may wait for an offline board (ms). */
  expireMs?: number;
  /** Wait for offline boards to come back and run it (up to the expiry). */
  waitOffline?: boolean;
  /** Print output as it arrives (exec). */
  streamOutput?: boolean;
  /** Streamed output with its control characters escaped (`board-execute --safe`); raw otherwise, as the user's own program printed it. */
  safeOutput?: boolean;
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export interface RunOutcome {
  /** Final (or last known) state of every command that was waited for. */
  finished: CommandView[];
  /** Commands left queued for offline boards. */
  queued: SentCommand[];
  /** Ctrl-C stopped the wait; the commands not finished were cancelled (or asked to stop). */
  interrupted: boolean;
}

const WAIT_SLACK_MS = 10_000;
/**
 * How long after a running command's time limit the CLI still waits for the board's own
 * answer (a board that can interrupt code answers ETIMEDOUT at once) before it reports
 * the timeout itself: the service waits 2 s more for boards that cannot.
 */
const REPORT_SLACK_MS = 500;
/** Longest single `commands.wait`, so per-command time limits are looked at in between. */
const WAIT_SLICE_MS = 1_000;
/** How long Ctrl-C waits for cancelled commands to end before reporting them. */
const CANCEL_WAIT_MS = 3_000;
const FINAL = new Set<CommandView['status']>(['ok', 'error', 'timeout', 'expired', 'cancelled', 'lost']);

/** Prints output chunks, with a header whenever the board changes. */
class OutputPrinter {
  private lastBoard: string | null = null;
  private readonly printed = new Map<string, number>();

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly safe = false,
  ) {}

  header(board: string): void {
    if (this.lastBoard === board) return;
    write(this.out, `## ${board}\n`);
    this.lastBoard = board;
  }

  chunk(cid: string, board: string, text: string): void {
    if (text === '') return;
    this.header(board);
    if (this.safe) write(this.out, text);
    else writeRaw(this.out, text);
    this.printed.set(cid, (this.printed.get(cid) ?? 0) + text.length);
  }

  /** Prints whatever of a finished command's output has not been printed yet. */
  remainder(view: CommandView): void {
    const all = view.output.map((chunk) => chunk.text).join('');
    this.chunk(view.cid, view.board, all.slice(this.printed.get(view.cid) ?? 0));
    if (all !== '' && !all.endsWith('\n') && this.lastBoard === view.board) write(this.out, '\n');
  }
}

export async function runOnBoards(api: ApiClient, boards: string, request: ApiCommandRequest, options: RunOptions): Promise<RunOutcome> {
  const printer = new OutputPrinter(options.out, options.safeOutput);
  const wanted = new Set<string>();
  const early: Array<{ cid: string; board: string; text: string }> = [];
  let subscription: EventSubscription | undefined;
  let known = false;
  let streaming = true;
  if (options.streamOutput) {
    // Subscribe before sending so no output is missed; events for commands not known yet are held.
    subscription = await api.events((event) => {
      // The service dropped events this client was too slow to take: what is printed so far
      // is whole, so streaming stops and each command's rest is printed when it ends.
      if (event.type === 'resync') streaming = false;
      if (event.type !== 'output' || !streaming) return;
      if (!known) early.push({ cid: event.cid, board: event.board, text: event.text });
      else if (wanted.has(event.cid)) printer.chunk(event.cid, event.board, event.text);
    });
  }
  const interrupt = new Interrupt();
  try {
    const { commands } = await api.call('commands.send', { boards, request, timeoutMs: options.timeoutMs, expireMs: options.expireMs });
    const waitFor = commands.filter((command) => command.boardOnline || options.waitOffline);
    const queued = commands.filter((command) => !command.boardOnline && !options.waitOffline && command.status === 'queued');
    for (const command of waitFor) wanted.add(command.cid);
    known = true;
    for (const item of early.splice(0)) if (wanted.has(item.cid)) printer.chunk(item.cid, item.board, item.text);
    if (!interrupt.pressed) {
      for (const command of queued) {
        write(
          options.err,
          `## ${command.board}: offline; not run yet: the command waits for it (expires in ${formatDuration(command.expiresAt - Date.now())}, id ${command.cid}; --wait-offline waits)\n`,
        );
      }
    }
    let finished: CommandView[] = [];
    if (waitFor.length > 0 && !interrupt.pressed) finished = await waitUntilDone(api, waitFor, options, interrupt.signal);
    if (interrupt.pressed) {
      // Every command of this run that has not ended is cancelled, the offline boards' too.
      const open = [...waitFor.filter((command) => !finished.some((view) => view.cid === command.cid && FINAL.has(view.status))), ...queued];
      const cancelled = (
        await cancelAll(
          api,
          open.map((command) => command.cid),
        )
      ).map((view) =>
        view.status !== 'cancelled'
          ? view
          : { ...view, error: view.startedAt === null ? 'withdrawn with Ctrl-C before the board took it' : 'stopped with Ctrl-C' },
      );
      finished = [...finished.filter((view) => FINAL.has(view.status)), ...cancelled];
      if (options.streamOutput) for (const view of finished) printer.remainder(view);
      return { finished, queued: [], interrupted: true };
    }
    if (options.streamOutput) for (const view of finished) printer.remainder(view);
    return { finished, queued, interrupted: false };
  } finally {
    interrupt.dispose();
    subscription?.close();
  }
}

/** Ctrl-C while commands run: the first press stops waiting (and cancels them), a second one quits at once. */
class Interrupt {
  private readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  private readonly onSignal = () => {
    if (this.pressed) process.exit(130);
    this.controller.abort();
  };

  constructor() {
    process.on('SIGINT', this.onSignal);
  }

  get pressed(): boolean {
    return this.signal.aborted;
  }

  dispose(): void {
    process.off('SIGINT', this.onSignal);
  }
}

/**
 * Waits until every command has ended, or its time limit (plus REPORT_SLACK_MS) has
 * passed since the board started it: that one is reported as a timeout at once, even if
 * the board cannot interrupt its code and the service would wait longer for a result.
 */
async function waitUntilDone(api: ApiClient, commands: SentCommand[], options: RunOptions, signal: AbortSignal): Promise<CommandView[]> {
  const longest = Math.max(...commands.map((command) => (options.waitOffline ? command.expiresAt - Date.now() : 0) + command.timeoutMs));
  const giveUpAt = Date.now() + longest + WAIT_SLACK_MS;
  const latest = new Map<string, CommandView>();
  const timedOut = new Set<string>();
  const isOpen = (cid: string) => !timedOut.has(cid) && !FINAL.has(latest.get(cid)?.status ?? 'queued');
  for (;;) {
    const now = Date.now();
    for (const view of latest.values()) {
      if (isOpen(view.cid) && view.status === 'running' && view.startedAt !== null && now >= view.startedAt + view.timeoutMs + REPORT_SLACK_MS)
        timedOut.add(view.cid);
    }
    const open = commands.map((command) => command.cid).filter(isOpen);
    if (open.length === 0 || now >= giveUpAt) break;
    const deadlines = open
      .map((cid) => latest.get(cid))
      .filter((view) => view?.status === 'running' && view.startedAt !== null)
      .map((view) => view!.startedAt! + view!.timeoutMs + REPORT_SLACK_MS);
    const sliceMs = Math.max(0, Math.min(WAIT_SLICE_MS, giveUpAt - now, ...deadlines.map((deadline) => deadline - now)));
    let views: CommandView[];
    try {
      views = await api.call('commands.wait', { cids: open, timeoutMs: Math.ceil(sliceMs) }, { signal });
    } catch (error) {
      if (signal.aborted) break;
      throw error;
    }
    for (const view of views) latest.set(view.cid, view);
  }
  return commands
    .map((command) => latest.get(command.cid))
    .filter((view): view is CommandView => view !== undefined)
    .map((view) =>
      timedOut.has(view.cid)
        ? { ...view, status: 'timeout', error: `no result within ${formatDuration(view.timeoutMs)}; the board may still be running it` }
        : view,
    );
}

/** Cancels commands (withdrawn from the queue, or the board asked to stop) and waits a little for them to end. */
async function cancelAll(api: ApiClient, cids: string[]): Promise<CommandView[]> {
  if (cids.length === 0) return [];
  await Promise.all(cids.map((cid) => api.call('commands.cancel', { cid }).catch(() => undefined)));
  return api.call('commands.wait', { cids, timeoutMs: CANCEL_WAIT_MS });
}

/** The exit code of a run: failed (1) if any command failed, queued (4) if some only wait for an offline board. */
export function runExitCode(outcome: RunOutcome, failed: number): number {
  if (outcome.interrupted) return EXIT.interrupted;
  if (failed > 0) return EXIT.failed;
  return outcome.queued.length > 0 ? EXIT.queued : EXIT.ok;
}

/** One line per failed command; returns how many failed (anything but `ok`). */
export function reportFailures(finished: CommandView[], err: NodeJS.WritableStream, hint?: (view: CommandView) => string | undefined): number {
  let failed = 0;
  for (const view of finished) {
    if (view.status === 'ok') continue;
    failed++;
    const reason =
      view.stopRequested && !FINAL.has(view.status)
        ? 'asked to stop; a board that cannot interrupt its code runs it to its end'
        : view.status === 'queued' || view.status === 'running'
          ? `no result yet (still ${view.status}; command id ${view.cid})`
          : view.status === 'error'
            ? (view.error ?? 'failed')
            : `${view.status}${view.error ? `: ${view.error}` : ''}`;
    const extra = hint?.(view);
    write(err, `## ${view.board}: ${reason}${extra ? ` (${extra})` : ''}\n`);
  }
  return failed;
}

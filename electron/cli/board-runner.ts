/**
 * Sends one command to the boards a BOARDS pattern names and follows it to the end:
 * output is streamed as it arrives under a `## BOARD` header, offline boards are reported
 * as queued (or waited for), and the final state of every command is returned.
 */
import type { ApiClient, EventSubscription } from '../manager/api/client.js';
import type { ApiCommandRequest, CommandView, SentCommand } from '../manager/api/contract.js';
import { write } from './cli-framework.js';
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
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
}

export interface RunOutcome {
  /** Final (or last known) state of every command that was waited for. */
  finished: CommandView[];
  /** Commands left queued for offline boards. */
  queued: SentCommand[];
}

const WAIT_SLACK_MS = 10_000;

/** Prints output chunks, with a header whenever the board changes. */
class OutputPrinter {
  private lastBoard: string | null = null;
  private readonly printed = new Map<string, number>();

  constructor(private readonly out: NodeJS.WritableStream) {}

  header(board: string): void {
    if (this.lastBoard === board) return;
    write(this.out, `## ${board}\n`);
    this.lastBoard = board;
  }

  chunk(cid: string, board: string, text: string): void {
    if (text === '') return;
    this.header(board);
    write(this.out, text);
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
  const printer = new OutputPrinter(options.out);
  const wanted = new Set<string>();
  const early: Array<{ cid: string; board: string; text: string }> = [];
  let subscription: EventSubscription | undefined;
  let known = false;
  if (options.streamOutput) {
    // Subscribe before sending so no output is missed; events for commands not known yet are held.
    subscription = await api.events((event) => {
      if (event.type !== 'output') return;
      if (!known) early.push({ cid: event.cid, board: event.board, text: event.text });
      else if (wanted.has(event.cid)) printer.chunk(event.cid, event.board, event.text);
    });
  }
  try {
    const { commands } = await api.call('commands.send', { boards, request, timeoutMs: options.timeoutMs, expireMs: options.expireMs });
    const waitFor = commands.filter((command) => command.boardOnline || options.waitOffline);
    const queued = commands.filter((command) => !command.boardOnline && !options.waitOffline && command.status === 'queued');
    for (const command of waitFor) wanted.add(command.cid);
    known = true;
    for (const item of early.splice(0)) if (wanted.has(item.cid)) printer.chunk(item.cid, item.board, item.text);
    for (const command of queued) {
      write(options.err, `## ${command.board}: offline; the command waits for it (expires in ${formatDuration(command.expiresAt - Date.now())}, id ${command.cid})\n`);
    }
    let finished: CommandView[] = [];
    if (waitFor.length > 0) {
      const longest = Math.max(...waitFor.map((command) => (options.waitOffline ? command.expiresAt - Date.now() : 0) + command.timeoutMs));
      finished = await api.call('commands.wait', {
        cids: waitFor.map((command) => command.cid),
        timeoutMs: Math.min(longest + WAIT_SLACK_MS, 600_000),
      });
    }
    if (options.streamOutput) for (const view of finished) printer.remainder(view);
    return { finished, queued };
  } finally {
    subscription?.close();
  }
}

/** One line per failed command; returns how many failed (anything but `ok`). */
export function reportFailures(finished: CommandView[], err: NodeJS.WritableStream): number {
  let failed = 0;
  for (const view of finished) {
    if (view.status === 'ok') continue;
    failed++;
    const reason = view.status === 'queued' || view.status === 'running'
      ? `no result yet (still ${view.status}; command id ${view.cid})`
      : view.status === 'error' ? view.error ?? 'failed' : `${view.status}${view.error ? `: ${view.error}` : ''}`;
    write(err, `## ${view.board}: ${reason}\n`);
  }
  return failed;
}


/**
 * Writes finished commands into their boards' history (and out of their pending hash) in
 * batches. A broadcast finishes thousands of commands within a second; written one by one
 * each cost a transaction of its own in Redis and in the manager. Here they wait a few
 * milliseconds and go out together: one cm_finish call per board with everything that board
 * finished, all calls issued at once (ioredis pipelines them). Until then a command is still
 * pending in Redis, so a manager that dies meanwhile finds it again at its next start: it is
 * pending or in the history, never neither. `flush()` writes what waits (stop, reads of the history).
 */
import type { FleetStore } from '../redis/fleet-store.js';
import type { Logger } from '../log.js';
import type { CommandView } from './command-dispatcher.js';
import { streamIdGreater } from './command-id.js';

/** How long a finished command may wait before its history is written. */
const FLUSH_DELAY_MS = 20;
/** Written at once when this many wait, whatever the delay. */
const FLUSH_ENTRIES = 1_000;
/** Output kept in a history entry. */
const HISTORY_OUTPUT_CHARS = 4_096;

/** What a board's history keeps of a finished command. */
export function historyRecord(view: CommandView): Record<string, string> {
  const output = view.output.map((chunk) => chunk.text).join('');
  const record = {
    cid: view.cid,
    op: view.op,
    summary: view.summary,
    status: view.status,
    board: view.board,
    createdAt: String(view.createdAt),
    finishedAt: String(view.finishedAt),
    error: view.error ?? '',
    output: output.length > HISTORY_OUTPUT_CHARS ? output.slice(0, HISTORY_OUTPUT_CHARS) + '…' : output,
  };
  return Object.fromEntries(Object.entries(record).map(([name, value]) => [name, wellFormed(value)]));
}

/**
 * Lone surrogates (text cut inside a character, as the output limit above may) as U+FFFD, as a
 * UTF-8 encoder writes them: cm_finish takes JSON, and Redis's JSON decoder refuses `\uD83D`.
 */
function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
}

interface Finished {
  cid: string;
  history: Record<string, string>;
}

/** A board's finished commands, and the newest queue entry it sent a result for. */
interface BoardFinished {
  commands: Finished[];
  ranThrough: string | null;
}

export class HistoryWriter {
  private queued = new Map<string, BoardFinished>();
  private count = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Writes under way: flush() waits for them too, so nothing added before it is left out. */
  private readonly writing = new Set<Promise<void>>();

  constructor(
    private readonly store: FleetStore,
    private readonly log: Logger,
  ) {}

  /** `ranEid`: the command's queue entry, when the board sent its result (its claim is then done with). */
  add(boardId: string, cid: string, history: Record<string, string>, ranEid: string | null = null): void {
    let board = this.queued.get(boardId);
    if (!board) this.queued.set(boardId, (board = { commands: [], ranThrough: null }));
    board.commands.push({ cid, history });
    if (ranEid !== null && (board.ranThrough === null || streamIdGreater(ranEid, board.ranThrough))) board.ranThrough = ranEid;
    this.count++;
    if (this.count >= FLUSH_ENTRIES) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), FLUSH_DELAY_MS);
  }

  /** Writes everything added so far; resolves when it is in Redis (or failed, logged). */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.count > 0) {
      const batch = this.queued;
      this.queued = new Map();
      this.count = 0;
      const write = this.write(batch);
      this.writing.add(write);
      void write.finally(() => this.writing.delete(write));
    }
    await Promise.all(this.writing);
  }

  private async write(batch: Map<string, BoardFinished>): Promise<void> {
    await Promise.all(
      [...batch].map(async ([boardId, { commands, ranThrough }]) => {
        try {
          await this.store.finish(boardId, commands, ranThrough);
        } catch (error) {
          const cids = commands.map((command) => command.cid).join(', ');
          this.log('warn', `could not record history of command${commands.length > 1 ? 's' : ''} ${cids}: ${(error as Error).message}`);
        }
      }),
    );
  }
}

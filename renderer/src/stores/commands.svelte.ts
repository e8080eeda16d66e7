/**
 * Commands this page started and follows live (the Code tab's runs, console lines): their
 * status and streamed output, by command id. Output events of other commands are ignored.
 */
import type { ApiEvent, CommandView, OutputChunk } from '../../../electron/manager/api/contract.js';
import { api } from './api.js';
import { isFinal } from '../lib/command-status.js';

export interface FollowedCommand {
  view: CommandView;
  output: OutputChunk[];
  /** When each chunk arrived (ms epoch), for "lines one by one" displays and tests. */
  arrivals: number[];
}

/** Events of commands nobody follows yet are kept this long (a fast board can answer before
 * the page has the reply of its own send). */
const EARLY_KEPT = 100;
const EARLY_OUTPUT_BYTES = 64 * 1024;

interface Early {
  view: CommandView | null;
  output: OutputChunk[];
  arrivals: number[];
  bytes: number;
}

function appendChunk(output: OutputChunk[], stream: OutputChunk['stream'], text: string): OutputChunk[] {
  const next = [...output];
  const last = next[next.length - 1];
  if (last && last.stream === stream) next[next.length - 1] = { stream, text: last.text + text };
  else next.push({ stream, text });
  return next;
}

export { isFinal };

class CommandsStore {
  followed = $state.raw(new Map<string, FollowedCommand>());
  private readonly early = new Map<string, Early>();

  /** Follows a command just sent; what already arrived for it is taken over. */
  follow(view: CommandView): void {
    const early = this.early.get(view.cid);
    this.early.delete(view.cid);
    const latest = early?.view && (isFinal(early.view) || !isFinal(view)) ? early.view : view;
    const output = isFinal(latest) ? [...latest.output] : early && early.output.length > 0 ? early.output : [...view.output];
    const next = new Map(this.followed);
    next.set(view.cid, { view: latest, output, arrivals: early?.arrivals ?? view.output.map(() => Date.now()) });
    this.followed = next;
  }

  forget(cid: string): void {
    const next = new Map(this.followed);
    next.delete(cid);
    this.followed = next;
  }

  handle(event: ApiEvent): void {
    if (event.type === 'output') {
      const entry = this.followed.get(event.cid);
      if (!entry) {
        this.keepEarly(event.cid, (early) => {
          if (early.bytes + event.text.length > EARLY_OUTPUT_BYTES) return;
          early.output = appendChunk(early.output, event.stream, event.text);
          early.arrivals.push(Date.now());
          early.bytes += event.text.length;
        });
        return;
      }
      const output = appendChunk(entry.output, event.stream, event.text);
      this.replace(event.cid, { ...entry, output, arrivals: [...entry.arrivals, Date.now()] });
    } else if (event.type === 'command') {
      const entry = this.followed.get(event.command.cid);
      if (!entry) {
        this.keepEarly(event.command.cid, (early) => {
          early.view = event.command;
        });
        return;
      }
      // The final view carries the whole output: take it, in case an event was missed.
      const output = isFinal(event.command) ? [...event.command.output] : entry.output;
      this.replace(event.command.cid, { ...entry, view: event.command, output });
    }
  }

  /** After a reconnect: refresh the followed commands that were still running. */
  async sync(): Promise<void> {
    for (const [cid, entry] of this.followed) {
      if (isFinal(entry.view)) continue;
      try {
        const view = await api.call('commands.get', { cid });
        this.replace(cid, { ...entry, view, output: [...view.output] });
      } catch {
        // Forgotten by the service (restarted): leave it as it was.
      }
    }
  }

  private keepEarly(cid: string, update: (early: Early) => void): void {
    let early = this.early.get(cid);
    if (!early) {
      early = { view: null, output: [], arrivals: [], bytes: 0 };
      this.early.set(cid, early);
      if (this.early.size > EARLY_KEPT) this.early.delete(this.early.keys().next().value!);
    }
    update(early);
  }

  private replace(cid: string, entry: FollowedCommand): void {
    const next = new Map(this.followed);
    next.set(cid, entry);
    this.followed = next;
  }
}

export const commands = new CommandsStore();

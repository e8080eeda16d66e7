/**
 * FCALL on a Redis Cluster, batched per node. ioredis's auto-pipelining groups a Cluster's
 * commands by the node of their first argument, which for FCALL is the function's name, so
 * FCALL is kept out of it (redis-connection.ts) — and then every FCALL is a write of its own
 * on the node's socket: at a broadcast to 2,000 boards about a quarter of the manager's CPU
 * went to those writes (profiled). This does what auto-pipelining would with the right key:
 * the calls of one turn of the event loop go out as one pipeline per node.
 *
 * A pipeline must stay on one node, so calls are grouped by the node set serving their
 * first key's slot, as ioredis checks it. A group refused as a whole (the slot map changed
 * in between) or a call answered with a redirection or a closed connection is sent again
 * on its own, where ioredis follows MOVED and waits through a failover as for any command.
 */
import type { Cluster } from 'ioredis';
import { slotOf } from './redis-nodes.js';

interface PendingCall {
  args: Array<string | Buffer>;
  buffer: boolean;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/** Errors that say where the slot is now, or that the node went away: not the call's own fault. */
const RETRY_ALONE = /^(MOVED|ASK|CLUSTERDOWN|TRYAGAIN)\b|Connection is closed|slots allocation group/;

type FcallCommands = {
  fcall: (...args: Array<string | Buffer>) => Promise<unknown>;
  fcallBuffer: (...args: Array<string | Buffer>) => Promise<unknown>;
};

export class ClusterFcall {
  private readonly groups = new Map<string, PendingCall[]>();
  private scheduled = false;

  constructor(private readonly cluster: Cluster) {}

  /** FCALL fn with its keys and arguments; `buffer`: the reply as Buffers. */
  call(fn: string, keys: string[], args: Array<string | Buffer>, buffer = false): Promise<unknown> {
    const group = this.cluster.slots[slotOf(keys[0] ?? '')]?.join(',') ?? '';
    return new Promise((resolve, reject) => {
      const pending = this.groups.get(group) ?? [];
      pending.push({ args: [fn, String(keys.length), ...keys, ...args], buffer, resolve, reject });
      this.groups.set(group, pending);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const groups = [...this.groups.values()];
    this.groups.clear();
    for (const calls of groups) void this.send(calls);
  }

  private async send(calls: PendingCall[]): Promise<void> {
    if (calls.length === 1) return this.alone(calls[0]!);
    const pipeline = this.cluster.pipeline() as unknown as FcallCommands & { exec: () => Promise<Array<[Error | null, unknown]> | null> };
    // A pipeline's command methods chain (they return the pipeline); exec() brings every reply.
    for (const { args, buffer } of calls) {
      if (buffer) pipeline.fcallBuffer(...args);
      else pipeline.fcall(...args);
    }
    let replies: Array<[Error | null, unknown]>;
    try {
      replies = (await pipeline.exec()) ?? [];
    } catch {
      for (const call of calls) void this.alone(call);
      return;
    }
    calls.forEach((call, index) => {
      const [error, reply] = replies[index] ?? [new Error('Connection is closed.'), null];
      if (!error) call.resolve(reply);
      else if (RETRY_ALONE.test(error.message)) void this.alone(call);
      else call.reject(error);
    });
  }

  /** One call on its own: ioredis routes it by its key, follows MOVED and waits through a failover. */
  private async alone(call: PendingCall): Promise<void> {
    const commands = this.cluster as unknown as FcallCommands;
    try {
      call.resolve(await (call.buffer ? commands.fcallBuffer(...call.args) : commands.fcall(...call.args)));
    } catch (error) {
      call.reject(error as Error);
    }
  }
}

/**
 * The manager's calls of cm_enqueue, cm_cancel and cm_finish go out together: the calls of
 * one turn of the event loop become one `cm_batch` FCALL per Redis node (cloudmanager.lua),
 * at most BATCH_CALLS each. At a broadcast to 10,000 boards that is a few dozen calls
 * instead of 20,000, each of which cost Redis a round of parsing and a reply, and the
 * manager a command object, a promise and garbage that outlived the young generation.
 *
 * On a Cluster the calls are grouped by the primary serving their board's slot (the client's
 * slot map). A call whose slot moved fails alone ("non local key") and a batch whose node
 * went away fails whole; such calls are sent again one by one by `single`, which routes by
 * key and follows MOVED (cluster-fcall.ts). A batch of one goes straight to `single`.
 */
import type { Redis } from 'ioredis';
import { callLoadingFunctions, isStaleReply } from './function-call.js';
import { isCluster, type RedisClient } from './redis-connection.js';
import { groupByPrimary, SLOT_ELSEWHERE } from './redis-nodes.js';

/** The functions cm_batch runs (its `batchable` table). */
export const BATCHABLE = new Set(['cm_enqueue', 'cm_cancel', 'cm_finish']);

/** Calls per cm_batch: one FCALL blocks Redis while it runs; 256 small calls take well under a millisecond. */
const BATCH_CALLS = 256;

/** How the library's functions refuse a call themselves (cloudmanager.lua). */
const OWN_REFUSAL = /^(QUEUEFULL|STALE|ERR cm_)/;

type Single = (fn: string, keys: string[], args: Array<string | Buffer>) => Promise<unknown>;
type FcallCommand = { fcall: (fn: string, numkeys: string, ...args: Array<string | Buffer>) => Promise<unknown> };

interface PendingCall {
  fn: string;
  keys: string[];
  args: Array<string | Buffer>;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

export class FcallBatcher {
  private queued: PendingCall[] = [];
  private scheduled = false;

  constructor(
    private readonly redis: RedisClient,
    /** One call on its own, as without batching (and for a batch of one). */
    private readonly single: Single,
    private readonly loadFunctions: () => Promise<void>,
  ) {}

  call(fn: string, keys: string[], args: Array<string | Buffer>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queued.push({ fn, keys, args, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const calls = this.queued;
    this.queued = [];
    for (const [node, group] of groupByPrimary(this.redis, calls, (call) => call.keys[0] ?? '')) {
      for (let start = 0; start < group.length; start += BATCH_CALLS) {
        const batch = group.slice(start, start + BATCH_CALLS);
        if (!node || batch.length === 1) for (const call of batch) this.alone(call);
        else void this.send(node, batch);
      }
    }
  }

  private async send(node: Redis, calls: PendingCall[]): Promise<void> {
    const args: Array<string | Buffer> = [];
    calls.forEach((call, index) => {
      // A call like the one before but for its first argument (a broadcast's CIDs) goes as '=' (cloudmanager.lua).
      if (index > 0 && repeatsAllButFirst(calls[index - 1]!, call)) args.push('=', String(call.keys.length), ...call.keys, '1', call.args[0]!);
      else args.push(call.fn, String(call.keys.length), ...call.keys, String(call.args.length), ...call.args);
    });
    const commands = node as unknown as FcallCommand;
    let replies: unknown[];
    try {
      replies = (await callLoadingFunctions(() => commands.fcall('cm_batch', '0', ...args), this.loadFunctions)) as unknown[];
    } catch (error) {
      const refusal = error as Error;
      if (isCluster(this.redis) && !isStaleReply(refusal)) for (const call of calls) this.alone(call);
      else for (const call of calls) call.reject(refusal);
      return;
    }
    calls.forEach((call, index) => {
      const [ok, value] = (replies[index] as [number, unknown] | undefined) ?? [0, 'ERR cm_batch: no reply'];
      if (ok === 1) call.resolve(value);
      // On a Cluster only a function's own refusal (QUEUEFULL, STALE, ERR cm_…) is final; any
      // other error (a slot moving, a node failing over) is the node's: sent again alone, routed.
      else if (isCluster(this.redis) && (SLOT_ELSEWHERE.test(String(value)) || !OWN_REFUSAL.test(String(value)))) this.alone(call);
      else call.reject(new Error(String(value)));
    });
  }

  private alone(call: PendingCall): void {
    this.single(call.fn, call.keys, call.args).then(call.resolve, call.reject);
  }
}

/** The same function and the same arguments but (maybe) the first. */
function repeatsAllButFirst(previous: PendingCall, call: PendingCall): boolean {
  if (previous.fn !== call.fn || previous.args.length !== call.args.length || call.args.length === 0) return false;
  for (let index = 1; index < call.args.length; index++) {
    const a = previous.args[index]!;
    const b = call.args[index]!;
    if (typeof a === 'string' ? a !== b : typeof b === 'string' || !a.equals(b)) return false;
  }
  return true;
}

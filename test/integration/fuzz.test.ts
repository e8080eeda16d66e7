/**
 * `npm run fuzz` as CI runs it: 2,000 hostile messages through one board's own credentials
 * (scripts/fuzz.mjs, a child process with the compiled service from dist/), two of them
 * floods of 128 entries of 1 MB, while three lab boards answer commands. None of their
 * commands may be lost, the service must survive, and its memory and Redis's must stay
 * near where they were:
 * - manager RSS within 64 MB of before, during the run (sampled every 200 ms) and after:
 *   V8 keeps some heap it grew (RSS rarely shrinks), but a manager that reads a flood whole
 *   holds 128 MB at once (it went 88 → 177 MB here before it read uplinks in bounded
 *   batches; 600 × 1 MB entries once left it 246 MB larger);
 * - Redis used_memory within 16 MB: what a board may keep in its own keys is bounded by its
 *   budget (tens of KiB) and the uplink is deleted once read; 16 MB is a dozen of the
 *   fuzz's largest values left behind;
 * - at most 32 KiB logged: refusals are logged a few times a minute per board, so 2,000 bad
 *   messages must not become 2,000 log lines.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '../..');

interface FuzzResult {
  messages: number;
  refused: number;
  refused_by_manager: number | null;
  lost_commands: number;
  good_commands: number;
  manager_rss_mb_before: number;
  manager_rss_mb_after: number;
  manager_rss_mb_max: number;
  redis_used_mb_before: number;
  redis_used_mb_after: number;
  log_bytes: number;
  drained: boolean;
  manager_exit: string | null;
  lost: string[];
  error?: string;
}

function runFuzz(args: string[]): Promise<{ result: FuzzResult; code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'scripts/fuzz.mjs'), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      try {
        resolve({ result: JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as FuzzResult, code, stderr });
      } catch {
        reject(new Error(`fuzz printed no JSON line (exit ${code}):\n${stdout}\n${stderr}`));
      }
    });
  });
}

describe('npm run fuzz', () => {
  it('2,000 hostile messages: no command of the other boards lost, memory and log back within bounds', { timeout: 300_000 }, async () => {
    const { result, code, stderr } = await runFuzz(['--messages', '2000', '--seed', '11']);
    const context = JSON.stringify(result) + stderr;
    expect(result.error, context).toBeUndefined();
    expect(result.manager_exit, context).toBeNull();
    expect(result.messages).toBe(2000);
    // The junk was refused, by Redis (error replies, closed connections) and by the manager.
    expect(result.refused).toBeGreaterThan(500);
    expect(result.refused_by_manager).toBeGreaterThan(100);
    expect(result.good_commands).toBeGreaterThanOrEqual(3);
    expect(result.lost, context).toEqual([]);
    expect(result.lost_commands).toBe(0);
    expect(result.drained, 'the manager read everything the hostile board wrote').toBe(true);
    expect(result.manager_rss_mb_max, context).toBeLessThanOrEqual(result.manager_rss_mb_before + 64);
    expect(result.manager_rss_mb_after, context).toBeLessThanOrEqual(result.manager_rss_mb_before + 64);
    expect(result.redis_used_mb_after, context).toBeLessThanOrEqual(result.redis_used_mb_before + 16);
    expect(result.log_bytes, context).toBeLessThanOrEqual(32 * 1024);
    expect(code).toBe(0);
  });
});

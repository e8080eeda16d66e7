// What `npm run chaos` (scripts/chaos.mjs) concludes from a run: the commands it sent and
// what became of them, set against the boards' flash folders (which every exec appends
// its token to) and the boards' history kept by the manager. Pure functions.

const FINAL_STATUSES = new Set(['ok', 'error', 'timeout', 'expired', 'cancelled', 'lost']);
/** Growth of the manager's memory within one lifetime that counts as a leak: both limits exceeded. */
const RSS_GROWTH_RATIO = 0.3;
const RSS_GROWTH_MB = 20;
const RSS_MIN_LIFETIME_MS = 60_000;
/** A fresh manager grows for its first half minute (code compiled, buffers sized): not a leak. */
const RSS_WARMUP_MS = 30_000;

const label = (command) => `${command.op} #${command.seq} ${command.cid ?? '(no cid)'} on ${command.board}`;

/**
 * @param {{ commands: any[], boards: any[], flash: Map<string, { chaosLog: string, files: (string|null)[], leftovers: string[] }>, histories: Map<string, Record<string, string>[]> }} run
 */
export function checkRun({ commands, boards, flash, histories }) {
  const violations = [];
  const byStatus = {};
  for (const command of commands.filter((item) => item.cid)) {
    const key = command.status === null ? 'unresolved' : command.errorCode === 'ENOTRUN' ? 'lost-ENOTRUN' : command.status;
    byStatus[key] = (byStatus[key] ?? 0) + 1;
  }

  const runs = new Map(); // board → token → count
  for (const board of boards) {
    const counts = new Map();
    const known = new Set(commands.filter((command) => command.board === board.name && command.op === 'exec').map((command) => command.token));
    for (const line of flash.get(board.name).chaosLog.split('\n')) {
      if (line === '') continue;
      if (!known.has(line)) violations.push(`${board.name}: /chaos.log holds a line no exec wrote: ${JSON.stringify(line.slice(0, 60))}`);
      counts.set(line, (counts.get(line) ?? 0) + 1);
    }
    runs.set(board.name, counts);
  }

  for (const command of commands) {
    if (command.sendOutcome === 'refused' || command.sendOutcome === 'pending') continue;
    const status = command.errorCode === 'ENOTRUN' ? 'lost (ENOTRUN)' : command.status;
    if (command.op === 'exec') {
      const count = runs.get(command.board).get(command.token) ?? 0;
      if (count > 1) violations.push(`${label(command)} ran ${count} times (reported ${status})`);
      if (command.sendOutcome === 'unknown') continue;
      if (command.status === 'ok' && count === 0) violations.push(`${label(command)} was reported ok but never ran`);
      if ((command.status === 'expired' || command.status === 'cancelled' || command.errorCode === 'ENOTRUN') && count > 0) {
        violations.push(`${label(command)} was reported ${status} but ran`);
      }
    }
    if (command.sendOutcome === 'sent' && !FINAL_STATUSES.has(command.status)) {
      violations.push(`${label(command)} never reached a final status (neither in commands.get nor in the board's history)`);
    }
    if (command.op === 'get' && command.gotSha !== undefined) {
      const versions = boards.find((board) => board.name === command.board).files[command.file].versions;
      if (!versions.has(command.gotSha))
        violations.push(`${label(command)} returned /f-${command.file}.bin with sha256 ${command.gotSha.slice(0, 12)}…, no version that was sent`);
    }
  }

  const leftovers = [];
  for (const board of boards) {
    const { files, leftovers: parts } = flash.get(board.name);
    leftovers.push(...parts.map((name) => `${board.name}:/${name}`));
    board.files.forEach((file, index) => {
      const sha = files[index];
      if (sha === null && file.putOk) violations.push(`${board.name}: /f-${index}.bin is missing although a put of it succeeded`);
      if (sha !== null && !file.versions.has(sha)) violations.push(`${board.name}: /f-${index}.bin has content no put sent (sha256 ${sha.slice(0, 12)}…)`);
    });
  }

  // The board's history (the last 200 per board) must agree with what was reported, once per command.
  const byCid = new Map(commands.filter((command) => command.cid).map((command) => [command.cid, command]));
  for (const [boardName, history] of histories) {
    const seen = new Set();
    for (const record of history) {
      const command = byCid.get(record.cid);
      if (!command) continue;
      if (seen.has(record.cid)) violations.push(`${label(command)} is in ${boardName}'s history twice`);
      seen.add(record.cid);
      if (command.status !== null && record.status !== command.status) {
        violations.push(`${label(command)} was reported ${command.status} but ${boardName}'s history says ${record.status}`);
      }
    }
  }
  return { violations, byStatus, leftovers };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const round = (value) => Math.round(value * 10) / 10;

/**
 * The manager's resident memory per lifetime: after its warm-up, a lifetime of over a
 * minute must not grow (the median of its first third against its last third).
 */
export function rssSummary(lifetimes) {
  const violations = [];
  const long = [];
  let maxMb = 0;
  for (const { pid, samples: all } of lifetimes) {
    for (const sample of all) maxMb = Math.max(maxMb, sample.mb);
    const samples = all.filter((sample) => sample.t - all[0].t >= RSS_WARMUP_MS);
    if (samples.length < 6 || samples.at(-1).t - samples[0].t < RSS_MIN_LIFETIME_MS) continue;
    const third = Math.floor(samples.length / 3);
    const first = median(samples.slice(0, third).map((sample) => sample.mb));
    const last = median(samples.slice(-third).map((sample) => sample.mb));
    const durationS = Math.round((samples.at(-1).t - samples[0].t) / 1000);
    long.push({ pid, durationS, firstThirdMb: round(first), lastThirdMb: round(last) });
    if (last - first > RSS_GROWTH_MB && last > first * (1 + RSS_GROWTH_RATIO)) {
      violations.push(`manager ${pid}: memory grew from ${round(first)} MB to ${round(last)} MB over ${durationS} s`);
    }
  }
  return { violations, summary: { lifetimes: lifetimes.length, maxMb: round(maxMb), over60s: long } };
}

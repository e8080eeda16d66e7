// The commands `npm run chaos` (scripts/chaos.mjs) sends and what became of them: exec
// (which appends its token to /chaos.log on the board, so the flash counts its runs), put
// of a random version of a file, and get; each followed to one final status, from the
// manager's dispatcher or, once the manager that knew a command was killed, from the
// board's history. What is concluded from them is chaos-checks.mjs's.
import { createHash } from 'node:crypto';

export const sha256 = (data) => createHash('sha256').update(data).digest('hex');

const FINAL_STATUSES = ['ok', 'error', 'timeout', 'expired', 'cancelled', 'lost'];

/**
 * The next command for `board` (its `files` record the versions sent), picked with `rng`:
 * `entry` is what the ledger keeps, `request` what is sent.
 */
export function nextRequest({ rng, seed, board, seq, filesPerBoard, execTimeoutMs }) {
  const roll = rng.next();
  if (roll < 0.5) {
    const token = `k${seed.toString(36)}-${seq}`;
    // Append mode, one line per run: the log then counts the runs.
    // A pause first, so a kill may land while it runs.
    const code = `import time\ntime.sleep_ms(${Math.floor(rng.next() * 400)})\nf = open('/chaos.log', 'a')\nf.write('${token}\\n')\nf.close()\n`;
    return { entry: { op: 'exec', token }, request: { op: 'exec', code, timeoutMs: execTimeoutMs } };
  }
  const file = Math.floor(rng.next() * filesPerBoard);
  const filePath = `/f-${file}.bin`;
  if (roll < 0.8) {
    const size = 256 + Math.floor(rng.next() * 16 * 1024);
    const data = Buffer.alloc(size);
    for (let index = 0; index < size; index++) data[index] = Math.floor(rng.next() * 256);
    const sha = sha256(data);
    board.files[file].versions.add(sha); // before sending: a send whose answer is lost may still have run
    return { entry: { op: 'put', file, sha }, request: { op: 'put', path: filePath, dataBase64: data.toString('base64') } };
  }
  return { entry: { op: 'get', file }, request: { op: 'get', path: filePath } };
}

/** A history record as a view: the history keeps the error text, whose wording names ENOTRUN. */
const historyView = (record) => ({
  status: record.status,
  error: record.error || null,
  errorCode: record.error?.startsWith('not run:') ? 'ENOTRUN' : null,
});

/**
 * The commands of a run (`commands`: { seq, board, op, token, file, sha, cid, sendOutcome,
 * status, errorCode, error }) and how each learns its final status. `call` is the run's API
 * call (route, input, { retry }), `note` records a violation.
 */
export function commandLedger({ boards, call, log, note }) {
  const commands = [];

  async function settle(command, view) {
    if (!view || !FINAL_STATUSES.includes(view.status)) return;
    if (command.status !== null) {
      if (command.status !== view.status)
        note(`command ${command.cid} (${command.op} #${command.seq} on ${command.board}) was reported ${command.status}, then ${view.status}`);
      return;
    }
    command.status = view.status;
    command.errorCode = view.errorCode ?? null;
    command.error = view.error ?? null;
    log(
      `${command.op} #${command.seq} ${command.cid} on ${command.board}: ${view.status}${view.errorCode ? ` ${view.errorCode}` : ''}${view.error ? ` (${view.error})` : ''}`,
    );
    if (command.op === 'put' && view.status === 'ok') boards.find((board) => board.name === command.board).files[command.file].putOk = true;
    if (command.op === 'get' && view.status === 'ok') {
      try {
        const file = await call('commands.file', { cid: command.cid }, { retry: false });
        command.gotSha = file.sha256;
      } catch (error) {
        log(`file of get ${command.cid}: ${error.message}`); // gone with a killed manager: nothing to check
      }
    }
  }

  /** Follows every unfinished command: from the dispatcher, or the board's history once the manager that knew it is gone. Returns how many are still open. */
  async function resolveOpen() {
    const open = commands.filter((command) => command.cid && command.status === null);
    if (open.length === 0) return 0;
    const views = await call('commands.wait', { cids: open.map((command) => command.cid), timeoutMs: 0 }, { retry: false });
    const byCid = new Map(views.map((view) => [view.cid, view]));
    const missing = [];
    for (const command of open) {
      const view = byCid.get(command.cid);
      if (view) await settle(command, view);
      else missing.push(command);
    }
    for (const boardName of new Set(missing.map((command) => command.board))) {
      const history = await call('boards.history', { board: boardName, count: 200 }, { retry: false });
      const byHistory = new Map(history.map((record) => [record.cid, record]));
      for (const command of missing.filter((item) => item.board === boardName)) {
        const record = byHistory.get(command.cid);
        if (record) await settle(command, historyView(record));
      }
    }
    return commands.filter((command) => command.cid && command.status === null).length;
  }

  return { commands, settle, resolveOpen };
}

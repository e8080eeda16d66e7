/**
 * What `mbm` prints is safe to print: text a board sent (its hello, file names, error
 * texts) reaches the terminal with its control characters escaped, and secrets a user put
 * in a board's settings are masked however deep they sit. Against a background service
 * (compiled CLI from dist/) and a hostile board speaking the wire protocol with its own
 * credentials.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RespConnection } from '../../electron/manager/redis/resp-connection.js';
import { boardKeys } from '../../electron/manager/redis/keys.js';
import type { RespValue } from '../../electron/manager/redis/resp-codec.js';
import { freePort, freeUdpPort } from '../helpers/free-port.js';
import { waitFor } from '../helpers/lab.js';
import { runMbm, type Run } from '../helpers/mbm-cli.js';

const CLEAR_SCREEN = '\x1b[2J\x1b[H';
const RED = '\x1b[31m';
const BELL = '\x07';
/** Any byte a terminal acts on, other than a line break or a tab. */
const TERMINAL_CONTROL = /[\x00-\x08\x0b-\x1f\x7f]|\u009b/;

interface Credentials {
  id: string;
  user: string;
  password: string;
}

type Answer = (op: string, fields: Map<string, string>) => { out?: string; ok: boolean; r?: unknown; e?: string; ec?: string };

/**
 * A board that speaks the wire protocol (PROTOCOL.md §4.2, §6) by hand, so it can say what
 * no honest client would: it claims commands, answers each with `answer`, and heartbeats.
 */
class HandBoard {
  answer: Answer = () => ({ ok: true });
  private cursor = '';
  private running = true;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly connection: RespConnection,
    private readonly id: string,
  ) {}

  static async connect(port: number, credentials: Credentials): Promise<HandBoard> {
    const connection = await RespConnection.connect({ host: '127.0.0.1', port });
    await connection.call('AUTH', credentials.user, credentials.password);
    return new HandBoard(connection, credentials.id);
  }

  send(...fields: string[]): Promise<RespValue> {
    return this.connection.call('XADD', boardKeys(this.id).up, 'MAXLEN', '~', '1000', '*', ...fields);
  }

  async hello(overrides: Record<string, string> = {}): Promise<void> {
    const keys = boardKeys(this.id);
    if (this.cursor === '') this.cursor = String(((await this.connection.call('FCALL', 'cm_claim', '2', keys.cmd, keys.state, '')) as Buffer[])[0]);
    const fields = { v: '1', boot: 'hand1', p: 'esp8266', mv: '1.27.0', cv: '1.0', mf: '30000', ip: '10.0.0.5', hb: '5', c: this.cursor, ...overrides };
    await this.send('k', 'hello', ...Object.entries(fields).flat());
  }

  start(): void {
    this.loop = this.serve();
  }

  private async serve(): Promise<void> {
    const keys = boardKeys(this.id);
    while (this.running) {
      const claimed = (await this.connection.call('FCALL', 'cm_claim', '2', keys.cmd, keys.state, this.cursor)) as Buffer[];
      if (claimed.length > 1) {
        const eid = String(claimed[0]);
        const fields = new Map<string, string>();
        for (let index = 1; index < claimed.length; index += 2) fields.set(String(claimed[index]), String(claimed[index + 1]));
        const cid = fields.get('i')!;
        await this.send('k', 'start', 'i', cid, 'e', eid);
        this.cursor = eid;
        const reply = this.answer(fields.get('o')!, fields);
        if (reply.out !== undefined) await this.send('k', 'out', 'i', cid, 'n', '0', 's', '1', 'd', reply.out);
        const extra = [
          ...(reply.r !== undefined ? ['r', JSON.stringify(reply.r)] : []),
          ...(reply.e !== undefined ? ['e', reply.e, 'ec', reply.ec ?? 'EFAIL'] : []),
        ];
        await this.send('k', 'res', 'i', cid, 'ok', reply.ok ? '1' : '0', 'n', reply.out !== undefined ? '1' : '0', ...extra);
        continue;
      }
      this.cursor = String(claimed[0]);
      const woken = await this.connection.call('XREAD', 'COUNT', '1', 'BLOCK', '500', 'STREAMS', keys.cmd, this.cursor);
      if (woken === null) await this.send('k', 'hb', 'mf', '30000');
    }
  }

  async close(): Promise<void> {
    this.running = false;
    await this.loop?.catch(() => undefined);
    this.connection.destroy();
  }
}

describe('mbm prints board text and settings safely', () => {
  let dataDir: string;
  let work: string;
  let redisPort: number;
  let board: HandBoard | undefined;

  const mbm = (args: string[]): Promise<Run> => runMbm(args, { dataDir, cwd: work });

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cm-safe-out-'));
    work = await mkdtemp(path.join(os.tmpdir(), 'cm-safe-out-work-'));
    redisPort = await freePort();
    const started = await mbm(['server-start', '--port', String(redisPort), '--discovery-port', String(await freeUdpPort())]);
    expect(started.code).toBe(0);
    expect((await mbm(['board-enroll', 'evil', '--out', 'evil.json'])).code).toBe(0);
    board = await HandBoard.connect(redisPort, JSON.parse(await readFile(path.join(work, 'evil.json'), 'utf8')) as Credentials);
  });
  afterAll(async () => {
    await board?.close();
    await mbm(['server-stop']).catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('refuses a hello whose ip, cv or nm carry escape sequences, and board-list never prints one', async () => {
    await board!.hello({ ip: `${CLEAR_SCREEN}10.0.0.5${BELL}`, cv: `1.0${RED}` });
    const managerLog = path.join(dataDir, 'logs', 'manager.log');
    // Handled either way: refused (logged, naming the board and the field), or taken (the board is online).
    const handled = await waitFor(
      async () => {
        const log = await readFile(managerLog, 'utf8').catch(() => '');
        if (/refused data from board evil .*hello: field "(ip|cv)"/.test(log)) return 'refused';
        const list = JSON.parse((await mbm(['board-list', '--json'])).stdout) as Array<{ name: string; online: boolean }>;
        return list.find((entry) => entry.name === 'evil')?.online ? 'taken' : null;
      },
      20_000,
      'the hostile hello to be handled',
    );
    const listing = await mbm(['board-list']);
    expect(listing.code).toBe(0);
    expect(listing.stdout).not.toMatch(TERMINAL_CONTROL);
    expect(handled).toBe('refused');
    const json = JSON.parse((await mbm(['board-list', '--json'])).stdout) as Array<{ name: string; ip: string | null; client?: string | null }>;
    expect(json.find((entry) => entry.name === 'evil')).toMatchObject({ ip: null });
  });

  it('escapes what a board answers (file names, error texts) in every listing', async () => {
    await board!.hello();
    board!.start();
    await waitFor(
      async () =>
        (JSON.parse((await mbm(['board-list', '--json'])).stdout) as Array<{ name: string; online: boolean }>).some((b) => b.name === 'evil' && b.online),
      20_000,
      'the board online',
    );
    board!.answer = (op) => (op === 'ls' ? { ok: true, r: [[`boot${CLEAR_SCREEN}.py`, 'f', 12]] } : { ok: false, e: `failed${RED} badly${BELL}`, ec: 'EIO' });
    const listing = await mbm(['board-ls', 'evil', '/']);
    expect(listing.code).toBe(0);
    expect(listing.stdout).not.toMatch(TERMINAL_CONTROL);
    expect(listing.stdout).toContain('boot\\u001b[2J\\u001b[H.py');
    const failed = await mbm(['board', 'evil', 'mkdir', '/x']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('failed\\u001b[31m badly\\u0007');
    expect(failed.stderr).not.toMatch(TERMINAL_CONTROL);
  });

  it("board-execute prints the program's output raw, and escaped with --safe", async () => {
    board!.answer = () => ({ ok: true, out: `${RED}red${BELL}\n` });
    const raw = await mbm(['board-execute', 'evil', '-c', 'print(1)']);
    expect(raw.code).toBe(0);
    expect(raw.stdout).toBe(`## evil\n${RED}red${BELL}\n`);
    const safe = await mbm(['board-execute', 'evil', '-c', 'print(1)', '--safe']);
    expect(safe.code).toBe(0);
    expect(safe.stdout).toBe('## evil\n\\u001b[31mred\\u0007\n');
  });

  it('settings and board-history mask passwords nested in objects, arrays and JSON text', async () => {
    const config = {
      name: 'evil',
      wifi: { ssid: 'home', password: 'hunter2-nested' },
      networks: [
        { ssid: 'work', Passphrase: 'hunter2-array' },
        { ssid: 'cafe', psk: 'x', api_key: 'hunter2-key' },
      ],
      mqtt: JSON.stringify({ host: 'broker', token: 'hunter2-json' }),
      password: 'hunter2-top',
    };
    board!.answer = (op) => (op === 'cfg_get' ? { ok: true, r: config } : { ok: true, r: {} });
    const settings = await mbm(['board', 'evil', 'settings']);
    expect(settings.code).toBe(0);
    expect(settings.stdout).toContain('ssid');
    expect(settings.stdout).not.toContain('hunter2');
    const set = await mbm(['board', 'evil', 'set', 'wifi={"ssid":"home","password":"hunter2-set"}']);
    expect(set.code).toBe(0);
    const setText = await mbm(['board', 'evil', 'set', `mqtt=${JSON.stringify(JSON.stringify({ secret: 'hunter2-text' }))}`]);
    expect(setText.code).toBe(0);
    const history = await mbm(['board-history', 'evil']);
    expect(history.code).toBe(0);
    expect(history.stdout).toContain('cfg_set wifi=');
    expect(history.stdout).not.toContain('hunter2');
    expect((await mbm(['board-history', 'evil', '--json'])).stdout).not.toContain('hunter2');
  });
});

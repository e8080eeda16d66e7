/**
 * The local API against a caller that is not the UI or the CLI (issue 11 point 7), on the
 * real server, which runs in this process so its memory can be watched: route names that
 * only the object prototype knows, bodies over the limit, a foreign page's Origin (with a
 * valid token, on HTTP and on both WebSockets), and a large staged upload that must not
 * be held in memory several times over.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MAX_FILE_BYTES } from '../../electron/manager/transfer/board-path.js';
import { startLab, waitFor, type Lab } from '../helpers/lab.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const MiB = 1024 * 1024;
/**
 * What the manager may hold while it refuses a 25 MiB body or stages a 16 MiB file: the
 * socket's and the file stream's buffers, not the body.
 */
const HELD_GROWTH_BOUND_BYTES = 8 * MiB;

// A full collection before each sample, so that what is measured is what the service holds,
// not socket chunks it has let go of and the collector has not got to yet.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

/** Memory the process holds: the JS heap and buffers, after a full collection. */
function heldBytes(): number {
  collectGarbage();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}

interface Reply {
  status: number;
  body: string;
}

/**
 * POSTs `body` from a buffer allocated before the measurement (its pieces are views, never
 * copies), with a Content-Length or chunked, and reports how far what the process holds
 * rose while the body travelled (over the lowest level seen before, so that memory an
 * earlier request lets go of meanwhile cannot hide a rise).
 */
async function post(
  url: string,
  headers: Record<string, string>,
  body: Buffer,
  options: { chunked?: boolean } = {},
): Promise<Reply & { peakHeldGrowth: number }> {
  let lowest = heldBytes();
  let rise = 0;
  const sample = () => {
    const held = heldBytes();
    lowest = Math.min(lowest, held);
    rise = Math.max(rise, held - lowest);
  };
  const sampler = setInterval(sample, 50);
  try {
    const reply = await new Promise<Reply>((resolve, reject) => {
      const request = http.request(
        url,
        { method: 'POST', headers: options.chunked ? headers : { ...headers, 'content-length': String(body.length) } },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          response.on('error', reject);
        },
      );
      request.on('error', reject);
      // The server answers 413 while the body is still on its way and reads the rest
      // without keeping it: a reset instead of that answer fails here.
      const piece = 256 * 1024;
      let offset = 0;
      const writeMore = () => {
        while (offset < body.length) {
          const end = Math.min(offset + piece, body.length);
          const more = request.write(body.subarray(offset, end));
          offset = end;
          if (!more) return void request.once('drain', writeMore);
        }
        request.end();
      };
      writeMore();
    });
    sample();
    return { ...reply, peakHeldGrowth: rise };
  } finally {
    clearInterval(sampler);
  }
}

/** Sends only the headers with `Expect: 100-continue`, and the body only if told to go on. */
function expectingContinue(url: string, headers: Record<string, string>, body: Buffer): Promise<Reply & { continued: boolean }> {
  return new Promise((resolve, reject) => {
    let continued = false;
    const request = http.request(
      url,
      { method: 'POST', headers: { ...headers, expect: '100-continue', 'content-length': String(body.length) } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), continued }));
      },
    );
    request.on('continue', () => {
      continued = true;
      request.end(body);
    });
    request.on('error', reject);
    request.flushHeaders();
  });
}

function upgradeStatus(url: string, headers: Record<string, string>, protocols?: string[]): Promise<number> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, protocols, { headers });
    socket.on('open', () => {
      socket.terminate();
      resolve(101);
    });
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      socket.terminate();
    });
    socket.on('error', () => resolve(0));
  });
}

describe('the local API refuses what the UI and the CLI never send', () => {
  let lab: Lab;
  let api: string;
  let bearer: Record<string, string>;

  beforeAll(async () => {
    lab = await startLab({ boards: 1, prefix: 'api' });
    api = lab.manager.apiUrl;
    bearer = { authorization: `Bearer ${lab.manager.apiToken}` };
  });
  afterAll(async () => {
    await lab?.close();
  });

  it('route names that only the object prototype knows are unknown routes (404), not internal errors', async () => {
    for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
      const response = await fetch(`${api}/api/${name}`, { method: 'POST', headers: bearer, body: '{}' });
      expect(response.status, name).toBe(404);
      expect(await response.json(), name).toEqual({ ok: false, error: { code: 'not_found', message: `no route POST /api/${name}` } });
    }
    expect(lab.logs.filter((entry) => entry.level === 'error')).toEqual([]);
  });

  it('a 25 MiB body gets 413 before it is read, sent with a length or chunked', async () => {
    const huge = Buffer.alloc(25 * MiB, 0x20);
    huge.write('{"boards":"api-1","request":{"op":"exec","code":"');
    const headers = { ...bearer, 'content-type': 'application/json' };
    const withLength = await post(`${api}/api/commands.send`, headers, huge);
    expect(withLength.status).toBe(413);
    expect(JSON.parse(withLength.body)).toMatchObject({ ok: false, error: { code: 'bad_request', message: expect.stringMatching(/larger than 24 MiB/) } });
    expect(withLength.peakHeldGrowth).toBeLessThan(HELD_GROWTH_BOUND_BYTES);
    const chunked = await post(`${api}/api/commands.send`, headers, huge, { chunked: true });
    expect(chunked.status).toBe(413);
    const staged = await post(`${api}/api/files.stage`, { ...bearer, 'content-type': 'application/octet-stream' }, huge);
    expect(staged.status).toBe(413);
    expect(JSON.parse(staged.body).error.message).toMatch(/larger than 16 MiB/);
    expect(staged.peakHeldGrowth).toBeLessThan(HELD_GROWTH_BOUND_BYTES);
    // A client that asks first (curl does, for bodies over 1 MB) is told no before it sends;
    // one within the limit is told to go on.
    expect(await expectingContinue(`${api}/api/files.stage`, bearer, huge)).toMatchObject({ status: 413, continued: false });
    expect(await expectingContinue(`${api}/api/files.stage`, bearer, Buffer.from('small'))).toMatchObject({ status: 200, continued: true });
    // The service carries on.
    expect((await lab.api.call('status', {})).boards.online).toBe(1);
  });

  it('a request carrying a foreign Origin is refused even with the right token; the UI origin and no Origin (the CLI) are not', async () => {
    const port = new URL(api).port;
    const status = (headers: Record<string, string>) => fetch(`${api}/api/status`, { method: 'POST', headers: { ...bearer, ...headers }, body: '{}' });
    const foreign = await status({ origin: 'http://evil.example' });
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: { message: string } }).error.message).toMatch(/origin/i);
    expect((await status({ origin: `http://127.0.0.1:${Number(port) + 1}` })).status).toBe(403);
    expect((await status({ origin: 'null' })).status).toBe(403);
    expect((await status({ origin: `http://127.0.0.1:${port}` })).status).toBe(200);
    expect((await status({ origin: `http://localhost:${port}` })).status).toBe(200);
    expect((await status({})).status).toBe(200);
    // Raw uploads too.
    const staged = await fetch(`${api}/api/files.stage`, { method: 'POST', headers: { ...bearer, origin: 'http://evil.example' }, body: 'x' });
    expect(staged.status).toBe(403);
    // Both WebSockets, with the token as a header and as the subprotocol the UI would use.
    const ws = api.replace(/^http/, 'ws');
    const token = [`cloudmanager.${lab.manager.apiToken}`];
    for (const path of ['/api/events', '/api/usb/console?port=/dev/nothing']) {
      expect(await upgradeStatus(ws + path, { ...bearer, origin: 'http://evil.example' }), path).toBe(403);
      expect(await upgradeStatus(ws + path, { origin: 'http://evil.example' }, token), path).toBe(403);
      expect(await upgradeStatus(ws + path, { origin: `http://127.0.0.1:${port}` }, token), path).toBe(101);
      expect(await upgradeStatus(ws + path, bearer), path).toBe(101);
    }
  });

  it('a 16 MiB staged upload is not held in memory while it arrives, and reaches a board intact', async () => {
    const data = Buffer.alloc(MAX_FILE_BYTES);
    for (let index = 0; index < data.length; index += 4) data.writeUInt32LE((index * 2_654_435_761) >>> 0, index);
    const staged = await post(`${api}/api/files.stage`, { ...bearer, 'content-type': 'application/octet-stream' }, data, { chunked: true });
    expect(staged.status).toBe(200);
    const { result } = JSON.parse(staged.body) as { result: { id: string; size: number; sha256: string } };
    expect(result).toMatchObject({ size: data.length, sha256: sha256(data) });
    expect(staged.peakHeldGrowth).toBeLessThan(HELD_GROWTH_BOUND_BYTES);
    const job = await lab.api.call('jobs.start', { kind: 'upload', boards: 'api-1', files: [{ file: result.id, path: '/big.bin' }] });
    const done = await waitFor(
      async () => {
        const view = await lab.api.call('jobs.get', { id: job.id });
        return view.state === 'done' ? view : null;
      },
      60_000,
      'the upload job to finish',
    );
    expect(done.counts).toMatchObject({ ok: 1, failed: 0 });
    expect(sha256(await lab.fleet.byName('api-1')!.fs.readFile('/big.bin'))).toBe(sha256(data));
  }, 90_000);
});

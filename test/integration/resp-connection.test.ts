import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RespError, RespProtocolError, type RespValue } from '../../electron/manager/redis/resp-codec.js';
import { RespConnectError, RespConnection, RespConnectionClosedError, RespUnexpectedReplyError } from '../../electron/manager/redis/resp-connection.js';

const REDIS_BIN = '/usr/bin/redis-server';
const HOST = '127.0.0.1';

// Local on purpose: test/helpers/free-port.ts may be written concurrently by someone else.
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface RedisServer {
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Start redis-server on a free port; retries if another process grabbed the port first. */
async function startRedis(): Promise<RedisServer> {
  let lastOutput = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const proc = spawn(REDIS_BIN, ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--maxclients', '10000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const ready = await new Promise<boolean>((resolve) => {
      let output = '';
      const timer = setTimeout(() => resolve(false), 10_000);
      const onData = (data: Buffer): void => {
        output += data.toString();
        lastOutput = output;
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.on('data', onData);
      proc.once('exit', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    const stop = (): Promise<void> =>
      new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGKILL');
      });
    if (ready) return { port, proc, stop };
    await stop();
  }
  throw new Error(`redis-server did not start:\n${lastOutput}`);
}

const connect = (port: number): Promise<RespConnection> => RespConnection.connect({ host: HOST, port });

/** Poll until `check` holds (used to wait for server-side state such as a blocked client). */
async function until(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function infoField(conn: RespConnection, section: string, field: string): Promise<string> {
  const info = ((await conn.call('INFO', section)) as Buffer).toString();
  return new RegExp(`^${field}:(.*)\r?$`, 'm').exec(info)?.[1] ?? '';
}

describe('RespConnection against redis-server', () => {
  let redis: RedisServer;
  let conn: RespConnection;

  beforeAll(async () => {
    redis = await startRedis();
    conn = await connect(redis.port);
  });

  afterAll(async () => {
    conn?.destroy();
    await redis?.stop();
  });

  it('PING answers PONG as a simple string', async () => {
    expect(await conn.call('PING')).toBe('PONG');
    expect(await conn.call('PING', 'hello')).toEqual(Buffer.from('hello'));
  });

  it('SET/GET round-trips binary values with \\r\\n and \\0 inside', async () => {
    const value = Buffer.from([0, 13, 10, 0, 255, 36, 45, 13, 10, 42, 0]);
    const key = Buffer.from('bin\r\n\0key');
    expect(await conn.call('SET', key, value)).toBe('OK');
    expect(await conn.call('GET', key)).toEqual(value);
    expect(await conn.call('GET', 'missing-key')).toBeNull();
    expect(await conn.call('SET', 'empty', '')).toBe('OK');
    expect(await conn.call('GET', 'empty')).toEqual(Buffer.alloc(0));
  });

  it('a pipeline of 1,000 INCRs answers in order', async () => {
    const commands = Array.from({ length: 1000 }, () => ['INCR', 'counter']);
    const results = await conn.pipeline(commands);
    expect(results).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
  });

  // A virtual board's output, result and next XREAD are three calls in one tick: one write
  // (one syscall, one wake-up of Redis) instead of three, 10,000 times per broadcast.
  it('calls made in one tick leave in one socket write, and each gets its own reply in order', async () => {
    const own = await connect(redis.port);
    const writes: number[] = [];
    const proto = net.Socket.prototype as unknown as Record<'_write' | '_writev', (...args: unknown[]) => unknown>;
    const originals = { _write: proto._write, _writev: proto._writev };
    for (const name of ['_write', '_writev'] as const) {
      proto[name] = function (this: net.Socket, ...args: unknown[]) {
        if (this.remotePort === redis.port) writes.push(name === '_writev' ? (args[0] as unknown[]).length : 1);
        return originals[name].apply(this, args);
      };
    }
    try {
      const replies = await Promise.all([own.call('SET', 'tick', 'a'), own.call('APPEND', 'tick', 'b'), own.call('GET', 'tick')]);
      expect(replies).toEqual(['OK', 2, Buffer.from('ab')]);
      // Then a call of a later tick goes on its own.
      expect(await own.call('GET', 'tick')).toEqual(Buffer.from('ab'));
    } finally {
      Object.assign(proto, originals);
      own.destroy();
    }
    expect(writes).toEqual([3, 1]);
  });

  it('an error reply rejects call() but is a value inside pipeline()', async () => {
    await conn.call('SET', 'str', 'x');
    const rejected = await conn.call('LPUSH', 'str', 'y').catch((e: unknown) => e);
    expect(rejected).toBeInstanceOf(RespError);
    expect((rejected as RespError).code).toBe('WRONGTYPE');

    const results = await conn.pipeline([
      ['SET', 'str', '1'],
      ['LPUSH', 'str', 'y'],
      ['INCR', 'str'],
    ]);
    expect(results[0]).toBe('OK');
    expect(results[1]).toBeInstanceOf(RespError);
    expect((results[1] as RespError).code).toBe('WRONGTYPE');
    expect(results[2]).toBe(2);
    // The connection stays paired after errors.
    expect(await conn.call('PING')).toBe('PONG');
  });

  it('XREAD BLOCK 100 returns null after the timeout (no client-side timeout interferes)', async () => {
    const start = Date.now();
    expect(await conn.call('XREAD', 'BLOCK', 100, 'STREAMS', 'nothing-here', '$')).toBeNull();
    expect(Date.now() - start).toBeGreaterThanOrEqual(90);
  });

  it('XRANGE returns nested arrays', async () => {
    const id1 = (await conn.call('XADD', 'stream', '*', 'f', 'v', 'bin', Buffer.from([0, 13, 10]))) as Buffer;
    const id2 = (await conn.call('XADD', 'stream', '*', 'n', 2)) as Buffer;
    expect(await conn.call('XRANGE', 'stream', '-', '+')).toEqual([
      [id1, [Buffer.from('f'), Buffer.from('v'), Buffer.from('bin'), Buffer.from([0, 13, 10])]],
      [id2, [Buffer.from('n'), Buffer.from('2')]],
    ]);
  });

  it('keeps order through socket backpressure', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 0x61);
    big.write('\r\n$-1\r\n', 1000); // protocol-looking bytes inside the value
    const bigSet = conn.call('SET', 'big', big);
    // These are issued while the 8 MB write is still buffered in the socket.
    const incrs = Array.from({ length: 200 }, () => conn.call('INCR', 'bp-counter'));
    const bigGet = conn.call('GET', 'big');
    expect(await bigSet).toBe('OK');
    expect(await Promise.all(incrs)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(((await bigGet) as Buffer).equals(big)).toBe(true);
  });

  it('redis ignores an empty multibulk (*0) without replying, which is why encodeCommand refuses it', async () => {
    const other = await connect(redis.port);
    await other.writeRaw(Buffer.from('*0\r\n'));
    expect(await other.call('PING')).toBe('PONG');
    other.destroy();
  });

  it('writeRaw pairs hand-made frames and sees garbage answered with a protocol error', async () => {
    const other = await connect(redis.port);
    expect(await other.writeRaw(Buffer.from('*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n'), 2)).toEqual(['PONG', 'PONG']);
    const closed = new Promise<Error | undefined>((resolve) => other.once('close', resolve));
    const [reply] = await other.writeRaw(Buffer.from('*abc\r\n'), 1);
    expect(reply).toBeInstanceOf(RespError);
    expect((reply as RespError).message).toMatch(/Protocol error/);
    await closed; // redis drops the client after a protocol error
    expect(other.isOpen).toBe(false);
  });

  it('a reply nobody asked for closes the connection (pairing would be lost)', async () => {
    const other = await connect(redis.port);
    const closed = new Promise<Error | undefined>((resolve) => other.once('close', resolve));
    await other.writeRaw(Buffer.from('PING\r\n')); // inline command; 0 replies declared
    const cause = await closed;
    expect(cause).toBeInstanceOf(RespUnexpectedReplyError);
    expect((cause as RespUnexpectedReplyError).reply).toBe('PONG');
  });

  it('close() still delivers replies already on their way, then refuses new calls', async () => {
    const other = await connect(redis.port);
    const ping = other.call('PING');
    await other.close();
    expect(await ping).toBe('PONG');
    const after = (await other.call('PING').catch((e: unknown) => e)) as RespConnectionClosedError;
    expect(after).toBeInstanceOf(RespConnectionClosedError);
    expect(after.requestWritten).toBe(false);
  });

  it('connecting to a port nobody listens on fails with RespConnectError', async () => {
    const port = await freePort();
    const err = await RespConnection.connect({ host: HOST, port }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RespConnectError);
    expect((err as RespConnectError).timedOut).toBe(false);
  });
});

describe('RespConnection when the server dies', () => {
  it('rejects every pending call with RespConnectionClosedError and emits close', async () => {
    const redis = await startRedis();
    try {
      const conn = await connect(redis.port);
      const watcher = await connect(redis.port);
      const blocked = conn.call('XREAD', 'BLOCK', 0, 'STREAMS', 'never', '$');
      // Queued behind the blocked XREAD: redis will not read them until it unblocks.
      const ping = conn.call('PING');
      const pipe = conn.pipeline([
        ['INCR', 'a'],
        ['INCR', 'a'],
      ]);
      await until(async () => (await infoField(watcher, 'clients', 'blocked_clients')) === '1');
      expect(conn.pendingReplies).toBe(4);

      const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
      // Attach handlers before the kill so the rejections are never unhandled.
      const settled = Promise.all(
        [blocked, ping, pipe].map((p) =>
          p.then(
            () => null,
            (e: unknown) => e,
          ),
        ),
      );
      await redis.stop(); // SIGKILL
      const errors = await settled;
      for (const err of errors) {
        expect(err).toBeInstanceOf(RespConnectionClosedError);
        expect((err as RespConnectionClosedError).unanswered).toBe(4);
        expect((err as RespConnectionClosedError).requestWritten).toBe(true);
      }
      await closed;
      expect(conn.isOpen).toBe(false);
      expect(conn.pendingReplies).toBe(0);
      const late = (await conn.call('PING').catch((e: unknown) => e)) as RespConnectionClosedError;
      expect(late).toBeInstanceOf(RespConnectionClosedError);
      expect(late.requestWritten).toBe(false);
      watcher.destroy();
    } finally {
      await redis.stop();
    }
  });
});

describe('RespConnection against a server that sends garbage', () => {
  it('delivers the replies before the garbage, then closes with RespProtocolError as cause', async () => {
    const server = net.createServer((socket) => {
      socket.once('data', () => socket.write('+first\r\n!junk\r\n'));
    });
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    try {
      const conn = await connect((server.address() as net.AddressInfo).port);
      const pipe = conn.pipeline([['A'], ['B']]);
      const call = conn.call('C');
      const [pipeErr, callErr] = (await Promise.all(
        [pipe, call].map((p) =>
          p.then(
            () => null,
            (e: unknown) => e,
          ),
        ),
      )) as RespConnectionClosedError[];
      expect(pipeErr).toBeInstanceOf(RespConnectionClosedError);
      expect(pipeErr?.received).toEqual(['first']);
      expect(pipeErr?.unanswered).toBe(2);
      expect(pipeErr?.cause).toBeInstanceOf(RespProtocolError);
      expect(callErr).toBeInstanceOf(RespConnectionClosedError);
    } finally {
      server.close();
    }
  });
});

describe('many connections in one process', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('2,000 concurrent connections each answer a PING', { timeout: 120_000 }, async () => {
    const count = 2000;
    // A GC before each reading keeps garbage from earlier tests out of the numbers. The
    // flag is set at runtime because the worker's execArgv belongs to the shared config.
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // Big buffers of earlier tests are returned to the OS lazily, after GC; wait for that.
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await settle();
    const before = process.memoryUsage();
    const start = performance.now();
    const connectMs: number[] = [];
    const conns = await Promise.all(
      Array.from({ length: count }, async () => {
        const c = await connect(redis.port);
        connectMs.push(performance.now() - start);
        return c;
      }),
    );
    const connectedMs = performance.now() - start;
    const replies: RespValue[] = await Promise.all(conns.map((c) => c.call('PING')));
    const totalMs = performance.now() - start;
    await settle();
    const after = process.memoryUsage();

    expect(replies.every((r) => r === 'PONG')).toBe(true);
    const probe = await connect(redis.port);
    expect(Number(await infoField(probe, 'clients', 'connected_clients'))).toBeGreaterThanOrEqual(count + 1);
    probe.destroy();

    const kib = (bytes: number): string => (bytes / count / 1024).toFixed(1);
    // Connects slower than ~1 s were SYN-retransmitted: redis' default tcp-backlog (511)
    // overflows when 2,000 connects arrive at once; the brief says not to raise it.
    const retried = connectMs.filter((ms) => ms > 900).length;
    console.log(
      `[resp-connection] ${count} connections: all connected in ${connectedMs.toFixed(0)} ms ` +
        `(${retried} needed a SYN retry), connect+PING ${totalMs.toFixed(0)} ms; ` +
        `RSS +${kib(after.rss - before.rss)} KiB/connection, JS heap +${kib(after.heapUsed - before.heapUsed)} KiB/connection`,
    );
    await Promise.all(conns.map((c) => c.close()));
  });
});

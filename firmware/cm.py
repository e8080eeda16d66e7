# Cloudmanager board client: the board side of PROTOCOL.md v1.
#
#   main.py                                  the board's main loop, a few lines around step()
#   import cm_async; asyncio.create_task(cm_async.task())   beside your asyncio program
#   c = cm.start(); c.step(50) ...           one bounded step at a time (the lab)
#
# Client.step(wait_ms) does one bounded unit of work (connect, claim and run one
# command, or wait at most wait_ms for work) and returns how long it may be left alone.
# What is not on that path (file and configuration operations, reboot) lives in cm_ops,
# finding the service again after its address changed in cm_find, both imported only
# while used. Memory: one 256-byte output buffer; replies are read line by line and bulk
# strings straight into their destination. Budget: README.md.
import gc
import io
import os
import sys
import time
import json
from micropython import const

VERSION = '1.0'
CONFIG = '/cm_config.json'
_CH = const(128)       # output is sent in entries of up to this many bytes
_OMAX = const(262144)  # output kept per command (PROTOCOL.md §6)


class Fail(Exception):
    # A failed operation: Fail(error code of PROTOCOL.md §7, message).
    pass


class Client(io.IOBase):
    # Also the stream that captures a command's output (os.dupterm, print_exception).
    # State shared by all instances until first set lives in the class (less RAM):
    w = None     # station wifi (made on the first connect when configured), False: none
    s = None     # the socket
    pk = None    # first byte of a reply, read while waiting for it
    q = 0        # replies owed for commands sent without waiting
    on = 0       # bytes in the output buffer
    cid = None   # command whose output is being captured
    oom = 0      # a reply was too large to keep (and was skipped)
    st = 0       # 0 connect, 1 claim, 2 wait for work, 3 continue a long operation, 4 report running out of memory,
                 # 5 a command ended: wait for work
    op = None    # that long operation (a generator)
    after = b''  # cursor of the last claim reply seen this boot (§4.2)
    res = None   # a result not yet acknowledged by Redis
    back = 1000  # reconnect delay (ms)
    sn = 1       # stream of the output being captured: 1 stdout, 2 stderr (a traceback)
    ln = b''     # a traceback line being put together (write)
    nf = 0       # connects failed in a row: the third starts a discovery round (cm_find)
    fd = None    # that round, while it runs
    mv = None    # a -MOVED reply (Redis Cluster): its node is connected to until anything fails

    def __init__(self, cfg=None):
        if cfg is None:
            with open(CONFIG) as f:
                cfg = json.load(f)
        # Only what every step needs is kept; cm_ops reads the rest of the configuration
        # from its file when it connects. Our keys, PROTOCOL.md §2: command queue, claim
        # state, uplink.
        t = 'cm:{%s}:' % cfg['id']
        self.kc, self.ks, self.ku = [(t + k).encode() for k in ('cmd', 'state', 'up')]
        self.hb = int(cfg.get('hb', 5)) * 1000
        self.o = bytearray(_CH)
        self.at = self.wt = time.ticks_ms()  # next connect attempt or heartbeat; wifi retry
        import random  # seeded from the hardware's random source on a board
        self.boot = b'%08x' % random.getrandbits(30)
        self.g = {'__name__': '__main__'}
        if not hasattr(os, 'dupterm'):
            self.g['print'] = self.print

    # --- state machine -------------------------------------------------------------
    def step(self, wait=1000):
        # One bounded unit of work; returns how long (ms) it may be left alone.
        try:
            if self.st == 0:
                if self.fd:
                    return self.fd.step(wait)
                d = time.ticks_diff(self.at, time.ticks_ms())
                if d > 0:
                    return d
                # Joining the network and logging in happen rarely: that code is in cm_ops.
                import cm_ops
                try:
                    return cm_ops.connect(self)
                finally:
                    sys.modules.pop('cm_ops', None)
            if self.st == 1:
                return self._claim()
            if self.st == 5:
                # In a step of its own, once the command's garbage can be collected: wait
                # for the next command without a claim. The wait ends at once if one is
                # queued; the manager deletes the last one from the queue (§4.2).
                self._wait()
                return 0
            if self.st == 4:
                # The last command ran out of memory; its garbage is gone now (_end).
                return self._end(None, self.oom)
            if self.st == 3:
                # One more piece of a long operation.
                try:
                    next(self.op)
                except StopIteration as r:
                    self._end(r.value)
                except Exception as x:
                    self._end(None, x)
                return 0
            if not self.pk:
                # Wait at most `wait` ms for the first byte of the answer to XREAD.
                self.s.settimeout(wait / 1000)
                try:
                    self.pk = self.s.read(1)
                except OSError as e:
                    if e.args[0] not in (11, 110, 116):  # EAGAIN, ETIMEDOUT
                        raise
                self.s.settimeout(10)
                if self.pk == b'':
                    raise OSError(104)  # the server closed the connection
                if not self.pk:
                    # Having waited, the caller may step again at once; one that does
                    # not wait (asyncio) should come back in 20 ms.
                    return 0 if wait else 20
            if self.read(drop=1) is None:
                # Nothing came after the cursor: the heartbeat when due, then wait again
                # (§4.2); a claim would find nothing.
                self._wait()
            else:
                self.st = 1
            self.back = 1000  # the session works
        except Exception as x:
            # Connection lost, or out of step with the server: start over. The last
            # result, if unacknowledged, is kept and sent again (§6). -MOVED <slot>
            # <host>:<port>: our keys live on another node of a Redis Cluster; connect there
            # (at once when the configured server said so). Any other failure, -READONLY
            # and -ASK included, starts over from the configured server (§8).
            m = isinstance(x, Fail) and x.args[1][:6] == 'MOVED ' and x.args[1]
            if self.fd:
                self.fd = None  # a discovery round that broke ends
            elif self.st == 0 and not self.mv:
                self.nf += 1  # a connect to the configured server failed
            self.close()
            self.st = 0
            d = self.back
            if m and not self.mv:
                d = 0
            else:
                self.back = min(d * 2, 60000)
            self.at = time.ticks_add(time.ticks_ms(), d)
            self.mv = m
            gc.collect()
            if self.nf > 2:
                # Has the service moved? Ask the subnet (if the board has a discovery key);
                # the backoff goes on meanwhile, and after a round without an answer.
                self.nf = 0
                try:
                    import cm_find
                    self.fd = cm_find.start(self)
                except Exception:
                    pass  # tried again after three more failures
                sys.modules.pop('cm_find', None)
        return 0

    def _hb(self):
        # The heartbeat, when it is due; acknowledged before the next request: never two
        # commands in one packet.
        if time.ticks_diff(time.ticks_ms(), self.at) >= 0:
            self.x('hb', 'mf', gc.mem_free())
            self.at = time.ticks_add(time.ticks_ms(), self.hb)
            self.drain()

    def _wait(self):
        # Wait for work until the next heartbeat is due.
        self._hb()
        self.send('XREAD', 'COUNT', '1', 'BLOCK', max(1, time.ticks_diff(self.at, time.ticks_ms())),
                  'STREAMS', self.kc, self.after)
        self.st = 2

    def _claim(self):
        self.drain()
        self._hb()
        self.send('FCALL', 'cm_claim', '2', self.kc, self.ks, self.after)
        a = self.s.readline()
        if a[:1] != b'*':  # an error reply (NOSCRIPT, MOVED, ...) instead of an array
            raise Fail('EREDIS', str(a[1:-2], 'utf-8'))
        n = int(a[1:-2])
        eid = self.read()
        if n == 1:
            # Nothing to run: wait for work until the next heartbeat is due. The cursor
            # is the AFTER of the next claim: claims always name one (§4.2).
            self.after = bytes(eid)
            self._wait()
            return 0
        self.oom = 0
        f = {}
        for _ in range(n // 2):
            k = self.read()
            f[bytes(k)] = self.read()
        c = f.get(b'i') or b'?'
        self.x('start', 'i', c, 'e', eid)
        # Run only once Redis has the start (§4.2): a board that loses power from here on
        # has told the manager it began; one whose link drops before claims the same
        # command again with its old cursor. Then the cursor moves: never twice per boot.
        self.drain()
        self.after = bytes(eid)
        self.cid = c
        self.on = self.seq = self.tot = 0
        self.sn = 1
        self.ft = time.ticks_ms()
        try:
            if self.oom:
                raise MemoryError('command too large for this board')
            if f.get(b'o') != b'exec':
                import cm_ops
                r = cm_ops.run(self, f.get(b'o'), f)
                if hasattr(r, 'send'):
                    # A long operation (a file transfer): continued one bounded piece
                    # per step, so a small board collects its garbage in between.
                    self.op = r
                    self.st = 3
                    return 0
                return self._end(r)
            c = f.pop(b'c')
            f = None
            dt = None
            if hasattr(os, 'dupterm'):
                dt = [os.dupterm(self, 0)]  # capture everything the code prints
            try:
                exec(c, self.g)
            except SystemExit:
                pass  # sys.exit() ends the code, as on the REPL
            except Exception as x:
                if not isinstance(x, MemoryError):
                    # The traceback goes out as the command's stderr (§7.1).
                    self.flush()
                    self.sn = 2
                    sys.print_exception(x, self)
                raise
            finally:
                if dt:
                    os.dupterm(dt[0], 0)
            return self._end(None)
        except Exception as x:
            f = c = None
            return self._end(None, x)

    def _end(self, r, x=None):
        # The command is over: its result goes out, with the error code of x if it failed.
        if x is not None and self.res is not None:
            # Raised while sending the result made already: not the command's error. The
            # connection starts over, and the result is sent again (§6).
            raise x
        if self.st != 4 and isinstance(x, MemoryError):
            # Out of memory: even the result may not fit before this step's garbage is
            # collected (gc.collect() in the middle of a step frees nothing in some ports),
            # so it goes out in the next step. Nothing here may allocate: oom and st are set
            # already, and only a long operation made op an attribute of its own.
            if self.op:
                self.op = None
            sys.modules.pop('cm_ops', None)
            self.oom = x
            self.st = 4
            return 0
        ec = e = None
        if x is not None:
            gc.collect()
            if isinstance(x, Fail):
                ec, e = x.args
            else:
                ec, e = 'ENOMEM' if isinstance(x, MemoryError) else 'EFAIL', str(x)
                e = type(x).__name__ + (': ' + e if e else '')
        self.op = None
        self.st = 5
        sys.modules.pop('cm_ops', None)  # holds no memory between commands
        cid = self.cid
        self.flush()
        self.cid = None
        res = ['res', 'i', cid, 'ok', 0 if ec else 1, 'n', self.seq]
        if r is not None:
            res += ['r', r]
        if ec:
            res += ['ec', ec, 'e', e[:1000]]
        if self.tot > _OMAX:
            res += ['tr', '1']
        self.res = res  # kept until Redis acknowledges it (§6)
        self.x(*res)
        self.drain()
        self.res = None
        return 0

    # --- captured output: a stream for os.dupterm, and print() where there is none ----
    def write(self, data):
        n = r = len(data)
        if self.sn == 2:
            # A traceback: the frame of this client, which ran the user's code, is left
            # out. print_exception writes a line in pieces (into a buffer it reuses): they
            # are copied and put together until the line ends.
            data = self.ln = self.ln + data
            if data[-1:] != b'\n':
                return r
            self.ln = b''
            if data.startswith(b'  File "cm.py"'):
                return r
            n = len(data)
        if self.cid is not None and self.tot + n <= _OMAX:  # beyond: dropped, result says so
            if isinstance(data, str):
                data = data.encode()
            if self.on + n > _CH:
                self.flush()
            if n > _CH:
                self.flush(data)  # a long piece goes out as it is
            else:
                self.o[self.on:self.on + n] = data
                self.on += n
            # Output of code that runs for a while still streams: at least every 100 ms.
            if time.ticks_diff(time.ticks_ms(), self.ft) > 100:
                self.flush()
        self.tot += n
        return r

    def readinto(self, buf):
        return None  # dupterm input: there is none

    def print(self, *a, sep=' ', end='\n', file=None):
        if file or self.cid is None:
            print(*a, sep=sep, end=end, file=file)
        else:
            self.write(sep.join([str(v) for v in a]) + end)

    def flush(self, data=None):
        if data is None:
            data = memoryview(self.o)[:self.on]
            self.on = 0
        if data and self.cid is not None:
            try:
                self.x('out', 'i', self.cid, 'n', self.seq, 's', self.sn, 'd', data)
            except (OSError, Fail):
                # Connection lost (or an error reply: MOVED) while user code runs: stop
                # capturing rather than raise into it (the output is marked truncated); the
                # result, with its command id and count, goes out after reconnecting.
                self.tot = _OMAX + 1
            self.seq += 1
        self.ft = time.ticks_ms()

    # --- RESP2 -----------------------------------------------------------------------
    def x(self, kind, *fields):
        # Appends an entry to our uplink; replies are read later, in small batches.
        if self.q >= 8:
            self.drain()
        self.send('XADD', self.ku, 'MAXLEN', '~', '1000', '*', 'k', kind, *fields)
        self.q += 1

    def send(self, *args):
        h = bytearray(b'*%d\r\n' % len(args))
        for a in args:
            if isinstance(a, int):
                a = b'%d' % a
            elif isinstance(a, str):
                a = a.encode()
            h += b'$%d\r\n' % len(a)
            if len(a) > 127:
                # A long argument (output, file data) is sent as is, not copied. (A
                # blocking socket's write() writes all it is given.)
                self.s.write(h)
                self.s.write(a)
                h = bytearray()
            else:
                h += a
            h += b'\r\n'
        self.s.write(h)

    def close(self):
        try:
            self.s.close()
        except Exception:
            pass
        self.s = None

    def read(self, into=None, drop=0):
        # One reply: bytearray, int, None, list; an error reply is returned as a Fail.
        # With `into`, a bulk string is copied into it and its length returned; with
        # `drop`, the reply is read and discarded (a whole XREAD answer, say).
        l = self.s.readline()
        if self.pk:
            l = self.pk + l
            self.pk = None
        if not l:
            raise OSError(104)
        t = l[0]
        if t == 43 or t == 45:
            return Fail('EREDIS', str(l[1:-2], 'utf-8')) if t == 45 else l[1:-2]
        n = int(l[1:-2])
        if t == 58 or n < 0:
            return None if n < 0 else n
        if t == 42:
            return [self.read(None, drop) for _ in range(n)]
        v = n
        if into is None and not drop:
            try:
                v = into = bytearray(n)
            except MemoryError:
                v = None  # too large for this board: skipped, the stream stays in step
                self.oom = 1
        m = memoryview(into or self.o)
        got = 0
        while got < n:
            k = self.s.readinto(m[got:n] if into else m, min(n - got, len(m)))
            if not k:
                raise OSError(104)  # the connection ended inside a reply
            got += k
        self.s.read(2)
        return v

    def drain(self):
        # Reads the replies owed; raises the first error among them.
        err = None
        while self.q:
            self.q -= 1
            v = self.read()
            if isinstance(v, Fail) and not err:
                err = v
        if err:
            raise err


def start():
    # The client of this board's configuration file. First, a file replacement a reset cut
    # short is finished: it may have been the configuration's (PROTOCOL.md §7.2).
    import cm_ops
    cm_ops.recover()
    sys.modules.pop('cm_ops', None)
    return Client()


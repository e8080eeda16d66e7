# Finding the service again (PROTOCOL.md, "Finding the service again (discovery)"). When
# the stored server has failed three connects in a row (its computer got a new address
# from DHCP, say), the client asks its subnet by broadcast where the service of its board
# id is now, and takes an answer only if it carries this round's nonce and is signed with
# the board's own discovery key `dk`: a forged or replayed answer cannot lure the board,
# and its Redis password, elsewhere. A board without `dk` never asks.
#
# cm imports this module only to start a round and drops it at once; the round object
# keeps it alive while it runs (a few steps, 4.5 s at most) and nothing of it stays after.
# Messages are bytes, not str (str literals would stay in RAM as interned strings).
import os
import sys
import json
import time
import socket
import hashlib
import binascii
from cm import CONFIG

_WAIT = 1500  # ms to wait for an answer to each request
_TRIES = 3  # requests per round (the same nonce: answers to any of them are good)


def start(cl):
    # A new round for the client cl, or None when its board has no discovery key.
    with open(CONFIG) as f:
        c = json.load(f)
    k = c.get('dk')
    if not isinstance(k, str) or len(k) != 64:
        return None
    return _Round(cl, c, k.encode())


def _bcast(w):
    # The subnet's directed broadcast address (address | ~netmask of the station), or the
    # limited broadcast on a port without a station interface.
    try:
        a, m = w.ifconfig()[:2]
        return '.'.join([str(int(x) | (255 ^ int(y))) for x, y in zip(a.split('.'), m.split('.'))])
    except Exception:
        return '255.255.255.255'


def _num(b, lo, hi):
    # The decimal number in bytes b if it is one (digits only) from lo to hi, else -1.
    if not 0 < len(b) < 6 or any(c < 48 or c > 57 for c in b):
        return -1
    n = int(b)
    return n if lo <= n <= hi else -1


def _mac(k, m):
    # HMAC-SHA256 (RFC 2104) over hashlib.sha256, hex: the key is exactly one 64-byte
    # SHA-256 block, so it is used as it is.
    i = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    i.update(m)
    o = hashlib.sha256(bytes(b ^ 0x5C for b in k))
    o.update(i.digest())
    return binascii.hexlify(o.digest())


class _Round:
    def __init__(self, cl, c, k):
        self.cl = cl
        self.k = k
        self.id = c['id'].encode()
        self.n = binascii.hexlify(os.urandom(16))  # fresh per round: older answers do not fit
        self.to = (_bcast(cl.w), int(c.get('dp', 18268)))
        self.t = 0  # requests sent
        self.d = time.ticks_ms()  # when the next request is due
        s = self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = getattr(socket, 'SO_BROADCAST', 0)
        if b:
            s.setsockopt(socket.SOL_SOCKET, b, 1)

    def step(self, wait):
        # One bounded piece of the round: send a request when one is due, then wait at
        # most `wait` ms for an answer. Returns how long the client may be left alone.
        try:
            left = time.ticks_diff(self.d, time.ticks_ms())
            if left <= 0:
                if self.t == _TRIES:
                    return self.end(None)  # no answer: back to the reconnect backoff
                self.t += 1
                self.s.sendto(b'cm-find 1 %s %s' % (self.id, self.n), self.to)
                self.d = time.ticks_add(time.ticks_ms(), _WAIT)
                left = _WAIT
            self.s.settimeout(min(wait, left) / 1000)
            try:
                a = self.s.recvfrom(256)[0]
            except OSError:
                return 0 if wait else 20  # nothing yet (timed out, or nothing to read)
            r = self.check(a)
            return self.end(r) if r else 0  # an answer that is not valid is ignored
        except Exception:
            return self.end(None)

    def check(self, a):
        # (host, port) of a valid answer, else None; an invalid one is ignored silently.
        f = a.split(b' ')
        if len(f) != 7 or f[0] != b'cm-here' or f[1] != b'1' or f[2] != self.id or f[3] != self.n or len(f[6]) != 64:
            return None
        h = f[4].split(b'.')
        p = _num(f[5], 1, 65535)
        if len(h) != 4 or p < 0 or any(_num(x, 0, 255) < 0 for x in h):
            return None
        m = _mac(self.k, a[:-65])  # the answer up to the space before its mac
        d = 0
        for i in range(64):  # every character compared: no early exit
            d |= m[i] ^ f[6][i]
        return None if d else (str(f[4], 'ascii'), p)

    def end(self, r):
        # Ends the round. With an answer r, the configuration gets the new server and port
        # and the client connects at once.
        cl = self.cl
        cl.fd = None
        try:
            self.s.close()
        except Exception:
            pass
        if r:
            import cm_ops

            try:
                c = cm_ops._config()
                if c.get('server') != r[0] or c.get('port') != r[1]:
                    c['server'], c['port'] = r
                    cm_ops._save(c)  # as every change of it: old or new after a reset
            finally:
                sys.modules.pop('cm_ops', None)
            cl.at = time.ticks_ms()
            cl.back = 1000
        return 0

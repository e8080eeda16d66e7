# The board lab's `socket` (ESP8266 MicroPython has it in flash, written in C).
# Each call goes to the lab host (_cm_lab_host), which owns the real TCP connection.
# Timeouts and errors behave as on the ESP8266 port: a timed-out read raises
# OSError(110), a non-blocking one with nothing to read OSError(11) (read(), readinto()
# and readline() return None instead, as MicroPython streams do), a refused connection
# OSError(111), a reset one OSError(104); Ctrl-C during a blocking call raises
# KeyboardInterrupt from it (the host answers EINTR). UDP (SOCK_DGRAM): bind, sendto, recvfrom,
# recv, SO_BROADCAST, as modlwip has them; the lab's rules and shortcuts are in
# micropython-board-udp.ts. Kept small: it lives in the board's RAM here.
import io
import uctypes
import _cm_lab_host as _h

AF_INET = 2
AF_INET6 = 10
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
SOL_SOCKET = 1  # modlwip's values; it ignores the level
SO_REUSEADDR = 4
SO_BROADCAST = 32
IPPROTO_IP = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
TCP_NODELAY = 1

_S = _h.scratch()  # host buffer outside the GC heap: received bytes land there first


def _err(r):
    if r == -4:
        raise KeyboardInterrupt
    raise OSError(-r)


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    n = _h.dns(host)
    if n == -4:
        raise KeyboardInterrupt
    if n < 0:
        raise OSError(-2)  # what the ESP8266 port raises for a failed lookup
    return [(AF_INET, SOCK_STREAM, 0, '', (str(uctypes.bytes_at(_S, n), 'ascii'), port))]


def _buf(b):
    return b.encode() if isinstance(b, str) else b


class socket(io.IOBase):
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=0):
        if type not in (SOCK_STREAM, SOCK_DGRAM):
            raise OSError(22)  # as modlwip (the ESP8266 has no SOCK_RAW)
        self._u = type == SOCK_DGRAM
        self._i = _h.udp_open() if self._u else _h.sock_open()
        self._t = -1  # timeout in ms; -1 blocks, 0 is non-blocking

    def settimeout(self, t):
        self._t = -1 if t is None else int(t * 1000)

    def setblocking(self, flag):
        self._t = -1 if flag else 0

    def setsockopt(self, level, opt, val):
        if self._u and isinstance(val, int):
            _h.udp_opt(self._i, opt, val)

    def bind(self, addr):
        if not self._u:
            raise OSError(95)  # the lab has no TCP servers
        r = _h.udp_bind(self._i, addr[0], addr[1])
        if r:
            _err(r)

    def sendto(self, b, addr):
        if not self._u:
            raise OSError(95)
        b = _buf(b)
        r = _h.udp_sendto(self._i, uctypes.addressof(b), len(b), addr[0], addr[1])
        if r == -1:
            raise ValueError('invalid arguments')  # not a dotted IPv4 address
        if r < 0:
            _err(r)
        return r

    def recvfrom(self, n):
        b = self._in(n, 0, 0)
        a = _h.udp_from().split()
        return b, (a[0], int(a[1]))

    def connect(self, addr):
        if self._u:
            raise OSError(95)  # the lab's UDP sockets are not connected: sendto() only
        r = _h.sock_connect(self._i, addr[0], addr[1], self._t)
        if r:
            _err(r)

    def send(self, b):
        if self._u:
            raise OSError(95)
        b = _buf(b)
        r = _h.sock_send(self._i, uctypes.addressof(b), len(b))
        if r < 0:
            raise OSError(-r)
        return r

    write = send

    def sendall(self, b):
        self.send(b)

    def _in(self, n, line, stream):
        r = _h.udp_recv(self._i, _S, n, self._t) if self._u else _h.sock_recv(self._i, _S, n, self._t, line)
        if r < 0:
            if stream and r == -11:
                return None
            _err(r)
        return uctypes.bytes_at(_S, r)

    def recv(self, n):
        return self._in(n, 0, 0)

    def read(self, n=-1):
        if n >= 0:
            return self._in(n, 0, 1)
        out = b''
        while True:
            b = self._in(4096, 0, 1)
            if not b:
                return out
            out += b

    def readline(self, n=65536):
        return self._in(n, 1, 1)

    def readinto(self, b, n=-1):
        n = len(b) if n < 0 else min(n, len(b))
        a = uctypes.addressof(b)
        r = _h.udp_recv(self._i, a, n, self._t) if self._u else _h.sock_recv(self._i, a, n, self._t, 0)
        if r < 0:
            if r == -11:
                return None
            _err(r)
        return r

    def ioctl(self, req, arg):
        # MP_STREAM_POLL, so that select.poll() works on these sockets; MP_STREAM_CLOSE
        # (what os.dupterm does to a stream it deactivates) closes, as the C socket does
        if req == 4:
            self.close()
            return 0
        if req != 3:
            return -1
        return _h.udp_poll(self._i, arg) if self._u else _h.sock_poll(self._i, arg)

    def makefile(self, *args, **kw):
        return self

    def close(self):
        if self._u:
            _h.udp_close(self._i)
        else:
            _h.sock_close(self._i)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

# The board lab's os.dupterm (on the ESP8266 it is C: extmod/os_dupterm.c with
# MICROPY_PY_OS_DUPTERM = 2 slots; the WebAssembly port has none). Installed into the
# port's `os` module, which `import uos` then gives too, before the board's code runs.
#
# Output: the worker hands every piece the interpreter writes to stdout or stderr (what
# mp_hal_stdout_tx_strn gets on a board) to tx(), which passes it to each active slot's
# write() as a borrowed bytearray over a host buffer: valid during the call only (the
# worker zeroes it afterwards). Slot 1 holds UART(0), the board's console, as
# ports/esp8266/main.c sets up at boot; the worker writes the console itself, once per
# slot that holds UART(0) (so `os.dupterm(None, 1)` silences it, as on a board).
# Input: dupterm_notify() asks the worker to poll the slots' readinto() (one byte at a
# time, as mp_os_dupterm_rx_chr does) at the next step boundary; bytes go to sys.stdin,
# Ctrl-C interrupts the program. Shortcuts: micropython-board-worker-dupterm.mjs.
import io
import os
import sys
import uctypes
import machine
import _cm_lab_term as _t

_s = [None, machine.UART(0, 115200)]
_d = [0, 0]  # how deep each slot's write() is in progress (a write() that prints)
_RX = _t.rx_buffer()


def _int(v):
    # mp_obj_get_int(): int or bool, nothing else
    if type(v) is bool:
        return 1 if v else 0
    if type(v) is not int:
        raise TypeError("can't convert %s to int" % type(v).__name__)
    return v


def _sync():
    n = c = 0
    for o in _s:
        if isinstance(o, machine.UART):
            c += 1 if o.id == 0 else 0
        elif o is not None:
            n += 1
    _t.slots(n, c)


def dupterm(*a):
    # os.dupterm(stream_object, index=0, /): returns the previous object of the slot.
    if not 0 < len(a) < 3:
        raise TypeError('function takes 1 or 2 positional arguments')
    i = _int(a[1]) if len(a) > 1 else 0
    if i < 0 or i > 1:
        raise ValueError('invalid dupterm index')
    o = a[0]
    p = _s[i]
    if o is not None and not isinstance(o, io.IOBase) and (
            hasattr(o, '__dict__') or not hasattr(o, 'readinto') or not hasattr(o, 'write')):
        # mp_get_stream_raise(): needs read, write and ioctl (IOBase or a built-in stream)
        raise OSError('stream operation not supported')
    _s[i] = o
    _sync()
    return p


def dupterm_notify(obj):
    # ESP8266: input is waiting on a dupterm stream; read it when the SDK next runs tasks.
    _t.notify()


def _off(i, msg, e=None):
    # mp_os_deactivate(): empty the slot, say so to the outputs left, close the stream.
    o = _s[i]
    _s[i] = None
    _sync()
    sys.stdout.write(msg)
    if e is not None:
        # The traceback as a board prints it: without this module's frames.
        b = io.StringIO()
        sys.print_exception(e, b)
        l = '  File "' + __file__
        sys.stdout.write('\n'.join([x for x in b.getvalue().split('\n') if not x.startswith(l)]))
    try:
        if isinstance(o, io.IOBase):
            o.ioctl(4, 0)  # MP_STREAM_CLOSE goes to an IOBase's ioctl()
        else:
            o.close()
    except BaseException:
        pass


def _wr(o, a, n):
    # mp_stream_write(..., MP_STREAM_RW_WRITE): write() until all is taken; None (EAGAIN)
    # or 0 drops the rest; a negative value is an error code.
    k = 0
    while k < n:
        r = o.write(uctypes.bytearray_at(a + k, n - k))
        if r is None:
            return
        r = _int(r)
        if r < 0:
            if r == -11:
                return
            raise OSError(-r)
        if r == 0:
            return
        k += r


def _tx(i, a, n):
    try:
        o = _s[i]
        if o is None or isinstance(o, machine.UART):
            return  # UART(0) is written by the worker; UART(1) leads nowhere here
        if _d[i] >= 8:
            # A write() that prints: a board's C stack runs out; here, 8 deep.
            raise RuntimeError('maximum recursion depth exceeded')
        _d[i] += 1
        try:
            _wr(o, a, n)
        finally:
            _d[i] -= 1
    except BaseException as e:
        _off(i, 'dupterm: Exception in write() method, deactivating: ', e)


def tx(a, n):
    # mp_os_dupterm_tx_strn(): called by the worker for each piece of output. No loop
    # here: a pending exception (Ctrl-C) is raised at a backward jump, and one raised
    # outside a slot's try would be lost (on a board it lands in a write() too).
    _tx(0, a, n)
    _tx(1, a, n)
    return 0


def _rx():
    # mp_os_dupterm_rx_chr(): a byte from the first slot that has one; -1 none, -2 Ctrl-C.
    for i in (0, 1):
        try:
            o = _s[i]
            if o is None or isinstance(o, machine.UART):
                continue
            b = uctypes.bytearray_at(_RX, 1)
            r = o.readinto(b)
            if r is None:
                continue
            r = _int(r)
            if r == 0:
                _off(i, 'dupterm: EOF received, deactivating\n')
                continue
            if r < 0:
                if r == -11:
                    continue
                raise OSError(-r)
            return -2 if b[0] == 3 else b[0]
        except BaseException as e:
            _off(i, 'dupterm: Exception in read() method, deactivating: ', e)
    return -1


def poll():
    # The ESP8266's dupterm task: bytes into the stdin buffer until none is left.
    # Returns 3 when Ctrl-C came in (the worker then interrupts the program).
    while True:
        c = _rx()
        if c < 0:
            return 3 if c == -2 else 0
        _t.stdin_put(c)


os.dupterm = dupterm
os.dupterm_notify = dupterm_notify
sys.modules['uos'] = os
_sync()

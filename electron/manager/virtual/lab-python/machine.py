# The board lab's `machine` (ESP8266 MicroPython has it in flash, written in C): only
# what the firmware needs. reset() restarts the board: the lab throws this interpreter
# away and boots a fresh one from the same flash folder; the call never returns.
# UART(0) is the board's USB console (what os.dupterm slot 1 holds at boot); UART(1)
# only transmits (GPIO2), into nothing here. Neither receives: the console's input is
# the REPL's.
import io
import uctypes
import _cm_lab_host as _h
import _cm_lab_term as _t

PWRON_RESET = 0
WDT_RESET = 1
SOFT_RESET = 4
DEEPSLEEP_RESET = 5
HARD_RESET = 6

_f = [80000000]


def reset():
    _h.reset()


def unique_id():
    return bytes.fromhex(_h.uid())


def reset_cause():
    return _h.cause()


def freq(f=None):
    if f is None:
        return _f[0]
    if f not in (80000000, 160000000):
        raise ValueError('frequency can only be either 80Mhz or 160MHz')
    _f[0] = f


def idle():
    pass


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


class UART(io.IOBase):
    def __init__(self, id, baudrate=115200, **kw):
        if id not in (0, 1):
            raise ValueError('UART(%d) does not exist' % id)
        self.id = id
        self.baudrate = baudrate

    def init(self, baudrate=115200, **kw):
        self.baudrate = baudrate

    def write(self, b):
        if isinstance(b, str):
            b = b.encode()
        if self.id == 0:
            _t.console(uctypes.addressof(b), len(b))
        return len(b)

    def read(self, n=-1):
        return None

    def readinto(self, b, n=-1):
        return None

    def readline(self):
        return None

    def any(self):
        return 0

    def ioctl(self, req, arg):
        return arg & 4 if req == 3 else 0  # poll: writable; close: nothing to do

    def __repr__(self):
        return 'UART(%d, baudrate=%d, bits=8, parity=None, stop=1, rxbuf=15, timeout=0, timeout_char=0)' % (
            self.id, self.baudrate)

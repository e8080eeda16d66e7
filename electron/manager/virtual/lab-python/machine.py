# The board lab's `machine` (ESP8266 MicroPython has it in flash, written in C): only
# what the firmware needs. reset() restarts the board: the lab throws this interpreter
# away and boots a fresh one from the same flash folder; the call never returns.
import _cm_lab_host as _h

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

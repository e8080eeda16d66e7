# The board lab's `sys` and os.uname(): what the board says it is, the ESP8266 it stands
# for, not the WebAssembly port it runs on. sys is a C module whose attributes cannot be
# set, so the board gets this module instead (from sys.modules, which `import sys` looks
# in first): the port's own attributes (the same objects: sys.path, sys.modules, stdout,
# exit...), and the esp8266 port's platform. os.uname() is missing from this port; the
# esp8266 port's answers with the SDK release it is built on. `uname` is the ESP8266's
# nodename and sysname alike; version and date are the interpreter's own. os.urandom() is
# missing too: the ESP8266's reads its hardware random number generator, the lab's the host's.
import os
import sys as _s
import uctypes
import _cm_lab_host as _h

for _k in dir(_s):
    globals()[_k] = getattr(_s, _k)
platform = 'esp8266'


class _Uname:
    # An attrtuple on a board: items and attributes, printed with the field names.
    _f = ('sysname', 'nodename', 'release', 'version', 'machine')

    def __init__(self, *v):
        self._v = v

    def __getattr__(self, name):
        if name not in self._f:
            raise AttributeError(name)
        return self._v[self._f.index(name)]

    def __getitem__(self, i):
        return self._v[i]

    def __len__(self):
        return 5

    def __iter__(self):
        return iter(self._v)

    def __repr__(self):
        return '(%s)' % ', '.join('%s=%r' % kv for kv in zip(self._f, self._v))


def _uname(u=_Uname('esp8266', 'esp8266', '2.2.0-dev(9422289)', _s.version.split('MicroPython ')[-1], 'ESP module with ESP8266')):
    return u


def _urandom(n, addressof=uctypes.addressof, fill=_h.urandom):
    b = bytearray(n)
    if n:
        fill(addressof(b), n)
    return bytes(b)


os.uname = _uname
os.urandom = _urandom
_s.modules['sys'] = _s.modules.pop('_cm_sys')
globals().pop('__file__', None)
del _k, _s, _Uname, _uname, _urandom, os, uctypes, _h

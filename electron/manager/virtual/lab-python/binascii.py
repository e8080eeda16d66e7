# The board lab's `binascii`. The ESP8266 port has it in C, where a call allocates only
# its result; this WebAssembly port only has micropython-lib's pure-Python one, whose
# garbage (about 40 times the data) would not fit a 36 KB heap between two collections.
# The lab host does the work on the buffers in place; the result is the only allocation,
# as on a board. Same functions, arguments and errors as the C module.
import uctypes
import _cm_lab_host as _h

_S = _h.scratch()
_N = _h.scratch_bytes()
_E = {-1: 'incorrect padding', -2: 'odd-length string', -3: 'non-hex digit found', -4: 'invalid character'}


def _run(f, data, room, arg):
    # f(addr, len, out, room, arg) writes the result at out; small results go through the
    # host's scratch buffer (outside the GC heap) and are copied once into a bytes object.
    n = len(data)
    a = uctypes.addressof(data) if n else 0
    if room <= _N:
        r = f(a, n, _S, room, arg)
        if r >= 0:
            return uctypes.bytes_at(_S, r)
    else:
        b = bytearray(room)
        r = f(a, n, uctypes.addressof(b), room, arg)
        if r >= 0:
            return bytes(memoryview(b)[:r])
    raise ValueError(_E.get(r, 'bad data'))


def a2b_base64(data, strict=False):
    return _run(_h.a2b_base64, data, len(data) // 4 * 3 + 3, 1 if strict else 0)


def b2a_base64(data, newline=True):
    return _run(_h.b2a_base64, data, (len(data) + 2) // 3 * 4 + 1, 1 if newline else 0)


def hexlify(data, sep=None):
    return _run(_h.hexlify, data, len(data) * 3, ord(sep) if sep else -1)


def unhexlify(data):
    return _run(_h.unhexlify, data, len(data) // 2, 0)


def crc32(data, value=0):
    # 32-bit values cross as two halves one way and 4 bytes the other (a small int has 31 bits)
    value &= 0xFFFFFFFF
    _h.crc32(uctypes.addressof(data) if len(data) else 0, len(data), value >> 16, value & 0xFFFF)
    return int.from_bytes(uctypes.bytes_at(_S, 4), 'big')


a2b_hex = unhexlify
b2a_hex = hexlify

# The `hash` operation (PROTOCOL.md §7.4): SHA-256 of up to 32 files, so the manager sends
# only files a board does not have already. Imported by cm_ops for this operation only,
# dropped with it. Made for a 36 KB heap: the path list (up to 8 KB of JSON) is parsed in
# place, never decoded whole; the answer is written into one buffer sized at the start
# (no growing copies); one 1 KB read buffer serves every file; and the operation steps
# after each path and every 4 KB read, so a board collects the garbage in between.
import json
import hashlib
import binascii
from cm import Fail
from cm_ops import _CH, _path, _isdir, _fail


def run(pl):
    # r = {"<path as sent>": "<sha256 hex>" | null}: null for a missing path or a directory.
    n = 0
    try:
        for a, b, e in _strings(pl):
            _path(_unquote(pl, a, b, e))  # every path checked before any file is read
            n += 1
            yield
    except (TypeError, ValueError, IndexError):
        n = 0
    if not 0 < n <= 32:
        raise Fail(b'EINVAL', b'pl must be a JSON array of 1 to 32 paths')
    # Each path's JSON, a colon, a quoted hash and a comma at most: 70 bytes beside the path.
    out = bytearray(len(pl) + 70 * n)
    m = memoryview(out)
    out[0] = 123  # {
    k = 1
    buf = bytearray(_CH)
    for a, b, e in _strings(pl):
        p = _path(_unquote(pl, a, b, e))
        if k > 1:
            out[k] = 44  # ,
            k += 1
        m[k:k + b - a] = memoryview(pl)[a:b]
        k += b - a
        h = b':null'
        if _isdir(p) is False:
            h = yield from _file(p, buf)
        m[k:k + len(h)] = h
        k += len(h)
        yield
    out[k] = 125  # }
    return m[:k + 1]


def _file(p, buf):
    sha = hashlib.sha256()
    t = 0
    try:
        with open(p, 'rb') as fh:
            while True:
                r = fh.readinto(buf)
                if not r:
                    break
                sha.update(memoryview(buf)[:r])
                t += r
                if not t & 4095:
                    yield
    except OSError as x:
        raise _fail(x, p.encode())
    return b':"%s"' % binascii.hexlify(sha.digest())


def _strings(pl):
    # The strings of pl, a JSON array of strings, as (start, end, escaped) of each in pl,
    # quotes included. ValueError (IndexError where it ends too soon) if it is not one.
    i = _ws(pl, 0)
    if pl[i] != 91:  # [
        raise ValueError
    i = _ws(pl, i + 1)
    if pl[i] != 93:  # ]
        while True:
            if pl[i] != 34:  # "
                raise ValueError
            j = i + 1
            e = 0
            while pl[j] != 34:
                if pl[j] == 92:  # a backslash escapes the next character
                    e = 1
                    j += 1
                j += 1
            yield i, j + 1, e
            i = _ws(pl, j + 1)
            if pl[i] == 93:
                break
            if pl[i] != 44:  # ,
                raise ValueError
            i = _ws(pl, i + 1)
    if _ws(pl, i + 1) != len(pl):
        raise ValueError


def _ws(pl, i):
    while i < len(pl) and pl[i] in (32, 9, 10, 13):
        i += 1
    return i


def _unquote(pl, a, b, e):
    # The bytes of the string at pl[a:b]; json decodes only one that has escapes.
    return json.loads(pl[a:b]).encode() if e else pl[a + 1:b - 1]

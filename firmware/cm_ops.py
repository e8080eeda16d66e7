# What the client does rarely: connecting (wifi, login, hello) and the operations of
# PROTOCOL.md §7 other than exec: files (§7.2-7.4), configuration and reboot (§7.5).
# Imported only while needed and dropped afterwards, so the client holds no memory for
# it in between. Messages are bytes, not str: str literals would become interned
# strings that stay in RAM for good, bytes go with the module.
import os
import sys
import gc
import json
import time
import socket
import errno
import hashlib
import binascii
from cm import Fail, VERSION, CONFIG

_CH = 1024  # chunk size for both directions: small boards cannot spare more
_JOURNAL = '/cm_journal'  # names the one file replacement in progress (see _replace)
# OSError numbers -> (error code of PROTOCOL.md §7, message). Numbers depend on the port's C
# library: those its errno module names are taken from it, the ESP8266's stand in for the
# names MicroPython's errno leaves out.
_ERRNO = {getattr(errno, 'ENOENT', 2): (b'ENOENT', b'no such file or directory'),
          getattr(errno, 'EEXIST', 17): (b'EEXIST', b'already exists'),
          20: (b'ENOTDIR', b'not a directory'),
          getattr(errno, 'EISDIR', 21): (b'EISDIR', b'is a directory'),
          28: (b'ENOSPC', b'no space left on the board'),
          39: (b'ENOTEMPTY', b'the directory is not empty')}


def _config():
    with open(CONFIG) as f:
        return json.load(f)


def connect(cl):
    # (Re)joins the network if needed, then connects, logs in and says hello (§8).
    c = _config()
    now = time.ticks_ms()
    w = cl.w
    if w is None and c.get('wifi_ssid'):
        try:
            import network
            w = cl.w = network.WLAN(network.STA_IF)
            w.active(True)
        except ImportError:
            cl.w = False  # a port without wifi
    if w and not w.isconnected():
        _wifi_said(cl, c, w.status())
        # A join that hangs (wrong password, network gone) is retried every 15 s.
        if time.ticks_diff(now, cl.wt) >= 0:
            try:
                w.connect(c['wifi_ssid'], c.get('wifi_password', ''))
            except OSError:
                pass
            cl.wt = time.ticks_add(now, 15000)
        return 500
    if w:
        _wifi_said(cl, c, 5)
    cl.close()
    s = cl.s = socket.socket()
    s.settimeout(10)
    cl.pk = None
    cl.q = 1
    # The node a -MOVED <slot> <host>:<port> named (cm.py), else the configured server: home.
    h = cl.mv and cl.mv.split()[2]
    a = (h[:h.rfind(':')] or c['server'], int(h[h.rfind(':') + 1:])) if h else (c['server'], int(c.get('port', 18266)))
    s.connect(socket.getaddrinfo(*a)[0][-1])
    cl.send(b'AUTH', c['user'], c['password'])
    if not cl.after:
        # Right after boot: ask where to start (an empty AFTER never claims, §4.2). The
        # hello names that cursor, so the manager knows what the last boot never ran.
        cl.send(b'FCALL', b'cm_claim', b'2', cl.kc, cl.ks, b'')
        cl.drain()
        r = cl.read()
        if not isinstance(r, list):
            raise r if isinstance(r, Fail) else OSError(71)  # -MOVED: cm.py follows it
        cl.after = bytes(r[0])
    cl.x(b'hello', b'v', b'1', b'boot', cl.boot, b'p', sys.platform, b'mv', _version(), b'cv', VERSION,
         b'ip', w.ifconfig()[0] if w else b'', b'hb', cl.hb // 1000, b'c', cl.after)
    if cl.res:
        cl.x(*cl.res)  # the result of the last command, if it was never acknowledged
    cl.drain()
    cl.res = None
    cl.at = time.ticks_add(time.ticks_ms(), cl.hb)
    cl.st = 1
    cl.nf = 0  # the stored server works (cm_find)
    return 0


# network.WLAN.status() values that end a join, as the console line names them.
_WIFI = {2: b'wrong password', 3: b'network not found', 4: b'failed', 5: b'joined'}


def _wifi_said(cl, c, st):
    # One console line per outcome of joining (PROTOCOL.md §8): whoever watches the serial
    # console (the provisioner) learns why the board does not come online.
    if st in _WIFI and getattr(cl, 'ws', 0) != st:
        cl.ws = st
        print((b'cm: wifi %s %s (status %d)' % (json.dumps(c['wifi_ssid']).encode(), _WIFI[st], st)).decode())


def _version():
    return b'%d.%d.%d' % sys.implementation.version[:3]


def run(cl, op, f):
    if op == b'reboot':
        # Result first (and its acknowledgement), then bye, then the reset (§7.5).
        cl._end(None)
        cl.x(b'bye', b'why', b'reboot')
        cl.drain()
        cl.close()
        import machine
        machine.reset()
    if op in (b'rename', b'cfg_get', b'cfg_set', b'info'):
        return _board(cl, op, f)
    if op == b'hash':
        # Its own module: the code of the other operations stays as small as it was. The
        # running operation holds the module; it goes with it.
        import cm_hash
        sys.modules.pop('cm_hash', None)
        return cm_hash.run(f.get(b'pl'))
    p = f.get(b'p')
    try:
        r = _file(cl, op, f)
    except OSError as e:
        raise _fail(e, p)
    return _steps(r, p) if hasattr(r, 'send') else r


def _fail(e, p):
    c = _ERRNO.get(e.args[0])
    return Fail(c[0], c[1] + b' ' + p) if c else Fail(b'EFAIL', b'OSError: %d' % e.args[0])


def _steps(g, p):
    # A transfer, run by the client one step at a time, with the same error codes.
    try:
        return (yield from g)
    except OSError as e:
        raise _fail(e, p)


def _board(cl, op, f):
    cfg = _config()
    if op == b'rename':
        cfg['name'] = str(f[b'nm'], 'utf-8')
        _save(cfg)
        return json.dumps({'name': cfg['name']})
    if op == b'cfg_get':
        shown = {}
        for k in cfg:
            # Passwords and the discovery key never leave the board (§7.5).
            shown[k] = '********' if k.endswith('password') or k == 'dk' else cfg[k]
        return json.dumps(shown)
    if op == b'cfg_set':
        k = str(f[b'key'], 'utf-8')
        if k in ('id', 'user', 'password', 'dk', 'name'):
            raise Fail(b'EFORBIDDEN', b'credentials cannot be set remotely, the name only by rename')
        v = json.loads(f[b'v'])
        if k in ('hb', 'port', 'dp') and not (type(v) is int and 0 < v <= (300 if k == 'hb' else 65535)):
            raise Fail(b'EINVAL', b'out of range')
        cfg[k] = v
        _save(cfg)
        return b'{}'
    # mpy: the .mpy ABI this board loads (0: unknown), so the manager knows what to compile.
    return b'{"p":"%s","mv":"%s","cv":"%s","mf":%d,"ip":"%s","boot":"%s","mpy":%d}' % (
        sys.platform, _version(), VERSION, gc.mem_free(), cl.w.ifconfig()[0] if cl.w else '', cl.boot,
        getattr(sys.implementation, '_mpy', 0))


def _save(cfg):
    # Temp file + replace: a power cut leaves the old configuration or the new one.
    t = CONFIG + '.tmp'
    _journal(CONFIG, t)
    try:
        with open(t, 'w') as fh:
            json.dump(cfg, fh)
        _replace(t, CONFIG, t)
    except BaseException:
        recover()  # the journal and the temporary file go
        raise


def _file(cl, op, f):
    p = _path(f.get(b'p'))
    if op == b'put':
        return _put(cl, p, f)
    if op == b'get':
        return _get(cl, p)
    if op == b'ls':
        return _ls(cl, p)
    if op == b'stat':
        d = _isdir(p)
        if d is None:
            raise Fail(b'ENOENT', b'no such file or directory')
        return b'{"type":"%s","size":%d}' % (b'd' if d else b'f', 0 if d else os.stat(p)[6])
    if op == b'rm':
        if p == '/':
            raise Fail(b'EINVAL', b'cannot remove /')
        return _rm(p, f.get(b'r') == b'1')
    if op == b'mkdir':
        _mkdirs(p)
        return b'{}'
    if op == b'mv':
        to = _path(f.get(b'to'))
        if _isdir(p):
            raise Fail(b'EISDIR', b'cannot move a directory')
        _replace(p, to)
        return b'{}'
    raise Fail(b'EUNSUPPORTED', b'unknown operation')


def _path(v):
    # Absolute, at most 255 bytes, no NUL and no . or .. segments (PROTOCOL.md §7).
    if v is None or len(v) > 255 or b'\0' in v or v[:1] != b'/' or b'/./' in v + b'/' or b'/../' in v + b'/':
        raise Fail(b'EINVAL', b'invalid path')
    # Empty segments ("/a//b/") are left out.
    return '/' + '/'.join([s for s in str(v, 'utf-8').split('/') if s])


def _isdir(p):
    # True for a directory, False for a file, None when missing.
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return None


def _mkdirs(p):
    cur = ''
    for s in p.split('/'):
        if s:
            cur += '/' + s
            d = _isdir(cur)
            if d is None:
                os.mkdir(cur)
            elif not d:
                raise Fail(b'EEXIST', b'a file is in the way')


def _replace(src, dst, tmp=None):
    # Puts src in dst's place so that a reset at any moment leaves dst old or new, never
    # missing (PROTOCOL.md §7.2). On FAT an os.rename onto an existing file removes it
    # first (older releases refuse), so the old file steps aside to dst.cm-old while the
    # journal names dst; recover() finishes the job at the next start. tmp: src is a
    # temporary file, and the caller wrote the journal before creating it.
    d = _isdir(dst)
    if d:
        raise Fail(b'EISDIR', b'a directory is in the way')
    if d is not None and src != dst:
        if tmp is None:
            _journal(dst, '')
        old = dst + '.cm-old'
        try:
            _remove(old)
            os.rename(dst, old)
            os.rename(src, dst)
            os.remove(old)
        except OSError:
            recover()  # the old file goes back
            raise
    else:
        os.rename(src, dst)  # nothing to lose
    _remove(_JOURNAL)


def _journal(dst, tmp):
    # Complete (two lines) before anything is touched: a reset while writing it leaves
    # an incomplete journal, and nothing to undo.
    with open(_JOURNAL, 'w') as fh:
        fh.write(dst + '\n' + tmp + '\n')


def _remove(p):
    try:
        os.remove(p)
    except OSError:
        pass


def recover():
    # At start, before the configuration is read: finishes the replacement a reset cut
    # short (see _replace). The old file comes back unless the new one is in place; the
    # leftovers go. A board that was not replacing anything pays one failed open().
    try:
        with open(_JOURNAL) as fh:
            j = fh.read().split('\n')
    except OSError:
        return
    try:
        if len(j) == 3 and j[0][:1] == '/' and not j[2]:
            old = j[0] + '.cm-old'
            if _isdir(old) is False:
                if _isdir(j[0]) is None:
                    os.rename(old, j[0])
                else:
                    os.remove(old)
            if j[1]:
                _remove(j[1])
        os.remove(_JOURNAL)
    except OSError:
        pass  # tried again at the next start


def _put(cl, p, f):
    size = int(f[b'z'])
    want = f[b'h']
    key = f[b'k'] + b':'
    ps = int(f[b'ps'])
    if ps < _CH or ps & (ps - 1):
        raise Fail(b'EINVAL', b'bad part size')
    i = p.rfind('/')
    if i > 0:
        _mkdirs(p[:i])
    tmp = p + '.part'
    buf = bytearray(_CH)
    m = memoryview(buf)
    sha = hashlib.sha256()
    cl.drain()
    try:
        _journal(p, tmp)  # a reset during the transfer leaves no .part behind either
        with open(tmp, 'wb') as fh:
            off = 0
            while off < size:
                n = min(_CH, size - off)
                fr = off % ps
                cl.send(b'GETRANGE', key + b'%d' % (off // ps), fr, fr + n - 1)
                if cl.read(buf) != n:
                    raise Fail(b'EINVAL', b'upload data missing (expired?)')
                fh.write(m[:n])
                sha.update(m[:n])
                off += n
                if not off & 4095:
                    yield  # 4 KB per step: the board collects garbage in between
        d = binascii.hexlify(sha.digest())
        if d != want:
            raise Fail(b'EHASH', b'sha256 mismatch')
        _replace(tmp, p, tmp)
    except BaseException:
        recover()  # the temporary file and the journal go, the old file stays or comes back
        raise
    return b'{"size":%d,"sha256":"%s"}' % (size, d)


def _acked(cl, a):
    # Flow control (PROTOCOL.md §7.3): waits until the manager has read far enough
    # (state field ack = "CID n") to send 64 entries more; gives up after 30 s without
    # progress. Returns the acknowledged n.
    t = time.ticks_ms()
    while True:
        cl.drain()
        cl.send(b'HGET', cl.ks, b'ack')
        v = cl.read()
        k = len(cl.cid)
        if v and v[:k] == cl.cid and v[k:k + 1] == b' ' and int(bytes(v[k + 1:])) > a:
            a = int(bytes(v[k + 1:]))
            t = time.ticks_ms()
        if cl.seq - a <= 192:
            return a
        if time.ticks_diff(time.ticks_ms(), t) > 30000:
            raise Fail(b'ETIMEDOUT', b'the manager stopped reading the file')
        time.sleep_ms(100)


def _get(cl, p):
    a = -1
    buf = bytearray(_CH)
    m = memoryview(buf)
    sha = hashlib.sha256()
    off = 0
    with open(p, 'rb') as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            sha.update(m[:n])
            if cl.seq - a > 256:
                a = _acked(cl, a)
            cl.x(b'dat', b'i', cl.cid, b'n', cl.seq, b'o', off, b'd', m[:n])
            cl.seq += 1
            off += n
            if not off & 4095:
                yield  # 4 KB per step
    return b'{"size":%d,"sha256":"%s"}' % (off, binascii.hexlify(sha.digest()))


def _ls(cl, p):
    # The first entries that fit (§7.4): at most 1000 and 16 KiB of JSON, and no more than
    # this board's free heap holds. Each kept name costs about three times its length on
    # the way out (the name, the JSON, its copy as it is sent) and 100 bytes besides; 4 KB
    # stay for the garbage of the last 8 entries, collected after every 8 (a step each).
    out = []
    b = 2
    gc.collect()
    room = gc.mem_free() - 4096
    for e in os.ilistdir(p):
        k = len(e[0].encode())
        b += k + 24  # its JSON, at most
        room -= 3 * k + 100
        if len(out) == 1000 or b > 16384 or room < 0:
            cl.tot = 1 << 30  # marks the result as truncated (§7.4)
            break
        d = e[1] & 0x4000
        size = 0
        if not d:
            size = e[3] if len(e) > 3 and e[3] >= 0 else os.stat(p.rstrip('/') + '/' + e[0])[6]
        out.append([e[0], 'd' if d else 'f', size])
        if not len(out) & 7:
            yield
    out.sort()
    return json.dumps(out)


def _rm(p, tree):
    # A tree goes one entry at a time, its listing opened again after each removal: the
    # names need not fit in memory, and the board collects garbage in between (a step each).
    d = _isdir(p)
    if d is None:
        raise Fail(b'ENOENT', b'no such file or directory')
    if not d:
        os.remove(p)
        return b'{}'
    while tree:
        for e in os.ilistdir(p):
            break
        else:
            break
        yield from _rm(p + '/' + e[0], True)
        yield
    if not tree and any(True for _ in os.ilistdir(p)):
        raise Fail(b'ENOTEMPTY', b'the directory is not empty')
    os.rmdir(p)
    return b'{}'

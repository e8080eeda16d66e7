# The board lab's runtime (micropython-board-worker.mjs): boots the board's files and
# drives its firmware one bounded step at a time. Never part of a real board.
#
# Garbage is only collected when control is back in JavaScript: the port's automatic
# collection (at gc.threshold(), which the worker sets as _boot.py does) runs as the call
# returns, and the worker calls collect() after every firmware step and between other
# calls when the heap runs low (a gc.collect() here only marks a collection due).
# Exceptions never leave these functions (an exception reaching JavaScript is formatted
# in the heap, which may be full): they are kept in _err, and JavaScript asks report() to print them once the heap
# has been collected. Return codes: 0 ok, -1 exception, -2 MemoryError, -3 SystemExit,
# -4 KeyboardInterrupt (Ctrl-C, see interrupted()).
import gc
import sys
import uctypes
import _cm_lab_host as _h

g = {'__name__': '__main__'}  # the board's __main__: boot.py, main.py, the firmware, run()

try:
    import asyncio
    if not hasattr(asyncio, 'run'):
        # This port runs asyncio on the JavaScript event loop, which is always running,
        # and has no run(): starting the main task is what run() does on a board.
        asyncio.run = asyncio.create_task
except ImportError:
    pass
_err = None
# Bound once: looking an attribute up on the host module makes a proxy in the heap, and
# doing so with the heap full (mem() runs after every step, however full the step left
# it) hung the interpreter instead of raising MemoryError.
_mem = _h.mem
_step = None
_keep = None  # ballast: see the worker's boot()


def _fail(e):
    global _err
    _err = e
    if isinstance(e, MemoryError):
        return -2
    if isinstance(e, SystemExit):
        return -3
    return -4 if isinstance(e, KeyboardInterrupt) else -1


def report():
    # Prints the exception that ended the last call to the console, as a board's REPL
    # does; returns 1 if there was one (SystemExit is not an error).
    global _err
    e = _err
    _err = None
    if e is None or isinstance(e, SystemExit):
        return 0
    sys.print_exception(e, sys.stderr)
    return 1


def run_file(name):
    try:
        with open(name) as f:
            c = f.read()
        c = compile(c, name, 'exec')
        exec(c, g)
    except BaseException as e:
        return _fail(e)
    mem()
    return 0


def start(mod):
    global _step
    try:
        m = __import__(mod)
        g[mod] = m
        c = g['client'] = m.start()
        _step = c.step
    except BaseException as e:
        return _fail(e)
    mem()
    return 0


def step(wait):
    try:
        r = _step(wait)
    except BaseException as e:
        return _fail(e)
    # The peak of this step, before any collection that runs as we return.
    mem()
    return r if type(r) is int and r > 0 else 0


def run(single):
    # Code for run() is pulled from the host into the heap, like a paste into the REPL.
    # single: one line typed at the friendly REPL (an expression's value is printed).
    b = bytearray(_h.code_len())
    _h.code_read(uctypes.addressof(b), len(b))
    try:
        c = str(b, 'utf-8')
        b = None
        c = compile(c, '<stdin>', 'single' if single else 'exec')
        exec(c, g)
    except BaseException as e:
        b = c = None
        gc.collect()
        return _fail(e)
    b = c = None
    mem()
    return 0


def interrupted(wait):
    # Ctrl-C between two steps: JavaScript has scheduled a KeyboardInterrupt, which the
    # step raises where it stands (as the firmware's main loop would on a board). A step
    # that swallows it is still interrupted: the loop below raises a scheduled one still
    # pending (the VM checks on a backward jump), the raise an unscheduled one.
    try:
        _step(wait)
        for _ in (0, 1):
            pass
        raise KeyboardInterrupt
    except BaseException as e:
        return _fail(e)


def drain():
    # A KeyboardInterrupt scheduled for code that returned before it was raised: raise it
    # here, where it does no harm, instead of in the next Python call.
    try:
        for _ in (0, 1):
            pass
    except KeyboardInterrupt:
        pass


def collect():
    gc.collect()


def mem():
    _mem(gc.mem_alloc(), gc.mem_free(), gc.threshold())


def heap_figures(hidden, split, total):
    # What the board's gc (_cm_gc.py) takes off the port's figures: see the worker.
    g = sys.modules['gc']
    g._hidden = hidden
    g._split = split
    g._total = total


def corrupt(start, blocks, ms):
    # inisetup.fs_corrupted() of MicroPython 1.27 (from _boot.py, nothing mounted): the
    # message every 3 s (`ms` here) until Ctrl-C.
    import time
    try:
        while 1:
            print("""\
The filesystem starting at sector %d with size %d sectors looks corrupt.
You may want to make a flash snapshot and try to recover it. Otherwise,
format it with vfs.VfsLfs2.mkfs(bdev), or completely erase the flash and
reprogram MicroPython.
""" % (start, blocks))
            time.sleep_ms(ms)
    except BaseException as e:
        return _fail(e)


def qstr_room():
    # Sets a fresh pool of interned names (qstrs) aside for the board: padding names are
    # interned until the port allocates a new pool (a jump of kilobytes in the heap), so the
    # board's own names land in it whatever the lab's shims interned before. Without this,
    # a shim gaining a few names moved the point where the client's names need a new pool,
    # and the client's held heap jumped by that pool (2.3 KB). Returns the padding count.
    i = 0
    a = gc.mem_alloc()
    while i < 4096:
        getattr(0, '_cm_q%d' % i, None)
        b = gc.mem_alloc()
        if b - a > 512:  # a new pool (string data comes in chunks of 128 bytes)
            return i
        a = b
        i += 1
    return i


def ballast(n):
    global _keep
    _keep = bytearray(n) if n > 0 else None

# The board lab's `gc`: the port's own, except that mem_free() and mem_alloc() count the
# board's heap (its budget), as on an ESP8266. The port's figures include the lab's own
# Python, and its mem_free() adds the 128 MiB the heap may still grow by ("max new
# split"). gc is a C module whose attributes cannot be set, so the board gets this module
# instead (from sys.modules, which `import gc` looks in first). The worker gives the
# figures once it has measured them (_cm_lab.heap_figures()); until then the port's are
# passed on.
import sys
import gc as _g

for _k in dir(_g):
    globals()[_k] = getattr(_g, _k)
_hidden = 0  # heap the lab's Python holds
_split = 0   # what the port adds to mem_free()
_total = 0   # with a live check (heapLimit 'live-check'): the budget; else 0
_gfree = _g.mem_free
_galloc = _g.mem_alloc


def mem_alloc():
    return _galloc() - _hidden


def mem_free():
    if _total:
        # The heap may have grown past the budget in a step: what is left of the budget.
        return max(0, _total - _galloc() + _hidden)
    return _gfree() - _split


sys.modules['gc'] = sys.modules.pop('_cm_gc')
globals().pop('__file__', None)
del _k, _g, sys

"""Heap helpers shared by the runtime."""

import sys


def unload(*names):
    """Forget modules (MicroPython): code needed only now and then (boot, the general
    decoder, status) gives its RAM back once nothing refers to it. Only call it
    for modules that nothing else imports at module level. A submodule is also
    taken off its package (`p1.table` is an attribute of `p1`, which would keep
    it alive). Its names (qstrs) stay interned: they cost RAM once, not per load."""
    if sys.implementation.name == "micropython":
        mods = sys.modules
        for n in names:
            mods.pop(n, None)
            i = n.rfind(".")
            if i > 0 and n[:i] in mods:
                try:
                    delattr(mods[n[:i]], n[i + 1 :])
                except (AttributeError, KeyError):  # not there (MicroPython says KeyError)
                    pass


def loaded(*names):
    """Which of `names` are imported now: a cold path unloads only what it brought in."""
    return [n for n in names if n in sys.modules]


def unload_new(before, *names):
    """unload() those of `names` that were not in `before` (a `loaded()` list)."""
    unload(*[n for n in names if n not in before])

"""Heap helpers shared by the runtime."""

import sys


def unload(*names):
    """Forget modules (MicroPython): code needed only now and then (boot, the general
    decoder, status) gives its RAM back once nothing refers to it. Only call it
    for modules that nothing else imports at module level."""
    if sys.implementation.name == "micropython":
        for n in names:
            sys.modules.pop(n, None)


def loaded(*names):
    """Which of `names` are imported now: a cold path unloads only what it brought in."""
    return [n for n in names if n in sys.modules]


def unload_new(before, *names):
    """unload() those of `names` that were not in `before` (a `loaded()` list)."""
    unload(*[n for n in names if n not in before])

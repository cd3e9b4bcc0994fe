"""Heap helpers shared by the runtime."""

import sys


def unload(*names):
    """Forget modules (MicroPython): code needed only now and then (boot, the general
    decoder, status) gives its RAM back once nothing refers to it. Only call it
    for modules that nothing else imports at module level."""
    if sys.implementation.name == "micropython":
        for n in names:
            sys.modules.pop(n, None)

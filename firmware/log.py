"""Tiny logger: a line on the console, the last warnings kept for status.

`log.info("...")`, `log.warn("...")`, `log.error("...")`, `log.exc(e, "where")`.
The ring of recent warnings/errors is bounded (`_KEEP`) and shown by
/api/v1/status as `log`.
"""

import sys

from clock import ticks_diff, ticks_ms

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_KEEP = const(8)
_T0 = ticks_ms()
recent = []  # last _KEEP warnings / errors, oldest first
quiet = False  # tests silence info lines
memory_errors = 0  # MemoryErrors caught anywhere (app.py watches them)


def _emit(level, msg):
    """Print the line and keep it; False if there was no heap for it."""
    try:
        line = "%7d %s %s" % (ticks_diff(ticks_ms(), _T0) // 1000, level, msg)
    except MemoryError:  # logging must never be what fails
        return False
    if level != "I" or not quiet:
        print(line)
    if level != "I":
        try:
            recent.append(line)
            if len(recent) > _KEEP:
                recent.pop(0)
        except MemoryError:
            pass
    return True


def info(msg):
    _emit("I", msg)


def warn(msg):
    _emit("W", msg)


def error(msg):
    _emit("E", msg)


def oom(where):
    """Count a MemoryError that was caught and survived (no traceback: it needs RAM)."""
    global memory_errors
    memory_errors += 1
    try:
        done = _emit("W", "%s: out of memory" % where)
    except MemoryError:  # (the text itself; asyncio's exception handler calls this too)
        done = False
    if not done:  # the heap is full: the parts as they are (printing them allocates nothing)
        print("      - W", where, end=": out of memory\n")


def exc(e, where=""):
    """Log an exception with its traceback on the console (a MemoryError is
    counted as well: app.py's heap watch sees every one, not only oom()'s)."""
    global memory_errors
    if isinstance(e, MemoryError):
        memory_errors += 1
    try:  # (asyncio's exception handler calls this: a MemoryError would end the loop)
        _emit("E", "%s: %s: %r" % (where, type(e).__name__, e))
        try:
            sys.print_exception(e)  # type: ignore[attr-defined]  # MicroPython
        except AttributeError:
            import traceback

            traceback.print_exception(type(e), e, e.__traceback__)
    except MemoryError:
        pass

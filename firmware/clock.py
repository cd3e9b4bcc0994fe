"""Monotonic milliseconds on both interpreters (MicroPython's ticks wrap)."""

try:
    from time import ticks_add, ticks_diff, ticks_ms  # MicroPython
except ImportError:  # CPython host board
    import time

    def ticks_ms():
        return time.monotonic_ns() // 1_000_000  # pyright: ignore[reportAttributeAccessIssue]

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b

__all__ = ["ticks_ms", "ticks_diff", "ticks_add"]

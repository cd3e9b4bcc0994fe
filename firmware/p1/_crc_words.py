"""CRC-16/ARC two bytes per step for CPython (the host board, the tools): a
65536-entry table over `memoryview.cast("H")`. `p1.crc` checks it at import;
MicroPython has no cast, so the import fails there and costs nothing.
"""

import sys

if sys.implementation.name != "cpython" or sys.byteorder != "little":
    raise ImportError("CPython on a little-endian host only")


def _byte_table():
    out = []
    for c in range(256):
        for _ in range(8):
            c = (c >> 1) ^ (0xA001 if c & 1 else 0)
        out.append(c)
    return tuple(out)


def _word_table():
    t = _T
    out = []
    for w in range(65536):
        c = (w >> 8) ^ t[w & 0xFF]
        out.append((c >> 8) ^ t[c & 0xFF])
    return tuple(out)


_T = _byte_table()
_T2 = _word_table()


def crc16(data):
    """CRC-16/ARC of a bytes-like object."""
    t2 = _T2
    crc = 0
    mv = memoryview(data).cast("B")
    n = len(mv) & ~1
    for w in mv[:n].cast("H"):
        crc = t2[crc ^ w]
    if n != len(mv):
        crc = (crc >> 8) ^ _T[(crc ^ mv[n]) & 0xFF]
    return crc

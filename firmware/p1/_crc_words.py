"""CRC-16/ARC two bytes per step for CPython (the host board, the tools): a
65536-entry table over `memoryview.cast("H")`. `p1.crc` checks it at import;
MicroPython has no cast, so the import fails there and costs nothing.
"""

import struct
import sys

from p1.crc import TABLE

if sys.implementation.name != "cpython" or sys.byteorder != "little":
    raise ImportError("CPython on a little-endian host only")

_T = struct.unpack("<256H", TABLE)


def _table2():
    t = _T
    out = []
    for w in range(65536):
        c = (w >> 8) ^ t[w & 0xFF]
        out.append((c >> 8) ^ t[c & 0xFF])
    return tuple(out)


_T2 = _table2()


def update(crc, data):
    """Return `crc` continued over every byte of `data` (bytes-like)."""
    t2 = _T2
    mv = memoryview(data).cast("B")
    n = len(mv) & ~1
    for w in mv[:n].cast("H"):
        crc = t2[crc ^ w]
    if n != len(mv):
        crc = (crc >> 8) ^ _T[(crc ^ mv[n]) & 0xFF]
    return crc

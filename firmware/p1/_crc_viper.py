"""CRC-16/ARC in viper (native code) for the ESP32; `p1.crc` checks it at import.

Imported only where MicroPython has the viper emitter; elsewhere the import
fails and `p1.crc` keeps its portable loop.
"""

import micropython
from array import array

from p1.crc import TABLE

_T = array("H", TABLE)


@micropython.viper
def _run(crc: int, buf, n: int) -> int:
    p = ptr8(buf)  # noqa: F821 - viper builtin
    t = ptr16(_T)  # noqa: F821 - viper builtin
    c = crc
    for i in range(n):
        c = (c >> 8) ^ t[(c ^ p[i]) & 0xFF]
    return c


def update(crc, data):
    """Return `crc` continued over every byte of `data` (bytes-like)."""
    return _run(crc, data, len(data))

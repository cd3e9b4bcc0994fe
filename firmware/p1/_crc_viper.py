"""CRC-16/ARC in viper (native code) for the ESP32; `p1.crc` checks it at import.

Imported only where MicroPython has the viper emitter and the .mpy was built
for this chip's architecture; elsewhere the import fails and `p1.crc` keeps
its portable loop. Reads the same 512-byte table as `p1.crc`.
"""

import micropython

from p1.crc import TABLE


@micropython.viper
def _run(crc: int, buf, n: int) -> int:
    p = ptr8(buf)  # noqa: F821 - viper builtin
    t = ptr8(TABLE)  # noqa: F821 - viper builtin
    c = crc
    for i in range(n):
        k = ((c ^ p[i]) & 0xFF) << 1
        c = (c >> 8) ^ (t[k] | (t[k + 1] << 8))
    return c


def update(crc, data):
    """Return `crc` continued over every byte of `data` (bytes-like)."""
    return _run(crc, data, len(data))

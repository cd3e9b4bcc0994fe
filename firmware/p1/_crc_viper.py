"""CRC-16/ARC in viper (native code) for the ESP32; `p1.crc` checks it at import.

Imported only where MicroPython has the viper emitter and the .mpy was built
for this chip's architecture; elsewhere the import fails and `p1.crc` keeps
its portable loop. Reads the same 16-entry table as `p1.crc`.
"""

import micropython

from p1.crc import NIBBLES


@micropython.viper
def crc16(data) -> int:
    """CRC-16/ARC of a bytes-like object."""
    p = ptr8(data)  # noqa: F821 - viper builtin
    t = ptr8(NIBBLES)  # noqa: F821 - viper builtin
    n = int(len(data))
    c = 0
    for i in range(n):
        c ^= p[i]
        k = (c & 15) << 1
        c = (c >> 4) ^ t[k] ^ (t[k + 1] << 8)
        k = (c & 15) << 1
        c = (c >> 4) ^ t[k] ^ (t[k + 1] << 8)
    return c

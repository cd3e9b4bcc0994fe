"""CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no final XOR), as P1 uses.

`update(crc, data)` continues a running CRC over a bytes-like object (pass a
memoryview slice to avoid a copy), so the framer checks a telegram chunk by
chunk as its bytes arrive.

Speed-ups by feature detection, each checked against the plain table loop
at import and dropped if it disagrees:
- on the ESP32, a viper (native code) loop from `p1._crc_viper`;
- on CPython, two bytes per step through a 65536-entry table over
  `memoryview.cast("H")` (little-endian hosts; MicroPython has no cast).
"""


def _make_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        t.append(c)
    return tuple(t)


TABLE = _make_table()


def _update_bytes(crc, data):
    t = TABLE
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc


update = _update_bytes


def crc16(data):
    """CRC-16/ARC of a whole bytes-like object."""
    return update(0, data)


def _words():  # CPython: a 16-bit register XORed with a 16-bit word, then 16 shifts
    import sys

    if sys.implementation.name != "cpython" or sys.byteorder != "little":
        return None
    t = TABLE
    t2 = []
    for w in range(65536):
        c = (w >> 8) ^ t[w & 0xFF]
        t2.append((c >> 8) ^ t[c & 0xFF])
    t2 = tuple(t2)

    def update_words(crc, data):
        mv = memoryview(data).cast("B")
        n = len(mv) & ~1
        for w in mv[:n].cast("H"):
            crc = t2[crc ^ w]
        if n != len(mv):
            crc = (crc >> 8) ^ t[(crc ^ mv[n]) & 0xFF]
        return crc

    return update_words


def _native():
    try:
        from p1._crc_viper import update as fast
    except Exception:  # no viper on this port (CPython, WebAssembly)
        return _words()
    return fast


def _select():
    global update
    fast = _native()
    probe = b"/LGF5E360\r\n\r\n1-0:1.8.0(00000896.020*kWh)\r\n!"
    if fast is not None and fast(0, probe) == _update_bytes(0, probe) == 0x85E2:
        update = fast


_select()

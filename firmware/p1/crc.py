"""CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no final XOR), as P1 uses.

`update(crc, data, start, end)` continues a running CRC over `data[start:end]`
so the framer can check a telegram as its bytes arrive, chunk by chunk.
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


def update(crc, data, start=0, end=None):
    """Return the CRC continued over data[start:end] (a bytes-like object)."""
    if end is None:
        end = len(data)
    t = TABLE
    for i in range(start, end):
        crc = (crc >> 8) ^ t[(crc ^ data[i]) & 0xFF]
    return crc


def crc16(data):
    """CRC-16/ARC of a whole bytes-like object."""
    return update(0, data, 0, len(data))

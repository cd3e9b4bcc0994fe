"""CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no final XOR), as P1 uses.

`update(crc, data)` continues a running CRC over a bytes-like object (pass a
memoryview slice to avoid a copy), so the framer checks a telegram chunk by
chunk as its bytes arrive.
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


def update(crc, data):
    """Return `crc` continued over every byte of `data`."""
    t = TABLE
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc


def crc16(data):
    """CRC-16/ARC of a whole bytes-like object."""
    return update(0, data)

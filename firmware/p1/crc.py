"""CRC-16/ARC (poly 0x8005 reflected = 0xA001, init 0, no final XOR), as P1 uses.

`crc16(data)` of a bytes-like object (pass a memoryview slice to avoid a
copy): the framer checks each telegram once its `!` has arrived.

The portable loop takes a byte in two 4-bit steps through a 16-entry table
(a 32-byte constant, little-endian 16-bit entries): on the device a
256-entry table cost 512 bytes of heap, a tuple of 256 ints ~2.5 KB.
Speed-ups by feature detection, each checked at import and dropped if it
gives a wrong CRC (the portable loop is defined only then, so a device with
viper does not carry it):
- on the ESP32 (and the Unix port), a viper (native code) loop from `p1._crc_viper`;
- on CPython, two bytes per step through a 65536-entry table over
  `memoryview.cast("H")` (`p1._crc_words`; MicroPython has no cast).
"""

# CRC of the 4-bit value n (n = 0..15), as `crc = (crc >> 4) ^ NIBBLES[crc & 15]`.
NIBBLES = (
    b"\x00\x00\x01\xcc\x01\xd8\x00\x14\x01\xf0\x00\x3c\x00\x28\x01\xe4"
    b"\x01\xa0\x00\x6c\x00\x78\x01\xb4\x00\x50\x01\x9c\x01\x88\x00\x44"
)


try:
    from p1._crc_viper import crc16
except Exception:  # no viper on this port (CPython, WebAssembly) or another arch
    try:
        from p1._crc_words import crc16
    except Exception:  # not CPython on a little-endian host
        crc16 = None
if crc16 is None or crc16(b"/LGF5E360\r\n\r\n1-0:1.8.0(00000896.020*kWh)\r\n!") != 0x85E2:

    def crc16(data):
        """CRC-16/ARC of a bytes-like object (the portable loop)."""
        t = NIBBLES
        crc = 0
        for b in data:
            crc ^= b
            i = (crc & 15) << 1
            crc = (crc >> 4) ^ t[i] ^ t[i + 1] << 8
            i = (crc & 15) << 1
            crc = (crc >> 4) ^ t[i] ^ t[i + 1] << 8
        return crc

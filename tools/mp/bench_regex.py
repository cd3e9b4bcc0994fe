"""The bench's baseline decoder: a plain P1 reader as it is often written for
MicroPython, telegram bytes -> the same JSON body as the firmware's.

- framing: bytes appended to a bytearray, the telegram cut out with find("/")
  and find("!") once its CRC line is complete;
- CRC-16/ARC bit by bit (8 shifts per byte), in plain Python;
- one regular expression per line (`re`, as MicroPython has it) for the OBIS
  code and the value groups, more for numbers and time stamps;
- the OBIS table as a dict (built once from p1.obis: the knowledge is not
  what is measured), values written as text with their exact digits.

It reads what the bench feeds it (the recorded DSMR 5 and Finnish/Swedish
telegrams) and nothing odd: `make bench` checks that its bodies equal the
firmware's byte for byte before it times anything. Runs on MicroPython and
CPython.
"""

import re

from p1.obis import MBUS, T, UNITS

LINE = re.compile(r"^(\d+)-(\d+):(\d+\.\d+\.\d+)\((.*)\)$")
NUM = re.compile(r"^(\d+)\.?(\d*)\*(.+)$")
STAMP = re.compile(r"^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)([WS])$")
INT = re.compile(r"^\d+$")


def _table():
    """{code: (name or None, unit or None, kind letter)}, M-Bus codes as 0-n:..."""
    units = {}  # letter -> (unit, {spelling: shift})
    for line in UNITS.split(b"\n"):
        if line:
            fields = line[2:].split(b"|")
            spell = {}
            for f in fields[1:]:
                if f and max(f) < 0x80:  # m\xb3 aside: this reader takes ASCII
                    s, sh = f.decode().split(" ")
                    spell[s] = int(sh)
            units[chr(line[0])] = (fields[0].decode(), spell)
    table = {}
    for line in T.decode().split("\n"):
        if line:
            code, ku, name = line.split(" ")
            u = units.get(ku[1])
            table[code] = (None if name == "-" else name, u, ku[0])
    shifts = {}  # unit -> {spelling: shift}
    for u in units.values():
        shifts[u[0]] = u[1]
    return table, shifts


TABLE, SHIFTS = _table()


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


def number(intpart, frac, shift):
    """Digits with `len(frac) + shift` decimals, leading zeros dropped."""
    digits = (intpart + frac).lstrip("0")
    d = len(frac) + shift
    if d < 0:
        digits = digits + "0" * -d
        d = 0
    if not d:
        return digits or "0"
    digits = "0" * (d + 1 - len(digits)) + digits if len(digits) <= d else digits
    return digits[:-d] + "." + digits[-d:]


def stamp(g, std_offset):
    m = STAMP.match(g)
    if m is None:
        return None
    off = std_offset + (60 if m.group(7) == "S" else 0)
    return "20%s-%s-%sT%s:%s:%s%s%02d:%02d" % (
        m.group(1), m.group(2), m.group(3), m.group(4), m.group(5), m.group(6),
        "-" if off < 0 else "+", abs(off) // 60, abs(off) % 60,
    )  # fmt: skip


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Decoder:
    def __init__(self, std_offset=120):
        self.buf = bytearray()
        self.std_offset = std_offset
        self.bad = 0

    def feed(self, data):
        """Bytes in; returns the JSON bodies (bytes) of the telegrams completed."""
        self.buf += data
        out = []
        while True:
            s = self.buf.find(b"/")
            if s < 0:
                self.buf = bytearray()
                return out
            e = self.buf.find(b"!", s)
            if e < 0 or len(self.buf) < e + 7:
                if s:
                    self.buf = self.buf[s:]
                return out
            frame = bytes(self.buf[s : e + 1])
            given = int(bytes(self.buf[e + 1 : e + 5]).decode(), 16)
            self.buf = self.buf[e + 7 :]
            if crc16(frame) != given:
                self.bad += 1
                continue
            out.append(self.decode(frame.decode()))

    def decode(self, text):
        lines = text.split("\r\n")
        meter = lines[0][1:]
        ts = "null"
        parts = []
        types = {}
        for line in lines[1:]:
            m = LINE.match(line)
            if m is None:
                continue
            a, b, c, value = m.group(1), m.group(2), m.group(3), m.group(4)
            mbus = a == "0" and b != "0"
            e = TABLE.get(("0-n:" if mbus else a + "-" + b + ":") + c)
            if e is None:
                continue
            name, unit, kind = e
            if kind == "y":
                types[b] = int(value)
                continue
            if kind == "m":
                spec = MBUS.get(types.get(b))
                groups = value.split(")(")
                n = NUM.match(groups[-1])
                if spec is None or n is None:
                    continue
                sh = SHIFTS[spec[1]].get(n.group(3))
                if sh is None:
                    continue
                parts.append('"%s": %s' % (spec[0], number(n.group(1), n.group(2), sh)))
                parts.append('"%s": "%s"' % (spec[2], stamp(groups[0], self.std_offset)))
                continue
            if name is None:
                continue
            if kind == "c" or kind == "i":
                n = NUM.match(value)
                if n is None:
                    continue
                sh = unit[1].get(n.group(3))
                if sh is None:
                    continue
                parts.append('"%s": %s' % (name, number(n.group(1), n.group(2), sh)))
            elif kind == "n":
                if INT.match(value):
                    parts.append('"%s": %d' % (name, int(value)))
            elif kind == "s":
                parts.append('"%s": %s' % (name, quote(value)))
            elif kind == "t":
                t = stamp(value, self.std_offset)
                if name == "timestamp":
                    ts = '"%s"' % t
                else:
                    parts.append('"%s": "%s"' % (name, t))
        head = '{"timestamp": %s, "meter": %s' % (ts, quote(meter))
        if parts:
            return (head + ", " + ", ".join(parts) + "}").encode()
        return (head + "}").encode()

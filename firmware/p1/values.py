"""Exact meter values: fixed-point numbers and P1 time stamps.

A number is an integer plus a count of decimals (`00012345.678` ->
12345678, 3): never a float, since ESP32 MicroPython floats are 32-bit and
lose the last digits of an energy counter.
"""


class Num:
    """A fixed-point number: value * 10**-decimals, with the unit as written."""

    def __init__(self, value, decimals=0, unit=""):
        self.value = value
        self.decimals = decimals
        self.unit = unit

    def __str__(self):
        """The number with exactly its decimals, leading zeros dropped."""
        v = self.value
        d = self.decimals
        s = str(-v if v < 0 else v)
        if d:
            if len(s) <= d:
                s = "0" * (d + 1 - len(s)) + s
            s = s[:-d] + "." + s[-d:]
        return "-" + s if v < 0 else s

    def __repr__(self):
        return "Num(%s%s)" % (self, " " + self.unit if self.unit else "")

    def __eq__(self, other):
        return (
            isinstance(other, Num)
            and self.value == other.value
            and self.decimals == other.decimals
            and self.unit == other.unit
        )

    def shifted(self, shift, unit):
        """The same quantity with the decimal point moved `shift` places left.

        `shift` 3 turns Wh into kWh exactly (6545766 Wh -> 6545.766 kWh).
        """
        d = self.decimals + shift
        v = self.value
        if d < 0:
            v *= 10 ** (-d)
            d = 0
        return Num(v, d, unit)


def fixed(s):
    """Parse `[-+]digits[.digits]` into (value, decimals); None if malformed."""
    neg = s[:1] == "-"
    if neg or s[:1] == "+":
        s = s[1:]
    p = s.find(".")
    if p < 0:
        digits = s
        d = 0
    else:
        d = len(s) - p - 1
        digits = s.replace(".", "")  # one allocation; a second dot fails isdigit
        if not d or len(digits) != len(s) - 1:
            return None
    if not digits.isdigit():
        return None
    try:
        v = int(digits)
    except ValueError:  # CPython's isdigit() also accepts "²" (0xB2 as latin-1)
        return None
    return (-v if neg else v), d


def offset_text(minutes):
    """UTC offset in minutes -> '+02:00'."""
    sign = "-" if minutes < 0 else "+"
    m = -minutes if minutes < 0 else minutes
    return "%s%02d:%02d" % (sign, m // 60, m % 60)


def parse_offset(text):
    """'+02:00' / '-0130' / '+2' -> minutes; ValueError if malformed."""
    t = text.strip()
    if not t or t[0] not in "+-":
        raise ValueError("offset must start with + or -: %r" % text)
    body = t[1:].replace(":", "")
    if not body.isdigit() or len(body) not in (1, 2, 4):
        raise ValueError("bad offset %r" % text)
    h = int(body[:2] if len(body) == 4 else body)
    m = int(body[2:]) if len(body) == 4 else 0
    if h > 14 or m > 59:
        raise ValueError("offset out of range: %r" % text)
    total = h * 60 + m
    return -total if t[0] == "-" else total


def is_stamp(s):
    """True if `s` has the shape of a P1 time stamp (YYMMDDhhmmss + W/S)."""
    return len(s) == 13 and s[12] in "WS" and s[:12].isdigit()


def stamp(s, std_offset):
    """`YYMMDDhhmmssX` -> ISO 8601 text; None if malformed.

    X is W (standard time: `std_offset` minutes) or S (summer: one hour
    more); a stamp without the flag gets no offset. Two-digit years follow
    POSIX: 69-99 are 19xx (a dead M-Bus channel sends 700101010000W, 1970).
    """
    if len(s) == 13 and s[12] in "WS":
        off = offset_text(std_offset + (60 if s[12] == "S" else 0))
    elif len(s) == 12:
        off = ""
    else:
        return None
    d = s[:12]
    if not d.isdigit():
        return None
    yy, mo, dd = int(d[0:2]), int(d[2:4]), int(d[4:6])
    hh, mi, ss = int(d[6:8]), int(d[8:10]), int(d[10:12])
    if not (1 <= mo <= 12 and 1 <= dd <= 31 and hh <= 23 and mi <= 59 and ss <= 59):
        return None
    year = 1900 + yy if yy >= 69 else 2000 + yy
    return "%04d-%02d-%02dT%02d:%02d:%02d%s" % (year, mo, dd, hh, mi, ss, off)

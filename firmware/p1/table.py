"""Lookups in the OBIS table (`p1.obis`) with str codes and names: for the general
decoder (`p1.parse`, `p1.readings`) and metrics. (Home Assistant discovery reads
`p1.obis` itself: see `net.ha`.)

Kept out of `p1.obis` so that the device's one-pass decoder (`p1.body`) does
not carry them: this module is imported only by code that runs now and then.
"""

from p1.obis import MBUS, T, UNITS, find, shift, unit_line

KINDS = {
    0x63: "cum",
    0x69: "inst",
    0x6E: "int",
    0x73: "str",
    0x74: "ts",
    0x79: "mbus_type",
    0x6D: "mbus",
}


def name_span(i, n):
    """(start, end) of the name on the table line at `i` of a code `n` long."""
    s = i + n + 4
    return s, T.find(b"\n", s)


def _entry(i, n):
    kind = KINDS[T[i + n + 1]]
    u = T[i + n + 2]
    unit = None
    if u != 0x2D:
        a = unit_line(u) + 3
        unit = UNITS[a : UNITS.find(b"|", a)].decode()
    s, e = name_span(i, n)
    name = T[s:e].decode()
    return (None if name == "-" else name), unit, kind


_memo = {}  # code -> entry, and (unit, written) -> shift: the general decoder asks the same


def _remember(key, value):
    if len(_memo) > 128:  # bounded: noise can make up any number of codes
        _memo.clear()
    _memo[key] = value
    return value


def lookup(code):
    """The entry `(name, unit, kind)` of an OBIS code (str; M-Bus channels as 0-n), or None."""
    e = _memo.get(code, _memo)
    return _remember(code, _lookup(code)) if e is _memo else e


def _lookup(code):
    b = code.encode()
    i = find(b)
    if i < 0:
        return None
    return _entry(i, T.find(b" ", i) - i)


def unit_shift(unit, written):
    """Decimal shift from the unit a meter `written` into table unit `unit`; None if foreign."""
    key = (unit, written)
    e = _memo.get(key, _memo)
    return _remember(key, _unit_shift(unit, written)) if e is _memo else e


def _unit_shift(unit, written):
    i = UNITS.find(b" " + unit.encode() + b"|")
    if i < 0 or UNITS[i - 2] != 0x0A:
        return None
    try:
        b = bytes([ord(c) for c in written])  # latin-1, as the meter sent it (both interpreters)
    except ValueError:  # beyond latin-1: nothing we know
        return None
    return shift(i - 2, b)


def by_name(name):
    """`(OBIS, unit, kind)` of a reading name, or None. M-Bus readings give `0-n:24.2.1`."""
    for t in MBUS:
        spec = MBUS[t]
        if name == spec[0]:
            return "0-n:24.2.1", spec[1], "cum"
        if name == spec[2]:
            return "0-n:24.2.1", None, "ts"
    b = name.encode()
    i = 0
    while True:
        i = T.find(b" " + b + b"\n", i)
        if i < 0:
            return None
        s = T.rfind(b"\n", 0, i)
        code = T[s + 1 : T.find(b" ", s)]
        if len(code) + s + 4 == i:  # the name field, not a code or kind
            e = _entry(s + 1, len(code))
            return code.decode(), e[1], e[2]
        i += 1


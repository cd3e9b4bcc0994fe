"""Frame -> Telegram: each line split into OBIS code and value groups.

Each object is decoded by its entry in `p1.obis` (kind and unit); unknown
codes are kept, decoded by the shape of their groups. A malformed line goes
to `Telegram.errors` with its text and a reason; the other lines are kept.
"""

try:
    from collections import OrderedDict
except ImportError:  # pragma: no cover - every MicroPython port we target has it
    OrderedDict = dict

from p1.table import lookup, unit_shift
from p1.values import Num, fixed, is_stamp, stamp


class Telegram:
    """One decoded telegram."""

    def __init__(self, ident, crc, objects, errors, raw_len):
        self.ident = ident  # identification line without the leading "/"
        self.crc = crc  # "ok" | "bad" | "none"
        self.objects = objects  # OrderedDict: OBIS code -> list of values
        self.errors = errors  # list of (line text, reason)
        self.raw_len = raw_len


_ISASCII = hasattr(b"", "isascii")  # CPython; MicroPython has no bytes.isascii


def text(b):
    """Bytes -> str on both interpreters; bytes >= 0x80 map one-to-one (latin-1)."""
    b = bytes(b)
    if b.isascii() if _ISASCII else (not b or max(b) < 0x80):
        return b.decode()
    return "".join([chr(c) for c in b])


def parse(frame, crc="ok", std_offset=120):
    """Decode a frame (bytes-like, `/` .. `!CRC`) into a Telegram.

    `std_offset` is the standard-time UTC offset in minutes (W stamps); S
    stamps get one hour more. Never raises on malformed content.
    """
    objects = OrderedDict()
    errors = []
    ident = None
    last = None  # (code, entry, groups) of the previous object, for continuations
    s = text(frame)
    for line in s.split("\r\n") if "\r\n" in s else s.split("\n"):
        if not line:
            continue
        c = line[0]
        if c == "/":
            if ident is None:
                ident = line[1:]
            else:
                errors.append((line, "second identification line"))
            continue
        if c == "!":
            break
        if c == "(":  # DSMR 2/3: a value group continued on its own line
            more = _groups(line, 0)
            if last is None or more is None:
                errors.append((line, "stray value line"))
                continue
            code, entry, groups = last
            groups.extend(more)
            _store(objects, errors, line, code, entry, groups, std_offset)
            continue
        p = line.find("(")
        if p <= 0:
            errors.append((line, "no value group"))
            continue
        code = line[:p]
        entry = lookup(code)
        if (
            entry is not None
            and line.find("(", p + 1) < 0
            and line.find(")", p + 1) == len(line) - 1
            and code not in objects
        ):  # fast path, most lines: one group of a known object
            g = line[p + 1 : -1]
            v = _fast_value(g, entry, std_offset)
            if v is not None:
                groups = [g]
                objects[code] = [v]
                last = (code, entry, groups)
                continue
        # The general path; it gives the same result for what the fast path took.
        star = code.find("*")
        if star >= 0:  # some meters append the F group, "*255": same object
            code = code[:star]
        entry = lookup(code)
        if entry is None and not _is_obis(code):
            errors.append((line, "bad OBIS code"))
            continue
        groups = _groups(line, p)
        if groups is None:
            errors.append((line, "unbalanced parentheses"))
            continue
        if code in objects:
            errors.append((line, "duplicate object"))
            continue
        last = (code, entry, groups)
        _store(objects, errors, line, code, entry, groups, std_offset)
    return Telegram(ident, crc, objects, errors, len(frame))


def _fast_value(g, entry, std_offset):
    """The value of a well-formed single group, or None to take the general path."""
    kind = entry[2]
    if kind == "cum" or kind == "inst":
        # Inline `fixed()` for the common unsigned `digits.digits*unit`.
        star = g.find("*")
        if star > 0 and unit_shift(entry[1], g[star + 1 :]) is not None:
            p = g.find(".", 0, star)
            if p < 0:
                digits = g[:star]
                d = 0
            else:
                digits = g[:p] + g[p + 1 : star]
                d = star - p - 1
            if d and digits.isdigit():
                try:
                    return Num(int(digits), d, g[star + 1 :])
                except ValueError:  # CPython's isdigit() takes "²" too
                    return None
            f = fixed(g[:star])  # signs, integers, and what is malformed
            if f is not None:
                return Num(f[0], f[1], g[star + 1 :])
    elif kind == "int":
        f = fixed(g)
        if f is not None and not f[1] and g[:1] not in "+-":
            return f[0]
    elif kind == "str":
        if g.find("*") < 0:
            return g
    elif kind == "ts":
        return stamp(g, std_offset)
    return None


def _store(objects, errors, line, code, entry, groups, std_offset):
    kind = entry[2] if entry else None
    multi = len(groups) > 1
    try:
        values = []
        for g in groups:
            values.append(_value(g, kind, std_offset, multi))
        if kind == "mbus" and groups[0]:  # (time stamp)(reading): W/S flag optional
            values[0] = _value(groups[0], "ts", std_offset, multi)
        if entry and entry[1] and not multi:
            _check_unit(values[0], entry[1])
    except ValueError as e:
        objects.pop(code, None)
        errors.append((line, e.args[0]))
        return
    objects[code] = values


def _value(g, kind, std_offset, multi):
    """One value group -> Num, int, str or ""; ValueError(reason) if malformed."""
    if not g:
        return ""
    star = g.find("*")
    if star >= 0:
        f = fixed(g[:star])
        if f is None:
            raise ValueError("bad number")
        return Num(f[0], f[1], g[star + 1 :])
    if kind == "ts" or (kind != "str" and is_stamp(g)):
        t = stamp(g, std_offset)
        if t is None:
            raise ValueError("bad time stamp")
        return t
    if kind == "int" or kind == "mbus_type":
        f = fixed(g)
        if f is None or f[1]:
            raise ValueError("not an integer")
        return f[0]
    if kind == "cum" or kind == "inst":
        f = fixed(g)
        if f is None:
            raise ValueError("bad number")
        return Num(f[0], f[1], "")
    if multi:
        f = fixed(g)
        if f is not None:
            if not f[1] and g.isdigit():  # counts in buffers, a dead M-Bus reading
                return f[0]
            return Num(f[0], f[1], "")  # DSMR 2/3 gas: the unit is the group before
    return g


def _check_unit(v, unit):
    if isinstance(v, Num) and unit_shift(unit, v.unit) is None:
        raise ValueError("unit %r is not %s" % (v.unit, unit) if v.unit else "no unit")


def _groups(line, p):
    """`(a)(b)(c)` from index p -> ["a", "b", "c"]; None if not well formed."""
    out = []
    n = len(line)
    while p < n:
        if line[p] != "(":
            return None
        q = line.find(")", p + 1)
        if q < 0:
            return None
        out.append(line[p + 1 : q])
        p = q + 1
    return out


def _is_obis(code):
    """A-B:C.D.E with decimal groups."""
    d = code.find("-")
    c = code.find(":")
    if d <= 0 or c <= d + 1:
        return False
    parts = code[c + 1 :].split(".")
    if len(parts) != 3:
        return False
    for p in [code[:d], code[d + 1 : c]] + parts:
        if not p.isdigit():
            return False
    return True

"""`python -m p1 decode [--tz +02:00] [--buffer N] [FILE ...]`: telegrams -> JSON Lines.

Runs unchanged on CPython and MicroPython; the output is byte-identical.
Each file is its own byte stream (stdin when no file is named).

Strategy: a telegram is mostly ASCII lines `code(value)`. `line_json` writes
each line straight from its text to JSON: a known object's value as the
table says (numbers copied as digits, leading zeros dropped, as `Num` prints
them), the groups of M-Bus readings and of codes the table does not know by
their shapes, with p1.parse's own rules; what it learns about a code (its
JSON key, kind, accepted units) stays in small caches. A line it does not
write itself (a sign, a value the general parser keeps in another form) is
decoded by the general parser alone, one line at a time; anything the
general parser would report (a malformed line, a duplicate, a second
identification line, a continued value group, non-ASCII bytes) sends the
whole telegram down the general path, `dumps(telegram_json(parse(frame)))`.
Both give the same bytes: host_tests/test_decode_cli.py compares them on
every recorded telegram and on mutated ones.
"""

import sys

try:
    from collections import OrderedDict
except ImportError:  # pragma: no cover
    OrderedDict = dict

from p1.framer import Framer
from p1.jsonout import dumps, quote
from p1.parse import _groups, _is_obis, parse
from p1.table import lookup, unit_shift
from p1.values import Num, fixed, is_stamp, parse_offset, stamp

USAGE = "usage: p1 decode [--tz +02:00] [--buffer BYTES] [--stats] [FILE ...]"
_CHUNK = 4096
_CACHE = 64  # codes (and units per code) remembered; a stream of odd codes cannot grow it

_ISASCII = hasattr(b"", "isascii")  # CPython; MicroPython's bytes has no isascii
_PRINTABLE = hasattr("", "isprintable")  # CPython: the plain-text test in C


def _ascii(b):
    return b.isascii() if _ISASCII else (not b or max(b) < 0x80)


def _q(s):
    """quote(s), with CPython's C string tests deciding the common plain case."""
    if _PRINTABLE and s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    return quote(s)


def _value(v):
    d = OrderedDict()
    d["value"] = v
    if isinstance(v, Num) and v.unit:
        d["unit"] = v.unit
    return d


def telegram_json(t):
    """The decode tool's object for one Telegram (OrderedDict)."""
    objs = OrderedDict()
    for code in t.objects:
        vals = t.objects[code]
        if len(vals) == 1:
            objs[code] = _value(vals[0])
        else:
            o = OrderedDict()
            o["values"] = [_value(v) for v in vals]
            objs[code] = o
    d = OrderedDict()
    d["ident"] = t.ident
    d["crc"] = t.crc
    d["objects"] = objs
    if t.errors:
        d["errors"] = [_error(line, why) for line, why in t.errors]
    return d


def _error(line, why):
    e = OrderedDict()
    e["line"] = line
    e["error"] = why
    return e


def telegram_line(frame, crc, std_offset):
    """The decode tool's JSON text (no newline) for one frame (bytes-like)."""
    raw = bytes(frame)
    s = line_json(raw, crc, std_offset)
    if s is None:
        s = dumps(telegram_json(parse(raw, crc, std_offset)))
    return s


# OBIS code -> [its JSON key + '{"value": ', kind (None: not in the table), table unit,
# {written unit: JSON tail}, JSON key] or False (the general parser's line)
_codes = {}
_KINDS = ("cum", "inst", "int", "str", "ts", "mbus_type", "mbus")


def _code(code):
    if len(_codes) >= _CACHE:
        _codes.clear()
    e = lookup(code)
    k = False
    if e is None and _is_obis(code) or e is not None and e[2] in _KINDS:
        key = _q(code) + ": "
        k = [key + '{"value": ', e and e[2], e and e[1], {}, key]
    _codes[code] = k
    return k


def _unit(k, u):
    tails = k[3]
    if len(tails) >= _CACHE:
        tails.clear()
    t = tails[u] = ', "unit": ' + _q(u) + "}" if u and unit_shift(k[2], u) is not None else ""
    return t


def _general_line(line, crc, std_offset):
    """(code, JSON text of its value) by the general parser for one line; None if it reports the line."""
    t = parse(b"/\r\n" + line.encode() + b"\r\n!", crc, std_offset)
    if t.errors or len(t.objects) != 1:
        return None
    for code in t.objects:
        vals = t.objects[code]
        if len(vals) == 1:
            return code, dumps(_value(vals[0]))
        return code, '{"values": ' + dumps([_value(v) for v in vals]) + "}"


def _shape(g, multi, std_offset, ts):
    """`{"value": ...}` of a group of an unknown code or an M-Bus reading (`ts`: its
    first group), by p1.parse's rules for those (`_value`); None where it reports one."""
    if not g:
        return '{"value": ""}'
    star = g.find("*")
    if star >= 0:
        f = fixed(g[:star])
        if f is None:
            return None
        u = g[star + 1 :]
        return '{"value": ' + str(Num(f[0], f[1])) + (', "unit": ' + _q(u) + "}" if u else "}")
    if ts or is_stamp(g):
        t = stamp(g, std_offset)
        if t is None:
            return None
        return '{"value": "' + t + '"}'
    if multi:
        f = fixed(g)
        if f is not None:
            if not f[1] and g.isdigit():
                return '{"value": ' + str(f[0]) + "}"
            return '{"value": ' + str(Num(f[0], f[1])) + "}"
    return '{"value": ' + _q(g) + "}"


def _object(k, line, p, q, n, std_offset):
    """JSON text `"code": {...}` of an object line (numbers with units aside: line_json
    writes those itself), or None for the general parser's line. `p`: its first "(",
    `q`: the first ")" after it, `n`: its last index."""
    kind = k[1]
    if q != n or kind is None or kind == "mbus":  # by the groups' shapes, as p1.parse does
        if kind is not None and kind != "mbus":
            return None
        groups = _groups(line, p)
        if groups is None:
            return None
        multi = len(groups) > 1
        vals = []
        for i in range(len(groups)):
            v = _shape(groups[i], multi, std_offset, kind == "mbus" and i == 0)
            if v is None:
                return None
            vals.append(v)
        if multi:
            return k[4] + '{"values": [' + ", ".join(vals) + "]}"
        return k[4] + vals[0]
    g = line[p + 1 : n]
    if kind == "int" or kind == "mbus_type":
        if g.isdigit():
            return k[0] + (g.lstrip("0") or "0") + "}"
    elif kind == "str":
        if g.find("*") < 0:
            return k[0] + _q(g) + "}"
    elif kind == "ts":
        t = stamp(g, std_offset)
        if t is not None:
            return k[0] + '"' + t + '"}'
    return None


def line_json(raw, crc, std_offset):
    """The decode tool's JSON text for a frame (bytes) without errors, or None: the
    general path decides (see the module's Strategy)."""
    if not _ascii(raw):
        return None
    s = raw.decode()
    ident = None
    parts = []
    seen = set()
    for line in s.split("\r\n") if "\r\n" in s else s.split("\n"):
        if not line:
            continue
        c = line[0]
        if c == "/":
            if ident is not None:
                return None
            ident = line[1:]
            continue
        if c == "!":
            break
        if c == "(":
            return None
        p = line.find("(")
        if p <= 0:
            return None
        code = line[:p]
        out = None
        n = len(line) - 1
        q = line.find(")", p)
        if line[n] == ")" and line.find("(", p + 1) < 0 if q == n else line.find("(", p + 1) == q + 1:
            k = _codes.get(code)
            if k is None:
                k = _code(code)
            if not k:
                pass
            elif q == n and (k[1] == "cum" or k[1] == "inst"):  # most lines: digits*unit
                star = line.find("*", p)
                if star > p + 1:
                    u = line[star + 1 : n]
                    tail = k[3].get(u)
                    if tail is None:
                        tail = _unit(k, u)
                    if tail:
                        dot = line.find(".", p, star)
                        if dot < 0:
                            a = line[p + 1 : star]
                            if a.isdigit():
                                out = k[0] + (a.lstrip("0") or "0") + tail
                        else:
                            a = line[p + 1 : dot]
                            b = line[dot + 1 : star]
                            if a.isdigit() and b.isdigit():
                                out = k[0] + (a.lstrip("0") or "0") + "." + b + tail
            else:
                out = _object(k, line, p, q, n, std_offset)
        if out is None:
            got = _general_line(line, crc, std_offset)
            if got is None:
                return None
            code = got[0]
            out = _q(code) + ": " + got[1]
        if code in seen:
            return None
        seen.add(code)
        parts.append(out)
    return (
        '{"ident": '
        + ("null" if ident is None else _q(ident))
        + ', "crc": '
        + _q(crc)
        + ', "objects": {'
        + ", ".join(parts)
        + "}}"
    )


def _decode_stream(read, fr, std_offset, write):
    while True:
        chunk = read(_CHUNK)
        if not chunk:
            break
        fr.feed(chunk)
        while True:
            frame = fr.next_frame()
            if frame is None:
                break
            write(telegram_line(frame, fr.crc, std_offset) + "\n")
    frame = fr.end()
    if frame is not None:
        write(telegram_line(frame, fr.crc, std_offset) + "\n")


def main(argv):
    """Run the command line; return the exit code."""
    if not argv or argv[0] != "decode":
        sys.stderr.write(USAGE + "\n")
        return 2
    args = argv[1:]
    files = []
    std_offset = 120
    size = 3072
    stats = False
    i = 0
    try:
        while i < len(args):
            a = args[i]
            if a == "--tz":
                i += 1
                std_offset = parse_offset(args[i])
            elif a == "--buffer":
                i += 1
                size = int(args[i])
            elif a == "--stats":
                stats = True
            elif a in ("-h", "--help"):
                sys.stdout.write(USAGE + "\n")
                return 0
            elif a[:2] == "--":
                raise ValueError("unknown option " + a)
            else:
                files.append(a)
            i += 1
    except (IndexError, ValueError) as e:
        sys.stderr.write("p1 decode: %s\n%s\n" % (e.args[0] if e.args else "missing value", USAGE))
        return 2
    fr = Framer(size)
    write = sys.stdout.write
    rc = 0
    if not files:
        stdin = getattr(sys.stdin, "buffer", sys.stdin)
        _decode_stream(stdin.read, fr, std_offset, write)
    for path in files:
        try:
            f = open(path, "rb")
        except OSError as e:
            sys.stderr.write("p1 decode: cannot open %s: %s\n" % (path, e))
            rc = 1
            continue
        try:
            _decode_stream(f.read, fr, std_offset, write)
        finally:
            f.close()
    if stats:
        sys.stderr.write(dumps(fr.counters) + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

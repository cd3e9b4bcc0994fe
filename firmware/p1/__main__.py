"""`python -m p1 decode [--tz +02:00] [--buffer N] [FILE ...]`: telegrams -> JSON Lines.

Runs unchanged on CPython and MicroPython; the output is byte-identical.
Each file is its own byte stream (stdin when no file is named).
"""

import sys

try:
    from collections import OrderedDict
except ImportError:  # pragma: no cover
    OrderedDict = dict

from p1.framer import Framer
from p1.jsonout import dumps
from p1.parse import parse
from p1.values import Num, parse_offset

USAGE = "usage: p1 decode [--tz +02:00] [--buffer BYTES] [--stats] [FILE ...]"
_CHUNK = 4096


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
            write(dumps(telegram_json(parse(frame, fr.crc, std_offset))) + "\n")
    frame = fr.end()
    if frame is not None:
        write(dumps(telegram_json(parse(frame, fr.crc, std_offset))) + "\n")


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

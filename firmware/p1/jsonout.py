"""JSON text for readings, exact and identical on CPython and MicroPython.

`Num` is written with exactly its digits; floats are refused (they cannot
hold a meter value exactly on the device). An OrderedDict is written in its
order; a plain dict with its keys sorted, since MicroPython's dict has no
insertion order: the output is the same on both interpreters. Non-ASCII is
escaped as on CPython's json.dumps.
"""

_ESC = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def _plain(s):
    for ch in s:
        if ch < " " or ch > "\x7f" or ch == '"' or ch == "\\":
            return False
    return True


def quote(s):
    """A JSON string literal for `s`."""
    if _plain(s):
        return '"' + s + '"'
    out = ['"']
    for ch in s:
        e = _ESC.get(ch)
        if e is not None:
            out.append(e)
        elif ch < " " or ch > "\x7f":
            o = ord(ch)
            if o > 0xFFFF:  # UTF-16 surrogate pair, as JSON wants
                o -= 0x10000
                out.append("\\u%04x\\u%04x" % (0xD800 | (o >> 10), 0xDC00 | (o & 0x3FF)))
            else:
                out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dumps(obj):
    """Serialise dict/list/tuple/str/int/bool/None/Num to compact JSON text."""
    return "".join(pieces(obj))


def pieces(o):
    """The JSON text of `o` in short pieces (a generator): a page written piece
    by piece (status) never holds a section's whole text, nor a list of its parts
    (one slot per piece: ~2 KB in one block for a large section, 64-bit)."""
    if isinstance(o, dict):
        sep = "{"
        for k in sorted(o) if type(o) is dict else o:
            yield sep + quote(k) + ": "
            sep = ", "
            yield from pieces(o[k])
        yield "{}" if sep == "{" else "}"
    elif isinstance(o, (list, tuple)):
        sep = "["
        for v in o:
            yield sep
            sep = ", "
            yield from pieces(v)
        yield "[]" if sep == "[" else "]"
    elif o is None:
        yield "null"
    elif o is True:
        yield "true"
    elif o is False:
        yield "false"
    elif isinstance(o, str):
        yield quote(o)
    elif hasattr(o, "decimals") or isinstance(o, int):  # p1.values.Num (not imported here)
        yield str(o)
    else:
        raise TypeError("not JSON-exact: %r" % (o,))

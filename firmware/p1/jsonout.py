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
    parts = []
    _write(obj, parts.append)
    return "".join(parts)


def _str(s, w):
    if _plain(s):  # the common case: no copy of the text
        w('"')
        w(s)
        w('"')
    else:
        w(quote(s))


def _write(o, w):
    if o is None:
        w("null")
    elif o is True:
        w("true")
    elif o is False:
        w("false")
    elif isinstance(o, str):
        _str(o, w)
    elif hasattr(o, "decimals"):  # p1.values.Num (not imported: status pages and discovery need no Num)
        w(str(o))
    elif isinstance(o, int):
        w(str(o))
    elif isinstance(o, dict):
        w("{")
        first = True
        for k in sorted(o) if type(o) is dict else o:
            if not first:
                w(", ")
            first = False
            _str(k, w)
            w(": ")
            _write(o[k], w)
        w("}")
    elif isinstance(o, (list, tuple)):
        w("[")
        first = True
        for v in o:
            if not first:
                w(", ")
            first = False
            _write(v, w)
        w("]")
    else:
        raise TypeError("not JSON-exact: %r" % (o,))

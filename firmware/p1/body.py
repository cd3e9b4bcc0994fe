"""Frame -> the reading as JSON bytes, in one pass over the telegram (the device path).

Strategy: the device needs each telegram once, as the JSON body that HTTP,
SSE and MQTT all send. `Encoder.encode(raw)` walks the telegram's lines with
`find()` and writes `"name": value` pairs straight into one preallocated
buffer: numbers are copied digit by digit (leading zeros dropped, decimal
point moved for Wh -> kWh), never turned into Python numbers, so a telegram
costs a few small slices and the body itself instead of a dict of objects.

It takes only telegrams it can decode completely: every line well formed,
known objects with their units, M-Bus channels whose device type is known.
Anything else (a malformed line, a duplicate, a DSMR 2/3 value on its own
line, an F group, a foreign unit) makes it return None, and the caller takes
the general path, `dumps(readings(parse(frame)))`, which reports each bad
line. Both give byte-identical bodies: host_tests/test_p1_body.py proves it
on every recorded telegram and on generated ones.

The body is `{"timestamp": ..., "meter": ..., <readings in line order>}`;
`cut` is its length up to the end of the meter value, where HTTP inserts
`"age_s"`. `items(body)` walks a body's names and value texts.
"""

from p1.obis import MBUS, MBUS_ORDER, T, UNITS, find, shift, unit_line

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_LF = const(0x0A)
_SLASH = const(0x2F)
_BANG = const(0x21)
_OPEN = const(0x28)
_STAR = const(0x2A)
_QUOTE = const(0x22)
_BSLASH = const(0x5C)
_ZERO = const(0x30)
_NINE = const(0x39)
_MAX_DIGITS = const(40)

_TS = b'{"timestamp": '
_METER = b', "meter": '
_NULL = b"null"
_HEX = b"0123456789abcdef"
_ESC = b'"\\\n\r\t\b\f'  # escaped as \ and the letter at the same place in _ESC_AS
_ESC_AS = b'"\\nrtbf'


class Encoder:
    """Telegrams -> JSON bodies through one buffer of `size` bytes."""

    def __init__(self, size=3072, std_offset=120, buf=None):
        """`buf`: a bytearray to write into instead of one of its own (`size`
        ignored): the meter pipeline lends the framer's, free between frames."""
        self.buf = bytearray(size) if buf is None else buf
        self.mv = memoryview(self.buf)
        self._tmv = memoryview(T)
        self._digits = bytearray(_MAX_DIGITS)
        self._seen = bytearray(len(T) // 8 + 1)  # one bit per table position
        self._clear = bytes(len(self._seen))
        self._units = {}  # unit letter -> (UNITS line index, canonical spelling)
        self.off_w = offset_text(std_offset).encode()
        self.off_s = offset_text(std_offset + 60).encode()
        mb = {}
        for t in MBUS:
            name, unit, ts_name = MBUS[t]
            letter = UNITS[UNITS.find(b" " + unit.encode() + b"|") - 1]
            mb[t] = ((', "%s": ' % name).encode(), (', "%s": ' % ts_name).encode(), letter, 1 << MBUS_ORDER.index(t))
        self._mbus = mb

    # ---- the telegram ------------------------------------------------------------

    def encode(self, raw):
        """`(body bytes, cut)` for a telegram it decodes completely, else None.

        `raw` is the whole frame as bytes, `/` .. `!CRC` (the framer's output).
        """
        n = len(raw)
        if not n or raw[0] != _SLASH:
            return None
        sep = b"\r\n" if raw.find(b"\r\n") >= 0 else b"\n"
        sl = len(sep)
        e = raw.find(sep)
        if e < 0:
            e = n
        # The meter's JSON goes to the start of the buffer for now; the readings
        # follow a gap, where the time stamp (whichever line it is on) and the
        # meter are put at the end.
        m = self._quoted(raw, 1, e, 0)
        if m < 0:
            return None
        k = self.o = m + 64
        self._ts = None  # (start, end) of the time stamp group in raw
        self._seen[:] = self._clear
        self._codes = None  # M-Bus and unknown codes seen (duplicates)
        self._types = None  # M-Bus channel -> device type
        self._mdone = 0  # M-Bus readings written (bit per MBUS_ORDER)
        pos = e + sl
        while pos < n:
            a = pos
            e = raw.find(sep, a)
            if e < 0:
                e = n
            pos = e + sl
            if a == e:
                continue
            c = raw[a]
            if c == _BANG:
                break
            if c == _SLASH or c == _OPEN:
                return None  # a second ident line, a DSMR 2/3 value line
            if not self._line(raw, a, e, pos):
                return None
        end = self.o
        ts = self._ts
        tl = 4 if ts is None else (21 if ts[1] - ts[0] == 12 else 21 + len(self.off_w))
        cut = 14 + tl + 11 + m
        start = k - cut
        if end >= len(self.buf):
            return None
        buf = self.buf
        buf[k - m : k] = bytes(self.mv[:m])  # the meter, into place
        buf[start : start + 14] = _TS
        if ts is None:
            buf[start + 14 : start + 18] = _NULL
        else:
            self._write_stamp(raw, ts[0], ts[1], start + 14)
        buf[start + 14 + tl : start + 25 + tl] = _METER
        buf[end] = 0x7D  # }
        return bytes(self.mv[start : end + 1]), cut

    def _line(self, raw, a, e, nxt):
        """Write one `code(value)` line; False if the general path must take the telegram."""
        p = raw.find(b"(", a, e)
        if p <= a or raw.find(b"*", a, p) >= 0:
            return False  # no value group; an F group (`*255`) on the code
        code = raw[a:p]
        mbus = p - a > 4 and code.startswith(b"0-") and not code.startswith(b"0:", 2)
        if mbus and (code[3] != 0x3A or not 0x31 <= code[2] <= 0x39):
            return False  # channel 1-9 only: the table's line lengths, a type per digit
        i = find(code)
        q = raw.find(b")", p + 1, e)
        if q < 0:
            return False
        if i < 0 or mbus:  # unknown codes and M-Bus channels: duplicates by code
            codes = self._codes
            if codes is None:
                codes = self._codes = []
            if code in codes:
                return False
            codes.append(code)
            if i < 0:
                return _obis_ok(code) and self._check_groups(raw, p, e)
        else:
            seen = self._seen
            if seen[i >> 3] & (1 << (i & 7)):
                return False
            seen[i >> 3] |= 1 << (i & 7)
        tl = len(code)
        kind = T[i + tl + 1]
        if q != e - 1:  # more than one group
            if kind == 0x6D:  # m: (time stamp)(reading)
                return self._mbus_line(raw, code, p, q, e, nxt)
            return False
        s = p + 1
        if kind == 0x63 or kind == 0x69:  # c, i: numbers with a unit
            if s == q:
                return True  # empty: no reading, no error
            star = raw.find(b"*", s, q)
            if star <= s:
                return False
            sh = self._shift(T[i + tl + 2], raw, star + 1, q)
            if sh is None:
                return False
            o = self._key(i, tl)
            o = self._num(raw, s, star, sh, o)
            if o < 0:
                return False
            self.o = o
            return True
        if kind == 0x73:  # s: text as sent
            if raw.find(b"*", s, q) >= 0:
                return False
            if T[i + tl + 4] == 0x2D:  # checked, not named
                return True
            self.o = self._quoted(raw, s, q, self._key(i, tl))
            return self.o > 0
        if kind == 0x6E or kind == 0x79:  # n, y: integers
            if s == q:
                return kind == 0x6E  # an empty count is no reading; an empty type: general path
            if q - s == 13 and raw[q - 1] in b"WS":
                return False  # shaped like a time stamp: the general path reads it as one
            if kind == 0x79:
                return self._type(raw, code, s, q)
            if not _int_ok(raw, s, q):
                return False
            if T[i + tl + 4] != 0x2D:  # named
                o = self._num(raw, s, q, 0, self._key(i, tl))
                if o < 0:
                    return False
                self.o = o
            return True
        if kind == 0x74:  # t: the telegram's time stamp, first in the body (see encode)
            if s != q:
                if not _stamp_ok(raw, s, q):
                    return False
                self._ts = (s, q)
            return True
        return False  # a single-group M-Bus reading (no time stamp): general path

    # ---- M-Bus ---------------------------------------------------------------------

    def _type(self, raw, code, s, q):
        if q - s > 3 or not _int_ok(raw, s, q) or raw[s] in b"+-":
            return False
        t = int(raw[s:q])
        if t > 254:
            return False
        types = self._types
        if types is None:
            types = self._types = bytearray(10)
        types[code[2] - _ZERO] = t if t else 255
        return True

    def _mbus_line(self, raw, code, p, q, e, nxt):
        """`0-n:24.2.1(ts)(value*unit)`: gas, heat or water by the channel's device type."""
        p2 = q + 1
        if raw[p2] != _OPEN:
            return False
        q2 = raw.find(b")", p2 + 1, e)
        if q2 != e - 1:
            return False
        s0 = p + 1
        if s0 != q and not _stamp_ok(raw, s0, q):
            return False
        s = p2 + 1
        star = raw.find(b"*", s, q2)
        if star < 0:  # a dead channel sends (00000000): an integer, no reading
            return _int_ok(raw, s, q2) and raw[s] not in b"+-"
        if not _num_ok(raw, s, star):
            return False
        types = self._types
        t = types[code[2] - _ZERO] if types is not None else 0
        spec = self._mbus.get(t)
        if spec is None:
            if not t and raw.find(b":24.1.0(", nxt) >= 0:
                return False  # its device type may come later: the general path looks ahead
            for t in MBUS_ORDER:
                sp = self._mbus[t]
                if self._shift(sp[2], raw, star + 1, q2) is not None:
                    spec = sp
                    break
            if spec is None:
                return True
        if self._mdone & spec[3]:
            return True  # a second channel of the same kind: the first one counts
        sh = self._shift(spec[2], raw, star + 1, q2)
        if sh is None:
            return True
        o = self._raw(spec[0], self.o)
        o = self._num(raw, s, star, sh, o)
        o = self._raw(spec[1], o)
        if s0 == q:
            o = self._raw(_NULL, o)
        else:
            o = self._write_stamp(raw, s0, q, o)
        if o < 0:
            return False
        self.o = o
        self._mdone |= spec[3]
        return True

    # ---- writers -------------------------------------------------------------------

    def _unit(self, letter):
        u = self._units.get(letter)
        if u is None:
            i = unit_line(letter)
            u = self._units[letter] = [i, UNITS[i + 3 : UNITS.find(b"|", i)], 0]
        return u

    def _shift(self, letter, raw, s, t):
        """Decimal shift of the unit spelling raw[s:t] into unit `letter`'s; None if foreign.
        The spelling last seen is remembered: a meter writes its units the same way."""
        u = self._unit(letter)
        last = u[1]
        if t - s == len(last) and raw.startswith(last, s):
            return u[2]
        written = raw[s:t]
        sh = shift(u[0], written)
        if sh is not None:
            u[1] = written
            u[2] = sh
        return sh

    def _raw(self, b, o):
        if o < 0 or o + len(b) > len(self.buf):
            return -1
        self.buf[o : o + len(b)] = b
        return o + len(b)

    def _key(self, i, tl):
        """`, "name": ` of the table line at `i` (code length `tl`)."""
        s = i + tl + 4
        e = T.find(b"\n", s)
        o = self.o
        if o + e - s + 6 > len(self.buf):
            return -1
        buf = self.buf
        buf[o] = 0x2C  # ,
        buf[o + 1] = 0x20
        buf[o + 2] = _QUOTE
        o += 3
        buf[o : o + e - s] = self._tmv[s:e]
        o += e - s
        buf[o] = _QUOTE
        buf[o + 1] = 0x3A  # :
        buf[o + 2] = 0x20
        return o + 3

    def _num(self, raw, s, t, sh, o):
        """Write the number raw[s:t] with its decimal point moved `sh` places left,
        exactly as `str(Num)` does; -1 if it is not `[-+]digits[.digits]`."""
        if o < 0:
            return -1
        dg = self._digits
        neg = False
        if s < t and (raw[s] == 0x2D or raw[s] == 0x2B):
            neg = raw[s] == 0x2D
            s += 1
        nd = 0
        dot = -1
        for j in range(s, t):
            c = raw[j]
            if _ZERO <= c <= _NINE:
                if nd == _MAX_DIGITS:
                    return -1
                dg[nd] = c
                nd += 1
            elif c == 0x2E and dot < 0:
                dot = nd
            else:
                return -1
        if not nd or dot == nd:
            return -1
        dec = (nd - dot if dot >= 0 else 0) + sh
        zeros = 0
        if dec < 0:
            zeros = -dec
            dec = 0
        k = 0
        while k < nd and dg[k] == _ZERO:
            k += 1
        sig = nd + zeros - k if k < nd else 0  # significant digits
        buf = self.buf
        if o + sig + dec + 3 > len(buf):
            return -1
        if neg and k < nd:
            buf[o] = 0x2D
            o += 1
        if not sig and not dec:  # the value 0 without decimals
            buf[o] = _ZERO
            return o + 1
        if sig <= dec:  # 0.0ddd
            buf[o] = _ZERO
            buf[o + 1] = 0x2E
            o += 2
            for _ in range(dec - sig):
                buf[o] = _ZERO
                o += 1
            lead = -1
        else:
            lead = sig - dec
        for j in range(k, nd + zeros):
            if lead == 0:
                buf[o] = 0x2E
                o += 1
            buf[o] = dg[j] if j < nd else _ZERO
            o += 1
            lead -= 1
        return o

    def _quoted(self, raw, s, t, o):
        """Write raw[s:t] as a JSON string (bytes >= 0x80 are latin-1, as CPython escapes them)."""
        buf = self.buf
        if o < 0 or o + 6 * (t - s) + 2 > len(buf):
            return -1
        buf[o] = _QUOTE
        o += 1
        for j in range(s, t):
            c = raw[j]
            if 0x20 <= c <= 0x7F and c != _QUOTE and c != _BSLASH:
                buf[o] = c
                o += 1
                continue
            e = _ESC.find(bytes((c,)))
            if e >= 0:
                buf[o] = _BSLASH
                buf[o + 1] = _ESC_AS[e]
                o += 2
            else:
                self.buf[o : o + 4] = b"\\u00"
                buf[o + 4] = _HEX[c >> 4]
                buf[o + 5] = _HEX[c & 15]
                o += 6
        buf[o] = _QUOTE
        return o + 1

    def _write_stamp(self, raw, s, t, o):
        """Write the stamp raw[s:t] as ISO 8601 text, as `p1.values.stamp`; -1 if invalid."""
        if o < 0 or o + 32 > len(self.buf) or not _stamp_ok(raw, s, t):
            return -1
        buf = self.buf
        buf[o] = _QUOTE
        yy = _two(raw, s)
        cent = b"19" if yy >= 69 else b"20"
        buf[o + 1] = cent[0]
        buf[o + 2] = cent[1]
        o += 3
        j = s
        for sepc in b"\x00-\x00-\x00T\x00:\x00:\x00":
            if sepc:
                buf[o] = sepc
                o += 1
            else:
                buf[o] = raw[j]
                buf[o + 1] = raw[j + 1]
                o += 2
                j += 2
        if t - s == 13:
            off = self.off_s if raw[t - 1] == 0x53 else self.off_w
            self.buf[o : o + len(off)] = off
            o += len(off)
        buf[o] = _QUOTE
        return o + 1

    def _check_groups(self, raw, p, e):
        """An unknown object's groups `(..)(..)`: well formed, numbers and stamps valid."""
        while p < e:
            if raw[p] != _OPEN:
                return False
            q = raw.find(b")", p + 1, e)
            if q < 0:
                return False
            s = p + 1
            star = raw.find(b"*", s, q)
            if star >= 0:
                if not _num_ok(raw, s, star):
                    return False
            elif q - s == 13 and raw[q - 1] in b"WS" and _digits_ok(raw, s, s + 12):
                if not _stamp_ok(raw, s, q):
                    return False
            p = q + 1
        return True


def offset_text(minutes):
    """UTC offset in minutes -> '+02:00' (as p1.values writes it)."""
    m = -minutes if minutes < 0 else minutes
    return "%s%02d:%02d" % ("-" if minutes < 0 else "+", m // 60, m % 60)


def cut_of(body):
    """Where the meter value ends in a body (the `cut` of `Encoder.encode`)."""
    i = body.find(b'"meter": ') + 9
    if body[i] != _QUOTE:  # null
        j = body.find(b",", i)
        return j if j > 0 else len(body) - 1
    i += 1
    while body[i] != _QUOTE:
        i += 2 if body[i] == _BSLASH else 1
    return i + 1


def text_value(v):
    """A value text of `items()` -> str for a JSON string (unescaped), None for null,
    else the number text itself (exact digits)."""
    if v == "null":
        return None
    if v[:1] != '"':
        return v
    if "\\" not in v:
        return v[1:-1]
    import json

    return json.loads(v)  # a string literal: exact


def _stamp_ok(raw, s, t):
    """raw[s:t] is `YYMMDDhhmmss[WS]` with a valid month, day, hour, minute, second."""
    n = t - s
    if not (n == 12 or (n == 13 and raw[t - 1] in b"WS")) or not _digits_ok(raw, s, s + 12):
        return False
    return 1 <= _two(raw, s + 2) <= 12 and 1 <= _two(raw, s + 4) <= 31 and _two(raw, s + 6) <= 23 and (
        _two(raw, s + 8) <= 59 and _two(raw, s + 10) <= 59
    )


def _two(raw, j):
    return (raw[j] - _ZERO) * 10 + raw[j + 1] - _ZERO


def _digits_ok(raw, s, t):
    for j in range(s, t):
        c = raw[j]
        if not _ZERO <= c <= _NINE:
            return False
    return True


def _int_ok(raw, s, t):
    """`[-+]digits`, as `fixed()` takes an integer."""
    if s < t and raw[s] in b"+-":
        s += 1
    return s < t and _digits_ok(raw, s, t)


def _num_ok(raw, s, t):
    """`[-+]digits[.digits]`, as `fixed()` takes it."""
    if s < t and raw[s] in b"+-":
        s += 1
    d = raw.find(b".", s, t)
    if d < 0:
        return s < t and _digits_ok(raw, s, t)
    return d + 1 < t and _digits_ok(raw, s, d) and _digits_ok(raw, d + 1, t)


def _obis_ok(code):
    """A-B:C.D.E with decimal groups (bytes)."""
    d = code.find(b"-")
    c = code.find(b":")
    if d <= 0 or c <= d + 1:
        return False
    parts = 0
    s = c + 1
    while True:
        j = code.find(b".", s)
        end = len(code) if j < 0 else j
        if end == s or not _digits_ok(code, s, end):
            return False
        parts += 1
        if j < 0:
            break
        s = j + 1
    return parts == 3 and _digits_ok(code, 0, d) and _digits_ok(code, d + 1, c)


def items(body):
    """Yield `(name, value text)` of every reading in a body (value text as in the JSON:
    `896.020`, `"LGF5E360"`, `null`). Bodies are ours: `", "` and `": "` separate."""
    n = len(body)
    i = 1
    while i < n - 1:
        if body[i] != _QUOTE:
            i += 1
            continue
        k = body.find(b'"', i + 1)
        name = bytes(body[i + 1 : k]).decode()
        v = k + 3
        if body[v] == _QUOTE:
            j = v + 1
            while True:
                c = body[j]
                if c == _BSLASH:
                    j += 2
                elif c == _QUOTE:
                    break
                else:
                    j += 1
            e = j + 1
        else:
            e = body.find(b",", v)
            if e < 0:
                e = n - 1
        yield name, bytes(body[v:e]).decode()
        i = e + 2

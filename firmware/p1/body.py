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

Lines of M-Bus channels and of objects the table does not know go to
`p1.bodyrare`, imported at the first such line: Dutch and Belgian meters send
them in every telegram (a gas meter, the power failure log), Swedish and
Finnish ones never, and then that code costs no RAM. Reading a body back (`items`,
`cut_of`, `text_value`) is `p1.bodyread`'s.

The body is `{"timestamp": ..., "meter": ..., <readings in line order>}`;
`cut` is its length up to the end of the meter value, where HTTP inserts
`"age_s"`.
"""

from p1.obis import T, find, shift, unit_line

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_SLASH = const(0x2F)
_BANG = const(0x21)
_OPEN = const(0x28)
_QUOTE = const(0x22)
_BSLASH = const(0x5C)
_ZERO = const(0x30)
_NINE = const(0x39)
_DOT = const(0x2E)


class Encoder:
    """Telegrams -> JSON bodies through one buffer of `size` bytes."""

    def __init__(self, size=3072, std_offset=120, buf=None):
        """`buf`: a bytearray to write into instead of one of its own (`size`
        ignored): the meter pipeline lends the framer's, free between frames."""
        self.buf = bytearray(size) if buf is None else buf
        # A bit per table line (`find()` index >> 4: the lines are 16 bytes or longer).
        self._seen = bytearray(len(T) // 128 + 1)
        self._units = {}  # unit letter -> (the spelling last seen, its decimal shift)
        self._mb = None  # p1.bodyrare's state for this telegram
        self._off = []  # the UTC offset text of W (standard time) and S stamps: b"+01:00"
        for m in (std_offset, std_offset + 60):
            a = -m if m < 0 else m
            self._off.append(("%s%02d:%02d" % ("-" if m < 0 else "+", a // 60, a % 60)).encode())

    def encode(self, raw):
        """`(body bytes, cut)` for a telegram it decodes completely, else None.

        `raw` is the whole frame as bytes, `/` .. `!CRC` (the framer's output).
        """
        n = len(raw)
        if not n or raw[0] != _SLASH:
            return None
        sep = b"\r\n" if raw.find(b"\r\n") >= 0 else b"\n"
        e = raw.find(sep)
        if e < 0:
            e = n
        buf = self.buf
        size = len(buf)
        # The meter's JSON goes to the start of the buffer for now; the readings
        # follow a gap, where the time stamp (whichever line it is on) and the
        # meter are put at the end.
        m = self._quoted(raw, 1, e, 0)
        if m < 0:
            return None
        o = k = m + 64
        ts = -1  # raw[ts:tq]: the time stamp's group
        tq = 0
        seen = self._seen
        seen[:] = bytes(len(seen))
        units = self._units
        self._mb = None
        rare = None  # p1.bodyrare.line, once a line needs it
        tmv = memoryview(T)
        pos = e + len(sep)
        while pos < n:
            a = pos
            e = raw.find(sep, a)
            if e < 0:
                e = n
            pos = e + len(sep)
            if a == e:
                continue
            c = raw[a]
            if c == _BANG:
                break
            p = raw.find(b"(", a, e)
            if c == _SLASH or c == _OPEN or p <= a or raw.find(b"*", a, p) >= 0:
                return None  # a second ident line, a DSMR 2/3 value line, no value group, an F group
            q = raw.find(b")", p + 1, e)
            if q < 0:
                return None
            code = raw[a:p]
            i = find(code)
            if i < 0 or T[i + 2] == 0x6E:  # unknown, or an M-Bus channel (`0-n:` in the table)
                if rare is None:
                    from p1.bodyrare import line as rare
                o = rare(self, raw, code, i, p, q, e, pos, o)
                if o < 0:
                    return None
                continue
            b = 1 << ((i >> 4) & 7)
            if seen[i >> 7] & b:
                return None  # a duplicate
            seen[i >> 7] |= b
            i += p - a  # the table line goes on with ` <kind><unit> <name>`
            kind = T[i + 1]
            s = p + 1
            if q != e - 1:
                return None  # more than one group
            if kind == 0x74:  # t: the telegram's time stamp, written first (below)
                if s != q:
                    ts = s
                    tq = q
                continue
            # `, "name": `, then the value; the body grows by both only for a value.
            v = T.find(b"\n", i + 4)
            w = o + v - i + 2
            if w > size:
                return None
            buf[o : o + 3] = b', "'
            buf[o + 3 : w - 3] = tmv[i + 4 : v]
            buf[w - 3 : w] = b'": '
            if kind == 0x73:  # s: text as sent
                if raw.find(b"*", s, q) >= 0:
                    return None
                w = self._quoted(raw, s, q, w)
            elif kind != 0x6E and kind != 0x63 and kind != 0x69:
                return None  # no other kind outside M-Bus lines
            elif s == q:
                continue  # an empty number or count: no reading, no error
            elif kind == 0x6E:  # n: an integer
                if q - s == 13 and raw[q - 1] in b"WS" or raw.find(b".", s, q) >= 0:
                    return None  # shaped like a time stamp (the general path reads it as one)
                w = self._num(raw, s, q, 0, w)
            else:  # c, i: a number with a unit
                star = raw.find(b"*", s, q)
                if star <= s:
                    return None
                # The unit's decimal shift; the spelling last seen is remembered for
                # each unit: a meter writes its units the same way every time.
                u = units.get(T[i + 2])
                if u is not None and q - star - 1 == len(u[0]) and raw.startswith(u[0], star + 1):
                    sh = u[1]
                else:
                    u = raw[star + 1 : q]
                    sh = shift(unit_line(T[i + 2]), u)
                    if sh is None:
                        return None  # a foreign unit
                    units[T[i + 2]] = (u, sh)
                w = self._num(raw, s, star, sh, w)
            if w < 0:
                return None
            o = w
        if o >= size:
            return None
        tl = 4 if ts < 0 else 21 if tq - ts == 12 else 21 + len(self._off[raw[tq - 1] == 0x53])
        cut = 25 + tl + m
        start = k - cut
        buf[k - m : k] = buf[:m]  # the meter, into place
        buf[start : start + 14] = b'{"timestamp": '
        if ts < 0:
            buf[start + 14 : start + 18] = b"null"
        elif self._stamp(raw, ts, tq, start + 14) < 0:
            return None
        buf[k - m - 11 : k - m] = b', "meter": '
        buf[o] = 0x7D  # }
        self._mb = None  # the M-Bus state: its codes and types, freed between telegrams
        return bytes(memoryview(buf)[start : o + 1]), cut

    def _num(self, raw, s, t, sh, o):
        """Write the number raw[s:t] (`[-+]digits[.digits]`) at `o` with its decimal point
        moved `sh` places left, exactly as `str(Num)` does; the end, or -1 if malformed
        or out of room."""
        neg = s < t and raw[s] == 0x2D
        if s < t and (neg or raw[s] == 0x2B):
            s += 1
        nd = 0  # digits
        dot = -1  # digits before the point
        zeros = 0  # leading zeros
        for j in range(s, t):
            c = raw[j]
            if _ZERO <= c <= _NINE:
                if c == _ZERO and zeros == nd:
                    zeros += 1
                nd += 1
            elif c == _DOT and dot < 0:
                dot = nd
            else:
                return -1
        if not nd or dot == nd:
            return -1
        dec = (nd - dot if dot >= 0 else 0) + sh  # decimals of the result
        total = nd  # its digits, leading zeros included: raw's, then zeros for dec < 0
        if dec < 0:
            total -= dec
            dec = 0
        if zeros == nd:  # the value 0: the zeros a shift adds lead too
            zeros = total
        point = total - dec  # the point goes before digit `point` (when dec)
        first = point - 1 if zeros >= point else zeros  # the first digit written
        buf = self.buf
        if o + total - first + 2 > len(buf):
            return -1
        if neg and zeros < nd:
            buf[o] = 0x2D
            o += 1
        j = s + first if first > 0 else s  # raw's digit `first`: after the point if that was skipped
        if 0 <= dot < first:
            j += 1
        for d in range(first, total):
            if d == point:
                buf[o] = _DOT
                o += 1
            c = _ZERO  # before raw's digits (0.00ddd) and after them (MWh -> kWh)
            if 0 <= d < nd:
                c = raw[j]
                if c == _DOT:
                    j += 1
                    c = raw[j]
                j += 1
            buf[o] = c
            o += 1
        return o

    def _quoted(self, raw, s, t, o):
        """Write raw[s:t] at `o` as a JSON string, as CPython's json writes the latin-1
        text (`\\u00e9` for bytes >= 0x80); the end, or -1 if it might not fit."""
        buf = self.buf
        if o + 6 * (t - s) + 2 > len(buf):
            return -1
        buf[o] = _QUOTE
        o += 1
        for j in range(s, t):
            c = raw[j]
            if 0x20 <= c <= 0x7F and c != _QUOTE and c != _BSLASH:
                buf[o] = c
                o += 1
                continue
            esc = b'""\\\\\nn\rr\tt\bb\ff'  # pairs: a byte, the letter after its backslash
            x = esc.find(bytes((c,)))
            if x < 0:
                buf[o : o + 6] = b"\\u%04x" % c
                o += 6
            else:
                buf[o] = _BSLASH
                buf[o + 1] = esc[x + 1]
                o += 2
        buf[o] = _QUOTE
        return o + 1

    def _stamp(self, raw, s, t, o):
        """Write the time stamp raw[s:t] (`YYMMDDhhmmss`, then W, S or nothing) at `o` as
        ISO 8601 text, as `p1.values.stamp` does; the end, or -1 if it is not a valid
        stamp or out of room."""
        if t - s == 12:
            off = b""
        elif t - s == 13 and raw[t - 1] in b"WS":
            off = self._off[raw[t - 1] == 0x53]
        else:
            return -1
        buf = self.buf
        if o + 21 + len(off) > len(buf):
            return -1
        buf[o] = _QUOTE
        o += 3  # the century comes with the year
        top = b"99-12-31T23:59:59"  # each field's largest value, the separator before it
        for f in range(0, 18, 3):  # YY MM DD hh mm ss
            hi = raw[s]
            lo = raw[s + 1]
            s += 2
            v = (hi - _ZERO) * 10 + lo - _ZERO
            if not (_ZERO <= hi <= _NINE and _ZERO <= lo <= _NINE) or v > (top[f] - _ZERO) * 10 + top[f + 1] - _ZERO:
                return -1
            if f:
                if not v and f < 9:
                    return -1  # month and day count from 1
                buf[o] = top[f - 1]
                o += 1
            else:  # as POSIX: 69-99 are 19xx
                buf[o - 2] = 0x31 if v >= 69 else 0x32
                buf[o - 1] = 0x39 if v >= 69 else 0x30
            buf[o] = hi
            buf[o + 1] = lo
            o += 2
        buf[o : o + len(off)] = off
        o += len(off)
        buf[o] = _QUOTE
        return o + 1


"""The one-pass encoder's rarer lines (`p1.body`): M-Bus channels (gas, heat and
water meters) and objects the OBIS table does not know.

`Encoder.encode` imports this module at the first such line, and it stays:
Dutch, Belgian, Luxembourgish, Austrian and Irish meters send such lines in
every telegram (a gas meter, the power failure log, objects the table does not
name), the Swedish and Finnish ones never, and for them this code costs no RAM.

The contract is the encoder's: write what the general decoder writes, or
decline (-1) wherever it would report an error or decide otherwise. Numbers
and time stamps are checked by writing them at the body's end without keeping
them (`Encoder._num`, `Encoder._stamp`).
"""

from p1.obis import MBUS, MBUS_ORDER, T, UNITS, shift

# M-Bus device type -> [`, "gas_m3": `, `, "gas_timestamp": `, its unit's UNITS line,
# its bit in the mask of readings written, the unit spelling last seen, its shift]:
# made when a type is first met.
_SPECS = {}


def line(enc, raw, code, i, p, q, e, nxt, o):
    """The line `code(..)..` of an unknown object (`i` < 0) or of an M-Bus channel
    (`i`: its table line): its groups are raw[p:e], the first ends at `q`, the next
    line starts at `nxt`. Checks it, writes a gas, heat or water reading at `o`;
    returns the body's new end, or -1 to decline the telegram."""
    mb = enc._mb  # codes seen, device type per channel, readings written (bit per MBUS_ORDER)
    if mb is None:
        mb = enc._mb = [[], bytearray(10), 0]
    if code in mb[0]:
        return -1  # a duplicate
    mb[0].append(code)
    if i < 0:  # unknown: an OBIS code A-B:C.D.E of decimal groups, its groups
        # `(..)(..)` well formed, numbers and time stamps valid
        k = 0  # separators seen, in the order of `-:..`
        run = 0  # digits since the last one
        for j in range(len(code)):
            c = code[j]
            if 0x30 <= c <= 0x39:
                run += 1
            elif k < 4 and run and c == b"-:.."[k]:
                k += 1
                run = 0
            else:
                return -1
        if k < 4 or not run:
            return -1
        while p < e:
            if raw[p] != 0x28:
                return -1
            q = raw.find(b")", p + 1, e)
            if q < 0:
                return -1
            s = p + 1
            star = raw.find(b"*", s, q)
            if star >= 0:
                if enc._num(raw, s, star, 0, o) < 0:
                    return -1
            elif q - s == 13 and raw[q - 1] in b"WS" and enc._stamp(raw, s, q, o) < 0 and raw[s : q - 1].isdigit():
                return -1  # a bad time stamp (13 characters ending W or S, not digits: text)
            p = q + 1
        return o
    if code[3] != 0x3A or not 0x31 <= code[2] <= 0x39:
        return -1  # channel 1-9 only: the table's line lengths, a type per digit
    kind = T[i + len(code) + 1]
    s = p + 1
    if q != e - 1:  # more than one group
        return _reading(enc, mb, raw, code, s, q, e, nxt, o) if kind == 0x6D else -1
    if kind == 0x73:  # s: text, checked, not named
        return -1 if raw.find(b"*", s, q) >= 0 else o
    if kind == 0x6E and s == q:
        return o  # an empty count: no reading, no error
    if kind != 0x6E and kind != 0x79 or q - s == 13 and raw[q - 1] in b"WS":
        return -1  # a reading without its time stamp, a value shaped like a stamp
    if raw.find(b".", s, q) >= 0 or enc._num(raw, s, q, 0, o) < 0:
        return -1  # not an integer
    if kind == 0x79:  # y: the channel's device type
        if q - s > 3 or raw[s] in b"+-":
            return -1
        t = int(raw[s:q])
        if t > 254:
            return -1
        mb[1][code[2] - 0x30] = t if t else 255
    return o


def _reading(enc, mb, raw, code, s0, q, e, nxt, o):
    """`0-n:24.2.1(ts)(value*unit)`: gas, heat or water by the channel's device type."""
    s = q + 2
    q2 = raw.find(b")", s, e)
    if raw[s - 1] != 0x28 or q2 != e - 1 or s0 != q and enc._stamp(raw, s0, q, o) < 0:
        return -1
    star = raw.find(b"*", s, q2)
    if star < 0:  # a dead channel sends (00000000): an integer, no reading
        return o if raw[s] not in b"+-" and raw.find(b".", s, q2) < 0 and enc._num(raw, s, q2, 0, o) >= 0 else -1
    if enc._num(raw, s, star, 0, o) < 0:
        return -1
    t = mb[1][code[2] - 0x30]
    if t not in MBUS:  # no type line (or a type we do not name): the first kind whose unit fits
        if not t and raw.find(b":24.1.0(", nxt) >= 0:
            return -1  # its device type may come later: the general path looks ahead
        unit = raw[star + 1 : q2]
        for t in MBUS_ORDER:
            if shift(UNITS.find(b" " + MBUS[t][1].encode() + b"|") - 2, unit) is not None:
                break
        else:
            return o  # a foreign unit: no reading
    spec = _SPECS.get(t)
    if spec is None:
        name, unit, ts = MBUS[t]
        spec = _SPECS[t] = [
            (', "%s": ' % name).encode(),
            (', "%s": ' % ts).encode(),
            UNITS.find(b" " + unit.encode() + b"|") - 2,
            1 << MBUS_ORDER.index(t),
            b"",
            None,
        ]
    if mb[2] & spec[3]:
        return o  # a second channel of the same kind: the first one counts
    if q2 - star - 1 != len(spec[4]) or not raw.startswith(spec[4], star + 1):
        spec[4] = raw[star + 1 : q2]  # a meter writes its units the same way every time
        spec[5] = shift(spec[2], spec[4])
    sh = spec[5]
    if sh is None:
        return o  # a foreign unit: no reading
    buf = enc.buf
    name = spec[0]
    if o + len(name) > len(buf):
        return -1
    buf[o : o + len(name)] = name
    o = enc._num(raw, s, star, sh, o + len(name))
    name = spec[1]
    if o < 0 or o + len(name) + 4 > len(buf):
        return -1
    buf[o : o + len(name)] = name
    o += len(name)
    if s0 == q:
        buf[o : o + 4] = b"null"
        o += 4
    else:
        o = enc._stamp(raw, s0, q, o)
    if o >= 0:
        mb[2] |= spec[3]
    return o

"""The history's core, shared by `history` (writing the snapshots), `tariff` (the
power-tariff monitor) and `loadscold` (the relays' tariff period): the record
format, the time arithmetic and reading a ring's file. A module of its own so
that the history job's two steps (history.job, then tariff.job: histjob.py)
never have both `history` and `tariff` in RAM at once, only this part of it,
and the relays' period needs neither (with `tariffrule`).
"""

from struct import unpack_from

from fsutil import read_into

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


REC = const(44)
PER = const(32)  # records per file
FMT = "<IhHHHqqqq"
LATE_S = const(60)  # a snapshot later than this after its boundary is not one: a gap
EMPTY = 0xFFFFFFFF
# name, slots (7 days of 15 min, 62 days of hours, 2 years of days, 10 years of months,
# rounded up to whole files)
RINGS = (("15min", 672), ("hour", 1504), ("day", 736), ("month", 128))
_REGS = (
    b'"energy_import_kwh": ', b'"energy_export_kwh": ',
    b'"reactive_energy_import_kvarh": ', b'"reactive_energy_export_kvarh": ',
)  # fmt: skip
_T1T2 = (
    (b'"energy_import_t1_kwh": ', b'"energy_import_t2_kwh": '),
    (b'"energy_export_t1_kwh": ', b'"energy_export_t2_kwh": '),
)


def days(y, m, d):
    """Days from 2000-01-01 to the date (proleptic Gregorian)."""
    if m < 3:
        y -= 1
        m += 12
    return 365 * y + y // 4 - y // 100 + y // 400 + (153 * (m - 3) + 2) // 5 + d - 730426


def civil(n):
    """(y, m, d) of day `n` from 2000-01-01."""
    n += 730425  # days from 0000-03-01
    era = n // 146097
    doe = n - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return era * 400 + yoe + (1 if m < 3 else 0), m, d


def _num(b, i, j):
    v = 0
    for k in range(i, j):
        c = b[k] - 48
        if not 0 <= c <= 9:
            raise ValueError
        v = v * 10 + c
    return v


def stamp(body):
    """The body's time stamp `YYYY-MM-DDTHH:MM:SS+HH:MM` -> (UTC minutes from 2000,
    seconds, offset minutes, local day from 2000, local minute of the day, year,
    month, day), or None."""
    if len(body) < 41 or body[:15] != b'{"timestamp": "' or body[40] != 0x22:
        return None
    try:
        y, mo, d = _num(body, 15, 19), _num(body, 20, 22), _num(body, 23, 25)
        hm = _num(body, 26, 28) * 60 + _num(body, 29, 31)
        off = _num(body, 35, 37) * 60 + _num(body, 38, 40)
        sec = _num(body, 32, 34)
    except ValueError:
        return None
    if body[34] == 0x2D:  # "-"
        off = -off
    if not (1 <= mo <= 12 and 1 <= d <= 31 and hm < 1440 and y >= 2000):
        return None
    ld = days(y, mo, d)
    return ld * 1440 + hm - off, sec, off, ld, hm, y, mo, d


def wh(body, name):
    """The value of `name` (kWh or kvarh, exact digits) in Wh or varh; -1 if absent."""
    i = body.find(name)
    if i < 0:
        return -1
    i += len(name)
    v = 0
    dec = -1
    n = len(body)
    while i < n:
        c = body[i]
        if c == 0x2E:
            dec = 0
        elif 48 <= c <= 57:
            if dec < 3:  # (a fourth decimal would be a fraction of a Wh)
                v = v * 10 + c - 48
                if dec >= 0:
                    dec += 1
        else:
            break
        i += 1
    if i == n or (c != 0x2C and c != 0x7D):  # null, a string: not a number
        return -1
    return v * (1000, 1000, 100, 10, 1)[dec + 1]  # (no decimals: whole kWh)


def registers(body):
    """[import Wh, export Wh, reactive import varh, reactive export varh]; -1 for one the
    meter does not send (import/export: the sum of tariffs 1 and 2 when there is no total)."""
    out = [wh(body, n) for n in _REGS]
    for i in (0, 1):
        if out[i] < 0:
            a, b = wh(body, _T1T2[i][0]), wh(body, _T1T2[i][1])
            if a >= 0 and b >= 0:
                out[i] = a + b
    return out


def period(r, t):
    """(key, boundary in UTC minutes) of ring `r`'s period holding stamp `t`."""
    um, _, off, ld, hm, y, mo, d = t
    if r == 0:
        k = um // 15
        return k, k * 15
    if r == 1:
        s = off % 60  # (offsets of :30 and :45: local hours)
        k = (um + s) // 60
        return k, k * 60 - s
    if r == 2:
        return ld, um - hm
    return (y - 2000) * 12 + mo - 1, um - hm - (d - 1) * 1440


def path(folder, r, key):
    return "%s/%s-%d.bin" % (folder, RINGS[r][0], (key % RINGS[r][1]) // PER)


def load(folder, r, key):
    """The file holding ring `r`'s slot for `key`: a bytearray (empty slots if none),
    read into its one block of the heap."""
    buf = bytearray(PER * REC)
    if not read_into(path(folder, r, key), buf):
        for i in range(PER * REC):  # (no file yet: empty slots, without a second 1.4 KB block)
            buf[i] = 0xFF
    return buf


def get(buf, r, key):
    """The record of `key` in its file `buf`, or None: (key, offset, late s, flags, 0, imp,
    exp, reactive imp, reactive exp)."""
    o = (key % RINGS[r][1]) % PER * REC
    rec = unpack_from(FMT, buf, o)
    return rec if rec[0] == key else None


def _two(n):
    return ("0" if n < 10 else "") + str(n)


def label(r, key, off):
    """The local start of period `key` of ring `r` (offset `off` minutes)."""
    if r >= 2:
        if r == 3:
            return "%d-%s" % (2000 + key // 12, _two(key % 12 + 1))
        y, m, d = civil(key)
        return "%d-%s-%s" % (y, _two(m), _two(d))
    um = key * 15 if r == 0 else key * 60 - off % 60
    lm = um + off
    y, m, d = civil(lm // 1440)
    a = -off if off < 0 else off
    return "%d-%s-%sT%s:%s%s%s:%s" % (
        y, _two(m), _two(d), _two(lm % 1440 // 60), _two(lm % 60), "-" if off < 0 else "+", _two(a // 60), _two(a % 60),
    )  # fmt: skip

"""Energy history: the meter's cumulative registers at each period boundary, on flash.

Strategy: energy is never integrated from power. At the first telegram of each
15-minute period (the meter's own time stamp, local time with its W/S offset)
the registers 1.8.0, 2.8.0, 3.8.0 and 4.8.0 (Wh, varh; fixed-point integers)
are written as a *snapshot* into up to four rings: 15 min, hour, day (local
midnight), month. A period's energy is the difference of its two boundary
snapshots (histread.py), so the 15-minute periods of a day add up to the day
exactly, on 23- and 25-hour days too (a day is midnight to midnight).

A period is a gap (no energy, never 0) when a boundary snapshot is missing
or was taken more than LATE_S after the boundary (no telegrams then: the
dongle was off, the meter silent). A register lower than the last snapshot
(meter exchanged, reset) is flagged on the new snapshot and logged: the
period ending there is reported as a reset, never as negative energy.

Files: `<storage>/hist/<ring>-<n>.bin`, each PER records of REC bytes, slot =
period key % ring size; written whole with fsutil.write_atomic (power-safe,
docs/STORAGE.md). A record (struct FMT): period key, UTC offset (minutes) of
the snapshot's telegram, seconds late, flags (bit 0: a register went
backwards), 0, then the four registers (-1: not sent by this meter).

Cold: app.py calls close() (in the cold slot) when the telegram's quarter hour
differs from the last one's, and at the first telegram after a boot; it is
unloaded again after.
"""

from os import mkdir
from struct import pack, unpack_from

import log
from fsutil import read, write_atomic

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
    """The file holding ring `r`'s slot for `key`: a bytearray (empty slots if none)."""
    data = read(path(folder, r, key), PER * REC)[0]
    if data is None or len(data) != PER * REC:
        return bytearray(b"\xff" * (PER * REC))
    return bytearray(data)


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


def energy(a, b):
    """([4 values or None], status) of the period between snapshots `a` and `b` (records
    or None): "ok", "gap" (one missing or late) or "reset" (a register went backwards)."""
    vals = [None, None, None, None]
    st = "gap"
    if a is not None and b is not None and a[2] <= LATE_S and b[2] <= LATE_S:
        st = "ok"
        for i in range(4):
            x, y = a[5 + i], b[5 + i]
            if x >= 0 and y >= 0:
                if y < x:
                    st = "reset"
                vals[i] = y - x
    if b is not None and b[3] & 1:
        st = "reset"
    if st != "ok":
        vals = [None, None, None, None]
    return vals, st


def close(folder, body, rule=None):
    """Write the snapshot of this telegram into each ring whose period has none yet.
    Returns [(ring, the period that closed: JSON bytes)] for each ring written whose
    previous period has a snapshot. `rule`: the config's tariff section (tariff.update
    gets each closed period)."""
    t = stamp(body)
    if t is None:
        return []
    regs = registers(body)
    if max(regs) < 0:
        return []
    try:
        mkdir(folder)
    except OSError:  # there already
        pass
    done = []
    for r in range(4):
        key, b = period(r, t)
        buf = load(folder, r, key)
        if get(buf, r, key) is not None:
            continue  # (a reboot within the period: the first snapshot stays)
        late = (t[0] - b) * 60 + t[1]
        flags = 0
        prev = _prev(folder, r, key, buf)
        if prev is not None:
            for i in range(4):
                if regs[i] < prev[5 + i] and regs[i] >= 0:
                    flags = 1
            if flags and r == 0:  # (once, not once per ring)
                log.warn("history: a register went backwards (meter exchanged?): %r -> %r" % (list(prev[5:]), regs))
        o = (key % RINGS[r][1]) % PER * REC
        buf[o : o + REC] = pack(FMT, key, t[2], min(late, 65535), flags, 0, regs[0], regs[1], regs[2], regs[3])
        write_atomic(path(folder, r, key), buf)
        if prev is not None and prev[0] == key - 1:  # (none: the dongle was off then, nothing closed)
            vals, st = energy(prev, unpack_from(FMT, buf, o))
            done.append((r, json(label(r, key - 1, prev[1]), vals, st)))
            if rule is not None and r < 2 and st == "ok":  # the tariff monitor's peaks (tariff.py)
                from tariff import update

                update(folder, rule, r, key - 1, prev[1], vals[0])
    return done


COLS = ("import_wh", "export_wh", "reactive_import_varh", "reactive_export_varh")


def json(start, vals, st):
    """One period as JSON (bytes): start, the four values (null: none), status."""
    out = '{"start": "%s"' % start
    for i in range(4):
        out += ', "%s": %s' % (COLS[i], "null" if vals[i] is None else vals[i])
    return (out + ', "status": "%s"}' % st).encode()


def _prev(folder, r, key, buf):
    """The newest earlier snapshot of ring `r` (the slot before, else the newest one
    before `key` in the same file), or None."""
    p = get(buf if (key % RINGS[r][1]) % PER else load(folder, r, key - 1), r, key - 1)
    if p is not None:
        return p
    best = None
    for i in range(PER):
        rec = unpack_from(FMT, buf, i * REC)
        if rec[0] != EMPTY and key - RINGS[r][1] < rec[0] < key and (best is None or rec[0] > best[0]):
            best = rec
    return best


def job(app, body):
    """App's history job (app.py, in the cold slot): the snapshot; returns the MQTT
    messages [(topic below <base>, payload str)]: each period that closed (retained on
    <base>/energy/<ring>), and the tariff monitor (<base>/tariff) at each quarter hour.
    (app.py puts them in the outbox once this code is unloaded: not in its middle.)"""
    out = close(app.board.path("hist"), body, app.cfg.get("tariff"))
    if app.mqtt is None or not out:
        return []
    msgs = [("/energy/" + RINGS[r][0], payload.decode()) for r, payload in out]
    if out[0][0] == 0:
        from tariff import report

        t = report(app)
        if t is not None:
            msgs.append(("/tariff", t))
    return msgs

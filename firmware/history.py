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

Cold: app.py calls job() (in the cold slot) when the telegram's quarter hour
differs from the last one's, and at the first telegram after a boot; it is
unloaded again before tariff.job, the job's second step. The record format and
the helpers tariff.py shares are in histcore.py.
"""

from os import mkdir
from struct import pack, unpack_from

import log
from fsutil import write_atomic
from histcore import (  # noqa: F401 - the format and helpers, here too for histread and the tests
    EMPTY, FMT, LATE_S, PER, REC, RINGS, civil, days, get, label, load, path, period, registers, stamp, wh,
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


def close(folder, body, rule=None, closed=None):
    """Write the snapshot of this telegram into each ring whose period has none yet.
    Returns [(ring, the period that closed: JSON bytes)] for each ring written whose
    previous period has a snapshot. The tariff monitor gets each complete 15-minute
    and hour period that closed: appended to the list `closed` as tariff.update's
    (ring, key, offset, Wh) when one is given (the device: tariff.job, later),
    else passed to tariff.update now with `rule`, the config's tariff section."""
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
            if r < 2 and st == "ok":  # the tariff monitor's peaks (tariff.py)
                if closed is not None:
                    closed.append((r, key - 1, prev[1], vals[0]))
                elif rule is not None:
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
    """App's history job, its first step (histjob.py, in the cold slot): the snapshot.
    Returns (messages, closed, quarter): the MQTT messages [(topic below <base>,
    payload str)] of each period that closed (retained on <base>/energy/<ring>);
    for tariff.job, the complete periods that closed and whether a quarter hour
    closed with MQTT on (the monitor's report then goes to <base>/tariff)."""
    closed = []
    out = close(app.board.path("hist"), body, None, closed)
    if app.mqtt is None or not out:
        return [], closed, False
    return [("/energy/" + RINGS[r][0], payload.decode()) for r, payload in out], closed, out[0][0] == 0

# The energy history (firmware/history.py, histread.py) on a time-accelerated meter:
# Finnish time (EET +02:00 / EEST +03:00, W/S in the telegram), a telegram every
# `step` seconds whose registers grow by pseudo-random whole Wh. Shared by
# host_tests/test_history.py (CPython) and the Unix-port MicroPython run there.
# MicroPython-compatible: no pathlib, no f-strings, plain asserts. Each case takes
# an empty directory.
import history as h
import histread

# 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC
DST_ON = h.days(2026, 3, 29) * 1440 + 60
DST_OFF = h.days(2026, 10, 25) * 1440 + 60


def offset(um):
    return 180 if DST_ON <= um < DST_OFF else 120


def local_text(um, sec):
    off = offset(um)
    lm = um + off
    y, m, d = h.civil(lm // 1440)
    return "%04d-%02d-%02dT%02d:%02d:%02d+%02d:00" % (y, m, d, lm % 1440 // 60, lm % 60, sec, off // 60)


def body(um, sec, regs):
    return (
        '{"timestamp": "%s", "meter": "SIM", "energy_import_kwh": %d.%03d, "energy_export_kwh": %d.%03d, '
        '"reactive_energy_import_kvarh": %d.%03d, "reactive_energy_export_kvarh": %d.%03d, "power_import_kw": 1.000}'
        % (
            local_text(um, sec),
            regs[0] // 1000, regs[0] % 1000, regs[1] // 1000, regs[1] % 1000,
            regs[2] // 1000, regs[2] % 1000, regs[3] // 1000, regs[3] % 1000,
        )  # fmt: skip
    ).encode()


class Meter:
    """Telegrams at `sec` seconds past each `step` (s); closes the history the way
    app.py does (at a new quarter hour of the time stamp). `at[um]`: the registers
    sent at UTC minute um (whole hours, and the quarters of 10:00)."""

    def __init__(self, folder, regs=None, rule=None):
        self.folder = folder
        self.rule = rule
        self.regs = regs or [5996149, 3209076, 28442, 963522]
        self.seed = 12345
        self.q = self.d = -1
        self.at = {}
        self.closes = 0

    def rnd(self, n):
        self.seed = (self.seed * 1103515245 + 12345) % 2147483648
        return self.seed % n

    def run(self, um0, um1, step=300, sec=7, skip=None, reset_at=None):
        for um in range(um0, um1, step // 60):
            if skip is not None and skip[0] <= um < skip[1]:
                continue
            r = self.regs
            r[0] += self.rnd(400)
            r[1] += self.rnd(60)
            r[2] += self.rnd(30)
            r[3] += self.rnd(90)
            if reset_at is not None and um == reset_at:
                r[0] = 17  # a new meter
            b = body(um, sec, r)
            self.last = b
            lm = um + offset(um)
            if lm % 60 == 0 or (lm % 15 == 0 and lm % 1440 // 60 == 10):  # (what the tests look up)
                self.at[um] = list(r)
            q = ((b[29] - 48) * 10 + b[30] - 48) // 15 + 4 * (b[27] + 64 * b[26]) + 65536 * b[36]
            d = b[24] + 64 * (b[23] + 64 * b[21])
            if q != self.q or d != self.d:
                self.q, self.d = q, d
                self.out = h.close(self.folder, b, self.rule)
                self.closes += 1


def local_um(y, m, d, hh=0, mm=0):
    """UTC minutes of a local wall time (the offset of that moment)."""
    um = h.days(y, m, d) * 1440 + hh * 60 + mm - 120
    if offset(um - 60) == 180:
        um -= 60
    return um


def rows(folder, res, frm, to):
    r = [x[0] for x in h.RINGS].index(res)
    got = histread.span(r, {"from": frm, "to": to}, None, 120)
    assert not isinstance(got, str), got
    out = list(histread.periods(folder, r, got[0], got[1], got[2]))
    for lab, vals, st in out:
        for v in vals:
            assert v is None or v >= 0, (lab, vals)  # never negative energy
        assert (st == "ok") == (vals[0] is not None), (lab, vals, st)
    return out


def total(rs, i=0):
    s = 0
    for _, vals, st in rs:
        assert st == "ok", (rs[0][0], st)
        s += vals[i]
    return s


def case_dst_autumn_month_gap(folder):
    """October 2026: the 25-hour day, a month, a gap; totals = register differences."""
    m = Meter(folder)
    m.run(local_um(2026, 9, 30), local_um(2026, 10, 27, 0, 10), skip=(local_um(2026, 10, 22, 10, 2), local_um(2026, 10, 22, 12, 31)))
    # the 25-hour day: 100 quarter hours, 25 hours, each adding up to the day exactly
    q = rows(folder, "15min", "2026-10-25T00:00+03:00", "2026-10-26T00:00+02:00")
    hr = rows(folder, "hour", "2026-10-25T00:00+03:00", "2026-10-26T00:00+02:00")
    day = rows(folder, "day", "2026-10-25", "2026-10-26")
    assert len(q) == 100 and len(hr) == 25 and len(day) == 1, (len(q), len(hr), len(day))
    labels = [x[0] for x in hr]
    assert "2026-10-25T03:00+03:00" in labels and "2026-10-25T03:00+02:00" in labels, labels
    a, b = m.at[local_um(2026, 10, 25)], m.at[local_um(2026, 10, 26)]
    for i in range(4):
        assert total(q, i) == total(hr, i) == total(day, i) == b[i] - a[i], i
    # the gap: no telegrams 10:02 .. 12:31 -> those hours and quarters are gaps, not zeros
    g = rows(folder, "hour", "2026-10-22T09:00+03:00", "2026-10-22T14:00+03:00")
    assert [x[2] for x in g] == ["ok", "gap", "gap", "gap", "ok"], g
    g = rows(folder, "15min", "2026-10-22T09:45+03:00", "2026-10-22T13:00+03:00")
    assert [x[2] for x in g] == ["ok"] + ["gap"] * 11 + ["ok"], g
    assert g[1][1] == [None, None, None, None]
    assert rows(folder, "day", "2026-10-22", "2026-10-23")[0][2] == "ok"  # its ends are there
    # the month: the days add up to it, and it is the registers' difference
    m.run(local_um(2026, 10, 27, 0, 10), local_um(2026, 11, 1, 0, 10))
    mo = rows(folder, "month", "2026-10", "2026-11")
    days_ = rows(folder, "day", "2026-10-01", "2026-11-01")
    assert len(mo) == 1 and len(days_) == 31
    a, b = m.at[local_um(2026, 10, 1)], m.at[local_um(2026, 11, 1)]
    for i in range(4):
        assert total(mo, i) == total(days_, i) == b[i] - a[i]
    assert mo[0][0] == "2026-10" and days_[24][0] == "2026-10-25"
    # a reboot within a period: its first snapshot stays
    assert h.close(folder, body(local_um(2026, 10, 31, 23, 2), 7, [1, 1, 1, 1])) == []
    assert rows(folder, "month", "2026-10", "2026-11") == mo


def case_dst_spring_and_reset(folder):
    """The 23-hour day; a register that goes backwards is a reset, never negative."""
    m = Meter(folder)
    m.run(local_um(2026, 3, 28), local_um(2026, 3, 31, 0, 10), reset_at=local_um(2026, 3, 30, 12, 5))
    q = rows(folder, "15min", "2026-03-29T00:00+02:00", "2026-03-30T00:00+03:00")
    hr = rows(folder, "hour", "2026-03-29T00:00+02:00", "2026-03-30T00:00+03:00")
    day = rows(folder, "day", "2026-03-29", "2026-03-30")
    assert len(q) == 92 and len(hr) == 23 and len(day) == 1
    a, b = m.at[local_um(2026, 3, 29)], m.at[local_um(2026, 3, 30)]
    for i in range(4):
        assert total(q, i) == total(hr, i) == total(day, i) == b[i] - a[i]
    r = rows(folder, "15min", "2026-03-30T11:45+03:00", "2026-03-30T12:30+03:00")
    assert [x[2] for x in r] == ["ok", "reset", "ok"], r
    assert [x[2] for x in rows(folder, "hour", "2026-03-30T11:00+03:00", "2026-03-30T14:00+03:00")] == ["ok", "reset", "ok"]
    assert [x[2] for x in rows(folder, "day", "2026-03-29", "2026-03-31")] == ["ok", "reset"]


def case_json_and_csv(folder):
    m = Meter(folder)
    m.run(local_um(2026, 12, 1, 10), local_um(2026, 12, 1, 11, 1))
    r = [x[0] for x in h.RINGS].index("hour")
    got = histread.span(r, {"from": "2026-12-01T10:00"}, None, 120)
    j = "".join(x if isinstance(x, str) else x.decode() for x in histread.body(folder, r, got[0], got[1], got[2], False))
    a, b = m.at[local_um(2026, 12, 1, 10)], m.at[local_um(2026, 12, 1, 11)]
    want = '{"start": "2026-12-01T10:00+02:00", "import_wh": %d, "export_wh": %d, "reactive_import_varh": %d, ' % (
        b[0] - a[0], b[1] - a[1], b[2] - a[2]
    )
    assert want in j, j
    assert (1, j[j.index("{", 5) : j.index("}") + 1].encode()) in m.out  # what went to MQTT at 11:00
    c = "".join(histread.body(folder, r, got[0], got[1], got[2], True)).split("\r\n")
    assert c[0] == "start,import_wh,export_wh,reactive_import_varh,reactive_export_varh,status"
    assert c[1] == "2026-12-01T10:00+02:00,%d,%d,%d,%d,ok" % (b[0] - a[0], b[1] - a[1], b[2] - a[2], b[3] - a[3]), c
    assert c[2].startswith("2026-12-01T11:00+02:00,,,,,gap"), c  # (its end is still to come)


CASES = [case_dst_autumn_month_gap, case_dst_spring_and_reset, case_json_and_csv]


if __name__ == "__main__":
    import sys

    from cases import run

    run("history", CASES, sys.argv[1])

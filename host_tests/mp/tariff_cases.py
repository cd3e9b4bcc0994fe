# The power-tariff monitor (firmware/tariff.py) on the time-accelerated meter of
# history_cases.py. Shared by host_tests/test_tariff.py (CPython) and the Unix-port
# MicroPython run there. MicroPython-compatible. Each case takes an empty directory.
import json

import history as h
import tariff
from history_cases import Meter, local_um, rows


def rule(**kw):
    r = {"period": "hour", "weekdays_only": False, "hours": "0-24", "months": "1-12", "top": 1, "distinct_days": True}
    for k in kw:
        r[k] = kw[k]
    return r


def lm(y, m, d, hh=0, mm=0):
    return h.days(y, m, d) * 1440 + hh * 60 + mm


def case_rule_filters(folder):
    wk = rule(weekdays_only=True, hours="7-21", months="11-3")
    assert tariff.counts(wk, lm(2026, 12, 2, 7))  # a Wednesday in December, 07:00
    assert not tariff.counts(wk, lm(2026, 12, 2, 21))  # 21:00: the end is not in
    assert not tariff.counts(wk, lm(2026, 12, 2, 6, 45))
    assert not tariff.counts(wk, lm(2026, 12, 5, 12))  # Saturday
    assert tariff.counts(wk, lm(2027, 3, 31, 12)) and not tariff.counts(wk, lm(2026, 4, 1, 12))
    assert tariff.counts(rule(), lm(2026, 7, 4, 23))


class App:
    def __init__(self, folder, rule, body):
        self.cfg = {"tariff": rule}
        self.board = self
        self.folder = folder
        self.hub = self
        self.sample = self
        self.body = body

    def path(self, name):
        return self.folder


def case_peaks_and_running_average(folder):
    """The month's best hours, one per day, the mean of the top 3; the running hour."""
    ru = rule(top=3, hours="7-21")
    m = Meter(folder, rule=ru)
    m.run(local_um(2026, 11, 1), local_um(2026, 11, 20, 10, 31))
    # what the history says: each day's best counted hour, best first
    best = {}
    for lab, vals, st in rows(folder, "hour", "2026-11-01T00:00", "2026-11-20T10:00"):
        hh = int(lab[11:13])
        if st == "ok" and 7 <= hh < 21 and (lab[:10] not in best or vals[0] > best[lab[:10]][1]):
            best[lab[:10]] = (lab, vals[0])
    want = sorted(best.values(), key=lambda x: -x[1])[:5]
    d = tariff.load(folder)
    assert d["month"] == "2026-11" and [(p[0], p[1]) for p in d["peaks"]] == want, (d, want)
    text = tariff.report(App(folder, ru, m.last))
    rep = json.loads(text)
    assert [(p["start"], p["average_w"]) for p in rep["peaks"]] == want
    assert rep["tariff_w"] == (want[0][1] + want[1][1] + want[2][1]) // 3
    a = m.at[local_um(2026, 11, 20, 10)][0]
    e = h.registers(m.last)[0] - a  # Wh since 10:00:07, at 10:30:07
    assert rep["hour"] == {"start": "2026-11-20T10:00+02:00", "elapsed_s": 1807, "average_w": e * 3600 // 1807,
                           "projected_w": (e * 3600 + 1000 * (3600 - 1807)) // 3600}, rep  # fmt: skip
    e = h.registers(m.last)[0] - m.at[local_um(2026, 11, 20, 10, 30)][0]
    assert rep["15min"]["average_w"] == e * 3600 // 7 and rep["power_w"] == 1000 and rep["counts_now"] is True
    at = [text.index('"%s": ' % k) for k in ("rule", "power_w", "hour", "15min", "month", "peaks", "tariff_w", "counts_now")]
    assert at == sorted(at), text  # (the key order, on both interpreters)
    # a new month starts afresh
    m.run(local_um(2026, 11, 30, 23), local_um(2026, 12, 1, 9, 5))
    d = tariff.load(folder)
    assert d["month"] == "2026-12" and len(d["peaks"]) == 1 and d["peaks"][0][0][:13] in ("2026-12-01T07", "2026-12-01T08")


def case_quarter_hours_all_in_a_day(folder):
    ru = rule(period="15min", top=3, distinct_days=False)
    m = Meter(folder, rule=ru)
    m.run(local_um(2026, 12, 1, 8), local_um(2026, 12, 1, 12, 1))
    qs = rows(folder, "15min", "2026-12-01T08:00", "2026-12-01T12:00")
    want = sorted([(lab, v[0] * 4) for lab, v, st in qs], key=lambda x: -x[1])[:5]
    got = [(p[0], p[1]) for p in tariff.load(folder)["peaks"]]
    assert [x[1] for x in got] == [x[1] for x in want], (got, want)


CASES = [case_rule_filters, case_peaks_and_running_average, case_quarter_hours_all_in_a_day]


if __name__ == "__main__":
    import sys

    from cases import run

    run("tariff", CASES, sys.argv[1])

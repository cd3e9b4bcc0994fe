"""Power-tariff monitor: the month's highest hourly (or 15-minute) average powers,
and the running average of the period now (GET /api/v1/tariff; cold).

The rule (config section `tariff`, docs/TARIFF.md for presets): `period` "hour"
or "15min"; `weekdays_only`; `hours` "H-H" (local, end exclusive: "7-21");
`months` "M-M" (may wrap: "11-3"); `top` (1..5): the tariff's power is the
mean of that many highest averages; `distinct_days`: at most one of them per
day. Only imported energy counts (1.8.0): the average power of a period is its
energy from the history (history.py) over its length, so it is exact to the
Wh, never integrated power.

`update()` runs for each period of the rule's length that closed: from `job()`,
the history job's second step (histjob.py), or from history.close() given a rule;
`hist/peaks.json` (fsutil, power-safe) keeps the month's best TOP_KEPT periods.
"""

import json

import histcore as h
from fsutil import read, write_atomic
from tariffrule import counts

_KEPT = 5  # (top is at most 5)


def _ring(rule):
    return 0 if rule["period"] == "15min" else 1


def load(folder):
    """{"month": "YYYY-MM", "peaks": [[start, average W, local day], ...]} (best first)."""
    raw = read(folder + "/peaks.json", 1024)[0]
    try:
        d = json.loads(raw or b"")
        if isinstance(d.get("peaks"), list):
            return d
    except (TypeError, ValueError, AttributeError):
        pass
    return {"month": "", "peaks": []}


def update(folder, rule, r, key, off, wh):
    """A period of ring `r` closed with `wh` imported: keep it if it is one of the
    month's best that count for `rule`. True if the file changed."""
    if r != _ring(rule):
        return False
    lm = (key * 15 if r == 0 else key * 60 - off % 60) + off
    if not counts(rule, lm):
        return False
    w = wh * (4 if r == 0 else 1)  # Wh in 15 min or an hour -> average W
    start = h.label(r, key, off)
    d = load(folder)
    if d["month"] != start[:7]:
        d = {"month": start[:7], "peaks": []}
    ps = d["peaks"]
    day = lm // 1440
    if rule["distinct_days"]:
        for p in ps:
            if p[2] == day:
                if p[1] >= w:
                    return False
                ps.remove(p)
                break
    if len(ps) >= _KEPT and ps[-1][1] >= w:
        return False
    ps.append([start, w, day])
    ps.sort(key=lambda p: -p[1])
    del ps[_KEPT:]
    write_atomic(folder + "/peaks.json", json.dumps(d))
    return True


def _running(folder, r, t, body, now_w):
    """The period of ring `r` now: its start, seconds so far, average W so far and the
    projected average at its end if the power now goes on (None before a snapshot)."""
    key, b = h.period(r, t)
    rec = h.get(h.load(folder, r, key), r, key)
    length = 900 if r == 0 else 3600
    el = (t[0] - b) * 60 + t[1]
    out = {"start": h.label(r, key, t[2]), "elapsed_s": el, "average_w": None, "projected_w": None}
    imp = h.registers(body)[0]
    if rec is None or rec[2] > h.LATE_S or imp < rec[5] or rec[5] < 0:
        return out  # (started before the dongle saw it: unknown)
    e = imp - rec[5]  # Wh so far
    if el > 0:
        out["average_w"] = e * 3600 // el
    out["projected_w"] = (e * 3600 + max(now_w, 0) * max(length - el, 0)) // length
    return out


_RULE = ("period", "weekdays_only", "hours", "months", "top", "distinct_days")


def _obj(pairs):
    """A JSON object (as a 1-tuple: JSON text, not a str value) in the given key order
    (a dict's order differs between the interpreters)."""
    return ("{" + ", ".join('"%s": %s' % (k, v[0] if isinstance(v, tuple) else json.dumps(v)) for k, v in pairs) + "}",)


def _run_json(x):
    return _obj([(k, x[k]) for k in ("start", "elapsed_s", "average_w", "projected_w")])


def report(app):
    """The monitor as JSON text (fixed key order), or None before a telegram with a time stamp."""
    rule = app.cfg["tariff"]
    folder = app.board.path("hist")
    s = app.hub.sample
    if s is None:
        return None
    body = s.body
    t = h.stamp(body)
    if t is None:
        return None
    now_w = h.wh(body, b'"power_import_kw": ')  # (kW with 3 decimals -> W, exact)
    d = load(folder)
    month = h.label(3, (t[5] - 2000) * 12 + t[6] - 1, 0)
    ps = d["peaks"] if d["month"] == month else []
    top = ps[: rule["top"]]
    return _obj([
        ("rule", _obj([(k, rule[k]) for k in _RULE])),
        ("power_w", now_w if now_w >= 0 else None),
        ("hour", _run_json(_running(folder, 1, t, body, now_w))),
        ("15min", _run_json(_running(folder, 0, t, body, now_w))),
        ("month", month),
        ("peaks", ("[" + ", ".join(_obj([("start", p[0]), ("average_w", p[1])])[0] for p in ps) + "]",)),
        ("tariff_w", sum(p[1] for p in top) // len(top) if top else None),
        ("counts_now", counts(rule, t[0] + t[2])),
    ])[0]  # fmt: skip


def job(app, closed, quarter):
    """The history job's second step (histjob.run, once history's code left RAM):
    the monitor's peaks for the periods that closed (history.job's `closed`), then,
    at a quarter hour with MQTT on, its report: [("/tariff", JSON text)] or []."""
    folder = app.board.path("hist")
    rule = app.cfg["tariff"]
    for c in closed:
        update(folder, rule, *c)
    t = report(app) if quarter else None
    return [] if t is None else [("/tariff", t)]

"""Load management's state as a dict (the status page's "loads" section) or JSON
text (/api/v1/relays, retained MQTT <base>/relays): cold, loaded per call. Apart
from `loadscold` so that each status page brings only this small part."""

from clock import ticks_diff, ticks_ms
from loads import MODES, STALE


def _amps(ma):
    return "%d.%03d" % (ma // 1000, ma % 1000)


def why(x):
    """The text of a guard's state or a decision's reason (loads keeps them as numbers)."""
    if isinstance(x, str):  # (set-up's and the overrides' own)
        return x
    if isinstance(x, int):
        return ("below restore levels", "between the levels", "override ended: auto")[x]
    if len(x) == 2:
        if x[0] == STALE:
            return "stale: no reading for %d s: safe state" % x[1]
        return "%s for %d s" % (why(x[0]), x[1])
    if x[0] <= 3:
        return "L%d %s A > %s A" % (x[0], _amps(x[1]), _amps(x[2]))
    return "projected %s average %d W > %d W" % ("15 min" if x[0] == 900 else "hour", x[1], x[2])


def state(ld, now=None):
    """The state: relays by number, the guards, the decisions (oldest first)."""
    now = ticks_ms() if now is None else now
    rel = []
    for r in sorted(ld.r):
        rel.append({
            "relay": r[0], "name": r[1], "priority": r[2], "safe": "on" if r[3] else "off", "on": r[6],
            "mode": MODES[r[7]], "override_s": max(ticks_diff(r[8], now), 0) // 1000 if r[7] else None,
        })  # fmt: skip
    c = ld.c
    return {
        "relays": rel,
        "stale": ld.stale,
        "guard": why(ld.why),
        "fuse_a": c["fuse_a"],
        "limit_w": c["limit_w"],
        "projected_w": ld.proj,
        "log": [{"uptime_s": x[0], "at": x[1], "relay": x[2], "on": x[3], "reason": why(x[4])} for x in ld.log],
    }


def text(ld):
    """The state as JSON text (keys sorted: the same on both interpreters)."""
    from p1.jsonout import dumps

    return dumps(state(ld))

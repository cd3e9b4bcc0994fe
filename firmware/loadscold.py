"""Load management's rare work (cold: loaded for a call, dropped after): set-up at
boot, the period's start from the history, overrides (HTTP, MQTT). The rules that
run on each reading are in `loads`; the state as a dict or JSON text (each status
page, each change on MQTT) in the smaller `loadstate`."""

from clock import ticks_add, ticks_ms
from loads import MODES, Loads, clock


def setup(app):
    """The app's Loads (relays in their safe state, logged), or None when no relay
    is configured (a relay with a name, on a pin of the board's `relays`)."""
    pins = app.board.spec.get("relays") or []
    rs = []
    for n in range(1, 5):
        c = app.cfg.get("relay%d" % n)
        if not c or not c["name"]:
            continue
        if n > len(pins):
            app.cfg_errors.append("config: relay%d: the board has %d relay outputs, not used" % (n, len(pins)))
            continue
        rs.append([n, c["name"], c["priority"], c["safe"] == "on", c["min_on_s"], c["min_off_s"], False, 0, 0, None])
    if not rs:
        return None
    rs.sort(key=lambda r: r[2] * 8 - r[0])  # shed first: the lowest priority, then the higher number
    ld = Loads()
    ld.app = app
    ld.c = app.cfg["loads"]
    ld.r = rs
    ld.log = []
    ld.seen = ticks_ms()
    ld.stale = True  # (no reading yet)
    ld.t = ld.at = ld.over = ld.ok = ld.per = ld.proj = None
    ld.why = "no reading yet"
    ld.dirty = True
    for r in sorted(rs):  # (by number)
        ld.set(r, r[3], "boot: safe state")
    return ld


def sync(ld, body):
    """At the first reading of each quarter hour (histjob.run, in the cold slot):
    the tariff period now, the import register at its start from the history (None:
    not seen from its start) and whether the tariff's rule counts it."""
    import histcore as h
    from tariffrule import counts

    t = h.stamp(body)
    k = clock(body)
    if t is None or k is None:
        return
    rule = ld.app.cfg["tariff"]
    r = 0 if rule["period"] == "15min" else 1
    key, _ = h.period(r, t)
    rec = h.get(h.load(ld.app.board.path("hist"), r, key), r, key)
    wh = None if rec is None or rec[2] > h.LATE_S or rec[5] < 0 else rec[5]
    el = (k[1] % 15 if r == 0 else k[1]) * 60 + k[2]
    lm = (key * 15 if r == 0 else key * 60 - t[2] % 60) + t[2]  # (local minute of its start, as tariff.update)
    ld.per = (k[0] - el, wh, counts(rule, lm))


def find(ld, n):
    for r in ld.r:
        if r[0] == n:
            return r
    return None


def override(ld, n, mode, secs, src, now=None):
    """Relay `n` to `mode` ("on", "off": an override for `secs` s, None: the config's
    override_s; "auto": the rules) at ticks_ms `now`. None, or {field: why} when a
    value is bad."""
    errs = {}
    r = find(ld, n) if isinstance(n, int) and not isinstance(n, bool) else None
    if r is None:
        errs["relay"] = "a configured relay: " + ", ".join("%d" % x[0] for x in sorted(ld.r))
    if mode not in MODES:
        errs["mode"] = "on, off or auto"
    if secs is None:
        secs = ld.c["override_s"]
    if isinstance(secs, bool) or not isinstance(secs, int) or not 1 <= secs <= 86400:
        errs["expiry_s"] = "1..86400 seconds"
    if errs or r is None:
        return errs
    if mode == "auto":
        r[7] = 0
        ld.note(r, "auto (%s)" % src)
    else:
        r[7] = MODES.index(mode)
        r[8] = ticks_add(ticks_ms() if now is None else now, secs * 1000)
        ld.set(r, mode == "on", "override %s for %d s (%s)" % (mode, secs, src))
    ld.publish()
    return None


def command(ld, n, payload, now=None):
    """MQTT <base>/relay/<n>/set: "on", "off" or "auto", optionally followed by the
    expiry in seconds ("on 600"). True if it was good."""
    try:
        p = payload.decode().split()
    except UnicodeError:
        return False
    if not n.isdigit() or not 1 <= len(p) <= 2 or (len(p) == 2 and not p[1].isdigit()):
        return False
    return override(ld, int(n), p[0], int(p[1]) if len(p) == 2 else None, "mqtt", now) is None

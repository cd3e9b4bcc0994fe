# Load management (firmware/loads.py, loadscold.py) fed readings directly: the meter's
# time stamps drive the rules, `now` (ms) the board's clock for staleness and overrides.
# Shared by host_tests/test_loads.py (CPython) and the Unix-port MicroPython run there.
# MicroPython-compatible: no pathlib, no f-strings, plain asserts. Each case takes an
# empty directory.
import sys

import config
import mem
import history as h

T0 = h.days(2026, 11, 20) * 1440 + 8 * 60  # UTC minutes: 10:00 local (+02:00)


class Board:
    def __init__(self, folder):
        self.spec = {"relays": [25, 26, 27, 14]}
        self.folder = folder
        self.calls = []  # (index, on)

    def relay(self, i, on):
        self.calls.append((i, on))

    def path(self, name):
        return self.folder + "/" + name


class Outbox:
    def __init__(self):
        self.msgs = []
        self.spool = None  # (a backlog on flash: the relays' state waits for it)

    def put(self, m):
        self.msgs.append(m)


class Mqtt:
    def __init__(self):
        self.base = "p1/test"
        self.outbox = Outbox()
        self._w = object()  # logged in (None: the broker is away)


class App:
    def __init__(self, folder, cfg):
        self.cfg = cfg
        self.cfg_errors = []
        self.board = Board(folder)
        self.mqtt = None

    def uptime_s(self):
        return 0


def make(folder, loads=None, relays=None):
    """Loads for 4 relays (or `relays`: {n: {...}}), config checked by config.validate."""
    d = {"loads": loads or {}}
    for n in range(1, 5):
        d["relay%d" % n] = {"name": "load%d" % n, "min_on_s": 0, "min_off_s": 0}
    for n in relays or {}:
        d["relay%d" % n] = relays[n]
    cfg, errs = config.validate(d)
    assert errs == [], errs
    app = App(folder, cfg)
    import loadscold

    ld = loadscold.setup(app)
    return app, ld


def stamp(s):
    """Local time text (+02:00) of meter second `s` after T0."""
    um = T0 + s // 60
    lm = um + 120
    y, m, d = h.civil(lm // 1440)
    return "%04d-%02d-%02dT%02d:%02d:%02d+02:00" % (y, m, d, lm % 1440 // 60, lm % 60, s % 60)


def body(s, amps=(5000, 5000, 5000), w=1000, wh=5996149):
    a = ", ".join('"l%d_current_a": %d.%03d' % (i + 1, amps[i] // 1000, amps[i] % 1000) for i in range(3))
    return (
        '{"timestamp": "%s", "meter": "SIM", "energy_import_kwh": %d.%03d, "power_import_kw": %d.%03d, %s}'
        % (stamp(s), wh // 1000, wh % 1000, w // 1000, w % 1000, a)
    ).encode()


def on(ld):
    """{relay number: on} now."""
    out = {}
    for r in ld.r:
        out[r[0]] = r[6]
    return out


def state(ld, now=None):
    return ld.status(now)


def case_boot_safe_state_and_no_relay(folder):
    app, ld = make(folder, relays={1: {"name": "boiler", "safe": "on"}, 3: {"name": "", "safe": "on"}})
    assert on(ld) == {1: True, 2: False, 4: False}, on(ld)
    assert sorted(app.board.calls) == [(0, True), (1, False), (3, False)], app.board.calls
    st = state(ld)
    assert st["stale"] is True and [x["reason"] for x in st["log"]] == ["boot: safe state"] * 3, st
    assert [r["relay"] for r in st["relays"]] == [1, 2, 4] and st["relays"][0]["name"] == "boiler"
    # no relay with a name, or none on the board's pins: nothing
    import loadscold

    cfg, _ = config.validate({"relay3": {"name": "x"}})
    a = App(folder, cfg)
    a.board.spec["relays"] = [25, 26]
    assert loadscold.setup(a) is None and "relay3" in a.cfg_errors[0], a.cfg_errors


def case_phase_guard_sheds_in_order_and_restores_in_reverse(folder):
    # priorities: relay1 3, relay2 1, relay3 2, relay4 1 -> shed 4, 2, 3, 1; restore 1, 3, 2, 4
    rel = {}
    for n, p in ((1, 3), (2, 1), (3, 2), (4, 1)):
        rel[n] = {"name": "load%d" % n, "priority": p, "safe": "on", "min_on_s": 0, "min_off_s": 0}
    app, ld = make(folder, {"fuse_a": 25, "margin_pct": 100, "restore_pct": 85, "delay_s": 10, "restore_s": 60}, rel)
    shed = []
    for s in range(0, 60):
        before = on(ld)
        ld.step(body(s, (5000, 26000, 5000)), s * 1000)
        for n in before:
            if before[n] and not on(ld)[n]:
                shed.append((n, s))
    assert shed == [(4, 10), (2, 20), (3, 30), (1, 40)], shed
    st = state(ld)
    assert st["log"][-1]["reason"] == "L2 26.000 A > 25.000 A for 10 s" and st["log"][-1]["relay"] == 1, st["log"]
    assert st["log"][-1]["at"] == "2026-11-20T10:00:40+02:00"
    # between the levels (25 A and 21.25 A): nothing comes back
    for s in range(60, 400):
        ld.step(body(s, (5000, 22000, 5000)), s * 1000)
    assert on(ld) == {1: False, 2: False, 3: False, 4: False}
    back = []
    for s in range(400, 700):
        before = on(ld)
        ld.step(body(s, (5000, 21000, 5000)), s * 1000)
        for n in before:
            if not before[n] and on(ld)[n]:
                back.append((n, s))
    assert back == [(1, 460), (3, 520), (2, 580), (4, 640)], back
    assert state(ld)["log"][-1]["reason"] == "below restore levels for 60 s"
    assert len(state(ld)["log"]) == 8  # the ring keeps the last 8


def case_min_on_off_no_chatter(folder):
    rel = {1: {"name": "heater", "safe": "on", "min_on_s": 120, "min_off_s": 300}, 2: {"name": ""}, 3: {"name": ""}, 4: {"name": ""}}
    app, ld = make(folder, {"fuse_a": 25, "delay_s": 10, "restore_s": 30}, rel)
    # around the threshold: 26 A / 24 A, 12 s each, for an hour: shed once, never back (24 A > 22.5 A)
    for s in range(3600):
        ld.step(body(s, (26000 if s // 12 % 2 == 0 else 24000, 0, 0)), s * 1000)
    assert [c for c in app.board.calls[1:]] == [(0, False)], app.board.calls
    # a current that swings far: 30 A / 10 A, 40 s each, for two hours: min on/off hold
    app, ld = make(folder, {"fuse_a": 25, "delay_s": 10, "restore_s": 30}, rel)
    last = None
    times = []
    for s in range(7200):
        ld.step(body(s, (30000 if s // 40 % 2 == 0 else 10000, 0, 0)), s * 1000)
        x = on(ld)[1]
        if x != last:
            times.append((s, x))
            last = x
    times = times[1:]
    for i in range(1, len(times)):
        held = times[i][0] - times[i - 1][0]
        assert held >= (300 if times[i][1] else 120), (times[i - 1], times[i])
    assert 4 <= len(times) <= 2 * (7200 // (300 + 120)) + 1, times  # a switch per min time at most


def case_power_guard_sheds_before_the_period_ends(folder):
    """A house of 2 kW plus 2 kW per relay on, limit 5 kW on the hour: the projection
    sheds loads in the hour's first minute; the hour's average stays under the limit."""
    rel = {}
    for n in range(1, 5):
        rel[n] = {"name": "load%d" % n, "priority": n, "safe": "on", "min_on_s": 60, "min_off_s": 120}
    app, ld = make(folder, {"fuse_a": 0, "limit_w": 5000, "limit_restore_pct": 80, "delay_s": 10, "restore_s": 60}, rel)
    folder_h = app.board.path("hist")
    ws = 5996149 * 3600  # energy in W s
    first = None
    start_wh = None
    for s in range(-120, 3600 + 30, 5):
        w = 2000 + 2000 * sum(1 for x in on(ld).values() if x)
        b = body(s, (0, 0, 0), w, ws // 3600)
        if s % 900 == 0 or s == -120:  # the app's history job at each quarter hour, then the sync
            h.close(folder_h, b, app.cfg["tariff"])
            ld.cold("sync", b)
        if s == 0:
            start_wh = ws // 3600
        if s == 3600:
            avg = ws // 3600 - start_wh  # Wh in the hour = its average W
        ld.step(b, s * 1000)
        if first is None and 0 <= s and not all(on(ld).values()):
            first = s
            st = state(ld)
            assert st["log"][-1]["relay"] == 1 and st["log"][-1]["reason"].startswith("projected hour average "), st
            assert st["projected_w"] > 5000
        ws += w * 5
    assert first is not None and first <= 60, first
    assert avg <= 5000, avg  # pyright: ignore[reportPossiblyUnboundVariable]
    # unknown start (a boot within the hour): no projection, nothing shed for power
    app, ld = make(folder + "/x", {"fuse_a": 0, "limit_w": 100}, rel)
    for s in range(1000, 1100, 5):
        ld.step(body(s, (0, 0, 0), 9000), s * 1000)
    assert all(on(ld).values()) and state(ld)["projected_w"] is None


def case_stale_readings_go_to_the_safe_state(folder):
    rel = {1: {"name": "ev", "safe": "off"}, 2: {"name": "freezer", "safe": "on"}, 3: {"name": "sauna", "safe": "off"}, 4: {"name": ""}}
    app, ld = make(folder, {"fuse_a": 25, "restore_s": 10, "stale_s": 30}, rel)
    assert on(ld) == {1: False, 2: True, 3: False}
    for s in range(0, 100):  # readings: restored one by one
        ld.step(body(s, (1000, 1000, 1000)), s * 1000)
        ld.tick(s * 1000)
    assert on(ld) == {1: True, 2: True, 3: True} and not state(ld)["stale"]
    ld.cold("override", 3, "on", 600, "test", 99000)  # an override outlives staleness, up to its expiry
    for ms in range(99000, 129000, 1000):  # no reading since 99 s
        ld.tick(ms)
    assert on(ld) == {1: True, 2: True, 3: True} and not state(ld)["stale"]
    ld.tick(129000)
    st = state(ld)
    assert on(ld) == {1: False, 2: True, 3: True} and st["stale"] is True, st
    assert st["log"][-1]["reason"] == "stale: no reading for 30 s: safe state" and st["log"][-1]["relay"] == 1
    ld.tick(129000 + 570000)  # the override ends: the sauna goes to its safe state too
    assert on(ld) == {1: False, 2: True, 3: False}, on(ld)
    assert [x["reason"] for x in state(ld)["log"][-2:]] == ["override ended: auto", "stale: no reading for 30 s: safe state"]
    for s in range(800, 830):  # readings again: restored after restore_s
        ld.step(body(s, (1000, 1000, 1000)), s * 1000)
    assert on(ld) == {1: True, 2: True, 3: True}


def case_override_with_expiry(folder):
    app, ld = make(folder, {"fuse_a": 25, "delay_s": 10}, {1: {"name": "boiler", "safe": "on"}, 2: {"name": ""}, 3: {"name": ""}, 4: {"name": ""}})
    app.mqtt = Mqtt()
    assert ld.cold("override", 1, "on", 600, "http", 0) is None
    for s in range(0, 300):  # overloaded, but forced on
        ld.step(body(s, (30000, 0, 0)), s * 1000)
        ld.tick(s * 1000)
    assert on(ld) == {1: True}
    st = state(ld, 299000)
    assert st["relays"][0]["mode"] == "on" and st["relays"][0]["override_s"] == 301, st
    for s in range(300, 620):
        ld.step(body(s, (30000, 0, 0)), s * 1000)
        ld.tick(s * 1000)
    st = state(ld)
    assert on(ld) == {1: False} and st["relays"][0]["mode"] == "auto", st
    assert [x["reason"][:14] for x in st["log"][-3:]] == ["override on fo", "override ended", "L1 30.000 A > "], st["log"]
    # MQTT: "off 30", "auto"; bad payloads refused
    assert ld.cold("command", "1", b"off 30", 620000) is True and state(ld)["relays"][0]["mode"] == "off"
    assert ld.cold("command", "1", b"auto", 620000) is True and state(ld)["relays"][0]["mode"] == "auto"
    for n, p in (("1", b"maybe"), ("2", b"on"), ("x", b"on"), ("1", b"on -5"), ("1", b"on 99999999"), ("1", b"\xff")):
        assert ld.cold("command", n, p, 620000) is False, (n, p)
    assert ld.cold("override", 1, "on", 0, "http") == {"expiry_s": "1..86400 seconds"}
    # each change published, retained, on <base>/relays
    m = app.mqtt.outbox.msgs
    assert m and m[-1][0] == "p1/test/relays" and m[-1][2] is True and b'"mode": "auto"' in m[-1][1], m[-1]
    # while the broker is away nothing waits in the outbox; once logged in, the newest state only
    app.mqtt._w = None
    n = len(m)
    assert ld.cold("command", "1", b"off 30", 620000) is True and ld.cold("command", "1", b"auto", 620000) is True
    ld.tick(620000)
    assert len(m) == n, m[n:]
    app.mqtt._w = object()
    # nor while another cold job holds the cold slot (its code and this one's never at once)
    mem.busy = 1
    ld.tick(620000)
    assert len(m) == n, m[n:]
    mem.busy = 0
    ld.tick(620000)
    assert len(m) == n + 1 and b'"mode": "auto"' in m[-1][1], m[n:]


def case_meter_clock_going_back(folder):
    app, ld = make(folder, {"fuse_a": 25, "delay_s": 10}, {1: {"name": "a", "safe": "on"}, 2: {"name": ""}, 3: {"name": ""}, 4: {"name": ""}})
    for s in range(0, 8):
        ld.step(body(s, (30000, 0, 0)), s * 1000)
    for s in range(-3600, -3596):  # the meter's clock set back an hour: the delay goes on from where it was
        ld.step(body(s, (30000, 0, 0)), 0)
    assert on(ld) == {1: False}, state(ld)


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


if __name__ == "__main__":
    from cases import run

    run("loads", CASES, sys.argv[1])

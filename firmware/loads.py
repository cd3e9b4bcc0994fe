"""Load management (docs/LOADCONTROL.md): up to 4 relays that the phase guard and
the power guard shed and restore on each reading; manual overrides with an
expiry; each relay's safe state at boot and when readings stop.

Resident only while a relay is configured (appstart imports it then; else
nothing of it is loaded). What runs rarely (set-up, the period's start from
the history, overrides) is in the cold `loadscold`, the state as JSON in `loadstate`.

Clocks: the rules (delay, restore hold, minimum on/off) count the meter's
seconds (its time stamp; the board's clock for a meter without one), so the
time-accelerated simulator drives them. Staleness and override expiry count
the board's monotonic clock (ticks_ms): they must run when readings stop.
All values are integers: currents in mA, power in W, energy in Wh.
"""

import mem
from clock import ticks_diff, ticks_ms

try:
    from micropython import const
except ImportError:  # CPython
    const = int
    from typing import Any  # (annotations only: never evaluated on MicroPython)


# a relay: [number 1..4, name, priority, safe state, min on s, min off s, on,
# mode (0 auto, 1 on, 2 off: an override), override end (ticks_ms), switched (meter s)]
_N = const(0)
_SAFE = const(3)
_MINON = const(4)
_MINOFF = const(5)
_ON = const(6)
_MODE = const(7)
_UNTIL = const(8)
_SW = const(9)
_LOG = const(8)  # decisions kept
# What the guards say and why a relay switched, as numbers: the texts are written by
# `loadstate` (cold) when the state is shown, not kept in RAM with the rules. `why`:
# _BELOW, _BETWEEN, (phase 1..3, mA, limit mA) or (period s, projected W, limit W); a
# decision's reason: (why, for s), _ENDED, (STALE, s) or a text (the cold paths').
_BELOW = const(0)
_BETWEEN = const(1)
_ENDED = const(2)
STALE = const(3)  # (public: loadstate tells it apart by it)
_PHASES = (b'"l1_current_a": ', b'"l2_current_a": ', b'"l3_current_a": ')
MODES = ("auto", "on", "off")


def num(body, name):
    """The number after `name` in a reading's body in thousandths (1.5 -> 1500,
    exact: kWh -> Wh, A -> mA, kW -> W); -1 if absent or not a number. (The same
    reader as histcore.wh, on purpose: this module stays in RAM with a relay, histcore
    is loaded for a snapshot only; shared, one would bring the other's code in.)"""
    i = body.find(name)
    if i < 0:
        return -1
    i += len(name)
    v = 0
    dec = -1
    n = len(body)
    c = 0
    while i < n:
        c = body[i]
        if c == 0x2E:
            dec = 0
        elif 48 <= c <= 57:
            if dec < 3:
                v = v * 10 + c - 48
                if dec >= 0:
                    dec += 1
        else:
            break
        i += 1
    if i == n or (c != 0x2C and c != 0x7D):
        return -1
    return v * (1000, 1000, 100, 10, 1)[dec + 1]


def _d(b, i):
    return (b[i] - 48) * 10 + b[i + 1] - 48


def clock(b):
    """(meter UTC seconds (from 2023), local minute of the hour, second) of the body's
    time stamp `YYYY-MM-DDTHH:MM:SS+HH:MM`, or None."""
    if len(b) < 41 or b[14] != 0x22 or b[40] != 0x22:
        return None
    y = _d(b, 15) * 100 + _d(b, 17)
    m = _d(b, 20)
    if m < 3:
        y -= 1
        m += 12
    days = 365 * y + y // 4 - y // 100 + y // 400 + (153 * (m - 3) + 2) // 5 + _d(b, 23) - 738900
    off = _d(b, 35) * 60 + _d(b, 38)
    mm = _d(b, 29)
    s = _d(b, 32)
    return ((days * 24 + _d(b, 26)) * 60 + mm - (off if b[34] == 0x2B else -off)) * 60 + s, mm, s


class Loads:
    """The relays of the app `app` (made by loadscold.setup)."""

    # set by loadscold.setup (declared for type checkers; no bytecode)
    app: Any
    c: dict  # the config's "loads" section
    r: list  # the relays, in shedding order (lowest priority first)
    log: list  # the last _LOG decisions: (uptime s, meter time text or None, relay, on, reason (_BELOW above))
    seen: Any  # ticks_ms of the last reading
    stale: bool
    t: Any  # meter seconds of the last reading (None before one)
    at: Any  # its time stamp text
    over: Any  # meter s since the guards want a load shed (None: they do not)
    ok: Any  # meter s since both guards are below their restore levels
    why: Any  # what the guards say now (as numbers: _BELOW above)
    per: Any  # the period now, from the history: (start, Wh at its start or None, counts)
    proj: Any  # the projected period average (W) or None
    dirty: bool  # the state changed: publish it (retained <base>/relays)

    def step(self, body, now=None):
        """Run the rules on one reading (its JSON body); `now`: ticks_ms."""
        self.seen = ticks_ms() if now is None else now
        self.stale = False
        c = self.c
        k = clock(body)
        t = self.seen // 1000 if k is None else k[0]
        if self.t is not None and t < self.t:  # the meter's clock went back: no time passed
            d = t - self.t
            if self.over is not None:
                self.over += d
            if self.ok is not None:
                self.ok += d
            for r in self.r:
                if r[_SW] is not None:
                    r[_SW] += d
        self.t = t
        self.at = None if k is None else body[15:40].decode()
        over = None
        ok = True
        f = c["fuse_a"]
        if f:
            hi = f * c["margin_pct"] * 10  # mA
            lo = f * c["restore_pct"] * 10
            for i in range(3):
                a = num(body, _PHASES[i])
                if a > hi and over is None:
                    over = (i + 1, a, hi)
                if a > lo:
                    ok = False
        w = c["limit_w"]
        self.proj = None
        p = self.per
        if w and k is not None and p is not None and p[1] is not None and p[2]:
            length = 900 if self.app.cfg["tariff"]["period"] == "15min" else 3600
            el = (k[1] % 15 if length == 900 else k[1]) * 60 + k[2]
            e = num(body, b'"energy_import_kwh": ')
            if e < 0:  # (DSMR: tariffs 1 and 2 only)
                e = num(body, b'"energy_import_t1_kwh": ') + num(body, b'"energy_import_t2_kwh": ')
            if p[0] == t - el and e >= p[1]:
                pw = max(num(body, b'"power_import_kw": '), 0)
                x = self.proj = ((e - p[1]) * 3600 + pw * (length - el)) // length
                if x > w and over is None:
                    over = (length, x, w)
                if x * 100 >= w * c["limit_restore_pct"]:
                    ok = False
        self.why = over or (_BELOW if ok else _BETWEEN)
        if over is not None:
            self.ok = None
            if self.over is None:
                self.over = t
            elif t - self.over >= c["delay_s"]:
                for r in self.r:
                    if not r[_MODE] and r[_ON] and (r[_SW] is None or t - r[_SW] >= r[_MINON]):
                        self.set(r, False, (over, t - self.over))
                        self.over = t  # the next one after delay_s more
                        break
        else:
            self.over = None
            if not ok:
                self.ok = None
            elif self.ok is None:
                self.ok = t
            elif t - self.ok >= c["restore_s"]:
                for r in reversed(self.r):
                    if not r[_MODE] and not r[_ON] and (r[_SW] is None or t - r[_SW] >= r[_MINOFF]):
                        self.set(r, True, (self.why, t - self.ok))
                        self.ok = t
                        break
        self.publish()

    def tick(self, now=None):
        """Once a second (the app's supervisor): overrides that end, readings that stopped."""
        now = ticks_ms() if now is None else now
        for r in self.r:
            if r[_MODE] and ticks_diff(now, r[_UNTIL]) >= 0:
                r[_MODE] = 0
                self.note(r, _ENDED)
        s = self.c["stale_s"]
        if ticks_diff(now, self.seen) >= s * 1000:  # (an override that ends meanwhile too)
            if not self.stale:
                self.stale = True
                self.over = self.ok = self.proj = None
            for r in self.r:
                if not r[_MODE] and r[_ON] != r[_SAFE]:
                    self.set(r, r[_SAFE], (STALE, s))
        self.publish()

    def set(self, r, on, why):
        """Switch relay `r` and log why."""
        r[_ON] = on
        r[_SW] = self.t
        self.app.board.relay(r[_N] - 1, on)
        self.note(r, why)

    def note(self, r, why):
        """A decision into the log (the last _LOG kept)."""
        lg = self.log
        if len(lg) >= _LOG:
            lg.pop(0)
        lg.append((self.app.uptime_s(), self.at, r[_N], r[_ON], why))
        self.dirty = True

    def publish(self):
        """The state, retained on <base>/relays, when it changed, once MQTT is logged in
        and a backlog on flash is sent: only the newest state matters (retained), so none
        waits in the outbox while the broker is away (it took the one-reading RAM ring's
        place and pushed the reading to the flash spool at every start and outage), and
        its code (loadstate, the JSON writer) does not join the login's and the
        spool's, as discovery does not. Nor any other cold job's: only while the cold
        slot is free (mem.busy; this runs to its end without yielding), else with a
        later reading or tick (one a second)."""
        m = self.app.mqtt
        if self.dirty and m is not None and m._w is not None and m.outbox.spool is None and not mem.busy:
            self.dirty = False
            m.outbox.put((m.base + "/relays", self.text().encode(), True))

    def cold(self, job, *args):
        """loadscold.<job>(self, *args), the module loaded for the call only."""
        return mem.call("loadscold", job, self, *args, drop=("p1.jsonout",))

    def status(self, now=None):
        """The "loads" section of the status page (a dict)."""
        return mem.call("loadstate", "state", self, now)

    def text(self):
        """The state as JSON text (/api/v1/relays, MQTT)."""
        return mem.call("loadstate", "text", self, drop=("p1.jsonout",))


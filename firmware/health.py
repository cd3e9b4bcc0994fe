"""Health alarms and the watchdog's record: cold, imported for one call
(`App._health(job)`: the supervisor once a minute, the status page) and
dropped again, so none of this is in RAM while the dongle just runs.

Alarms (names, in this order; thresholds in the config's "alarms" section,
0 turns one off):

- no_telegram: no telegram for `no_telegram_s` (since boot if none came yet);
- crc_errors: at least 3 telegrams failed their CRC over the last one to two
  minutes and they were at least `crc_error_pct` % of all telegrams then;
- low_heap: free heap (after a collection) below `heap_floor` bytes (the
  device and the Unix port; CPython has no fixed heap);
- time_not_set: the clock reads a year before 2024 and the latest telegram has
  no time stamp to set it from (`set_clock`: the meter's clock sets the board's).

`check(app)` puts them in `app.alarms` (a list; status shows it) and, when
they change, logs them and publishes them retained on MQTT as
`<base>/alarms`: a JSON list of names, `[]` when all is well.
"""

import log
from clock import ticks_diff, ticks_ms

_WINDOW_MS = 60000  # the CRC error rate is taken over one to two of these
_DEFAULTS = {"no_telegram_s": 300, "crc_error_pct": 5, "heap_floor": 12288}  # (config.DEFAULTS)


def alarms(app):
    """The alarm names that hold now (and the CRC window moved on)."""
    a = app.cfg.get("alarms") or _DEFAULTS
    out = []
    n = a["no_telegram_s"]
    s = app.hub.sample
    if n and (app.uptime_s() >= n if s is None else s.age_ms() >= n * 1000):
        out.append("no_telegram")
    p = app.pipeline
    now = ticks_ms()
    w = app.health  # [t, accepted, rejected_crc] at the window's start, then at its middle
    if w is None:
        w = app.health = [app.t0, 0, 0, app.t0, 0, 0]
    if ticks_diff(now, w[3]) >= _WINDOW_MS:
        w[0:3] = w[3:6]
        w[3:6] = [now, p.accepted, p.rejected_crc]
    bad = p.rejected_crc - w[2]
    pct = a["crc_error_pct"]
    if pct and bad >= 3 and bad * 100 >= pct * (bad + p.accepted - w[1]):
        out.append("crc_errors")
    floor = a["heap_floor"]
    free = app.board.free_heap() if floor else None
    if free is not None and free < floor:
        out.append("low_heap")
    import time

    if time.gmtime()[0] < 2024 and not set_clock(app.hub.sample):
        out.append("time_not_set")
    return out


def set_clock(sample):
    """Set the board's clock (UTC) from a sample's meter time stamp, `"timestamp":
    "2022-10-06T15:50:14+03:00"` in its body; True if it was set. The dongle has no
    network time of its own: the meter's clock is the network operator's, within
    seconds, and it is the one every reading is stamped with anyway."""
    if sample is None:
        return False
    b = sample.body
    i = b.find(b'"timestamp": "')
    if i < 0:
        return False
    t = bytes(b[i + 14 : i + 39]).decode()
    try:
        import machine
        import time

        n = int(t[20:22]) * 3600 + int(t[23:25]) * 60
        # time.mktime on MicroPython reads the tuple as UTC (the board has no zone)
        secs = time.mktime((int(t[:4]), int(t[5:7]), int(t[8:10]), int(t[11:13]), int(t[14:16]), int(t[17:19]), 0, 0))
        g = time.gmtime(secs - n if t[19] == "+" else secs + n)
        machine.RTC().datetime((g[0], g[1], g[2], g[6], g[3], g[4], g[5], 0))
    except Exception:  # noqa: BLE001 - no RTC (CPython), a time stamp cut short
        return False
    log.info("clock set from the meter: %s" % t)
    return True


def check(app):
    """Evaluate the alarms into `app.alarms`; log and publish them when they changed."""
    new = alarms(app)
    old = app.alarms
    app.alarms = new
    if new == old:
        return
    if new or old:
        log.warn("alarms: %s" % (", ".join(new) or "none"))
    m = app.mqtt
    if m is not None:  # retained: a client that subscribes later sees the present state
        m.outbox.put((m.base + "/alarms", ("[" + ", ".join('"%s"' % x for x in new) + "]").encode(), True))
        m._pump()


def watchdog(app, down):
    """A service went down (the supervisor stops feeding the watchdog) or came
    back. Logged; on a board with a watchdog also recorded as the reason for
    the reset it is about to cause (reset_reason in status after it), and the
    record cleared again if the service comes back first."""
    b = app.board
    if down is None:
        log.warn("watchdog: fed again, %s is back" % app.down)
        reason = ""
    else:
        reason = "watchdog: %s is down" % down
        log.error(reason + (", not fed" if b.spec.get("watchdog_s") else ""))
    if b.spec.get("watchdog_s"):
        import boardfile
        from mem import unload

        try:
            boardfile.write_bootinfo(b, b.boot_count, reason)
        finally:
            unload("boardfile")

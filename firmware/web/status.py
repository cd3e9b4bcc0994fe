"""/api/v1/status and /metrics, written piece by piece (imported per request, then dropped).

Strategy: both pages are larger than any buffer we keep (status ~10 KB,
metrics ~5 KB), so they are generators of short text pieces that the HTTP
server streams through its small chunk buffer: no page is ever built in one
piece. Each status section is its own small dict, written and forgotten
before the next. This module, p1.jsonout (status) and p1.table (metrics) are imported
only while a page is written.
"""

import gc

import log
from p1.bodyread import items
from p1.jsonout import dumps, pieces, quote

# config.SECRETS (config is not imported here: its code stays out of RAM)
SECRETS = ("wifi.password", "wifi.ap_password", "mqtt.password", "admin.password_hash")


def status(app):
    """Yield the JSON text of everything /api/v1/status shows, in pieces."""
    b = app.board
    s = app.hub.sample
    try:
        alloc = gc.mem_alloc()  # type: ignore[attr-defined]
    except AttributeError:  # CPython
        alloc = None
    yield '{"version": %s, "board": %s, "chip": %s, "device_id": %s' % (
        quote(app.version),
        quote(b.name),
        quote(b.chip),
        quote(app.device_id),
    )
    for k, v in (
        ("uptime_s", app.uptime_s()),
        ("free_heap", b.free_heap()),
        ("alloc_heap", alloc),
        ("reset_cause", b.reset_cause()),
        ("reset_reason", b.reset_reason),
        ("boot_count", b.boot_count),
        ("telegrams", app.hub.seq),
        ("last_telegram_age_s", None if s is None else s.age_ms() // 1000),
        ("restarts", app.restarts),
        ("memory_errors", log.memory_errors),
        ("config_errors", app.cfg_errors),
        ("board_errors", b.errors),
        ("log", log.recent),
    ):
        yield ", %s: %s" % (quote(k), dumps(v))
    yield ', "wifi": '
    yield from pieces(app.wifi_status())
    for name, fn in app.hub.sections():
        try:
            d = fn()
        except Exception as e:  # noqa: BLE001 - a broken section must not break status
            d = {"error": repr(e)}
        yield ", %s: " % quote(name)
        yield from pieces(d)  # a large section (meter, mqtt) never as one text
    cfg = app.cfg
    yield ', "config": {'
    first = True
    for k in sorted(cfg):  # section by section, secrets that are set shown as "***"
        v = cfg[k]
        if isinstance(v, dict):
            v = dict(v)
            for sk in v:
                if v[sk] and (k + "." + sk) in SECRETS:
                    v[sk] = "***"
        yield ("" if first else ", ") + quote(k) + ": "
        yield from pieces(v)
        first = False
    yield "}}"


def _family(name, kind, text):
    return "# HELP %s %s\n# TYPE %s %s\n" % (name, text, name, kind)


def metrics(app):
    """Yield Prometheus text exposition (0.0.4): readings with the meter's exact digits,
    counters. Every family has HELP and TYPE, and only families with samples appear."""
    s = app.hub.sample
    if s is not None:
        from p1.table import by_name  # (here: the status page does not need the table in RAM)

        yield _family("p1_reading", "gauge", "Latest meter reading, exact digits as sent")
        for name, v in items(s.body):
            e = by_name(name)
            if e is None or v[:1] == '"' or v == "null":
                continue
            yield 'p1_reading{name="%s",obis="%s",unit="%s"} %s\n' % (name, e[0], e[1] or "", v)
    p = app.pipeline
    fc = p.framer.counters
    yield _family("p1_telegrams_total", "counter", "Telegrams seen since boot, by outcome")
    for result, n in (
        ("accepted", p.accepted),
        ("crc_error", p.rejected_crc),
        ("no_crc", p.rejected_no_crc),
        ("parse_error", p.parse_errors),
        ("memory_error", p.memory_errors),
        ("truncated", fc.get("truncated", 0)),
        ("oversized", fc.get("oversized", 0)),
    ):
        yield 'p1_telegrams_total{result="%s"} %d\n' % (result, n)
    for name, kind, text, v in (
        ("p1_line_errors_total", "counter", "Malformed lines in accepted telegrams", p.line_errors),
        ("p1_skipped_bytes_total", "counter", "Bytes outside any telegram (line noise)", fc.get("skipped_bytes", 0)),
        ("p1_received_bytes_total", "counter", "Bytes read from the meter", p.bytes_in),
        ("p1_last_telegram_age_seconds", "gauge", "Seconds since the last accepted telegram",
         None if s is None else s.age_ms() // 1000),
        ("p1_uptime_seconds", "gauge", "Seconds since the firmware started", app.uptime_s()),
        ("p1_boots", "gauge", "Times the dongle has started", app.board.boot_count),
        ("p1_free_heap_bytes", "gauge", "Free MicroPython heap after a collection", app.board.free_heap()),
        ("p1_memory_errors_total", "counter", "Allocation failures caught and survived", log.memory_errors),
    ):  # fmt: skip
        if v is not None:
            yield _family(name, kind, text) + "%s %d\n" % (name, v)
    subs = app.hub.subs
    if subs:
        yield _family("p1_subscriber_dropped_total", "counter", "Readings a slow consumer missed")
        for sub in subs:
            yield 'p1_subscriber_dropped_total{name="%s"} %d\n' % (sub.name, sub.dropped)

"""/metrics: Prometheus text exposition (0.0.4), written piece by piece like the
status page (web.status); imported per request, then dropped, with p1.table."""

import log
from p1.bodyread import items


def _family(name, kind, text):
    return "# HELP %s %s\n# TYPE %s %s\n" % (name, text, name, kind)


def metrics(app):
    """Yield Prometheus text exposition (0.0.4): readings with the meter's exact digits,
    counters. Every family has HELP and TYPE, and only families with samples appear."""
    s = app.hub.sample
    if s is not None:
        from p1.table import by_name  # (dropped with this module: web.api unloads it)

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

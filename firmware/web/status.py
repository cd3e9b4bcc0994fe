"""/api/v1/status, written piece by piece (imported per request, then dropped).

Strategy: the page is larger than any buffer we keep (~10 KB), so it is a
generator of short text pieces that the HTTP server streams through its small
chunk buffer: it is never built in one piece. Each status section is its own
small dict, written and forgotten before the next. This module and
p1.jsonout are in RAM only while a page is written; /metrics is web.metrics,
a module of its own so that each page brings only its own code.
"""

import gc

import log
from p1.jsonout import dumps, pieces, quote

# config.SECRETS (config is not imported here: its code stays out of RAM)
SECRETS = ("wifi.password", "wifi.ap_password", "mqtt.password", "admin.password_hash")


def status(app):
    """Yield the JSON text of everything /api/v1/status shows, in pieces."""
    b = app.board  # (the alarms were checked before this module was loaded: web.api._page)
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
        ("watchdog_s", b.spec.get("watchdog_s") or 0),
        ("service_down", app.down),
        ("alarms", app.alarms),
        ("telegrams", app.hub.seq),
        ("last_telegram_age_s", None if s is None else s.age_ms() // 1000),
        ("restarts", app.restarts),
        ("memory_errors", log.memory_errors),
        ("config_errors", app.cfg_errors),
        ("board_errors", b.errors),
        ("log", log.recent),
    ):
        yield ", %s: %s" % (quote(k), dumps(v))
    yield ', "update": '
    yield _update(b.ota_root)
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


def _update(root):
    """The update state (otaboot's update.json, written by us in its key order) as JSON text."""
    if not root:
        return "null"
    from mem import loaded, unload_new

    before = loaded("fsutil")
    try:
        from fsutil import read

        d = read(root + "update.json", 1024)[0]
    finally:
        unload_new(before, "fsutil")
    return "null" if d is None else bytes(d).decode()

"""HTTP API: payload builders (pure) and the microdot routes (`make_app`).

The builders take the App (hub, board, config, pipeline) and return text, so
they run under the WebAssembly MicroPython without sockets; microdot is
imported only by `make_app()`.

  GET /                    the live page (static/index.html)
  GET /static/<path>       files of web/static
  GET /api/v1/reading      latest reading, exact values; 503 before the first
  GET /api/v1/telegram     the last accepted telegram, byte for byte; 503 before
  GET /api/v1/status       version, board, uptime, heap, Wi-Fi, counters, errors
  GET /metrics             Prometheus text
  GET /api/v1/events       SSE: one `reading` event per accepted telegram
Errors are JSON: {"error": "...", "status": N}.
"""

try:
    from collections import OrderedDict
except ImportError:  # pragma: no cover
    OrderedDict = dict

from p1.body import items
from p1.jsonout import dumps, quote
from p1.obis import by_name

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_SSE_QUEUE = const(4)  # samples queued per SSE client before the oldest drops
_SSE_HEARTBEAT_S = const(15)  # comment line that detects gone clients
_SSE_MAX_CLIENTS = const(4)
_MAX_CONTENT = const(2048)  # largest request body accepted (we take none)

JSON = "application/json"
TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "mjs": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "json": JSON,
    "svg": "image/svg+xml",
    "png": "image/png",
    "ico": "image/x-icon",
    "txt": "text/plain; charset=utf-8",
    "webmanifest": "application/manifest+json",
}

try:
    _HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "web"
except NameError:  # frozen module
    _HERE = "/web"
STATIC = _HERE + "/static"


def error_body(status, message):
    return '{"error": %s, "status": %d}' % (quote(message), status)


def reading_parts(sample, now=None):
    """The reading as JSON in three pieces, the telegram's one body not copied:
    timestamp and meter, `"age_s"`, then the named readings (exact digits)."""
    mv = memoryview(sample.body)
    c = sample.cut
    return mv[:c], (', "age_s": %d' % (sample.age_ms(now) // 1000)).encode(), mv[c:]


def reading_body(sample, now=None):
    """The reading JSON as one bytes object (tests; the server sends the parts)."""
    a, b, c = reading_parts(sample, now)
    return bytes(a) + b + bytes(c)


def status_dict(app):
    """Everything /api/v1/status shows."""
    import gc

    import config
    import log

    b = app.board
    s = app.hub.sample
    out = OrderedDict()
    out["version"] = app.version
    out["board"] = b.name
    out["chip"] = b.chip
    out["device_id"] = app.device_id
    out["uptime_s"] = app.uptime_s()
    out["free_heap"] = b.free_heap()
    try:
        out["alloc_heap"] = gc.mem_alloc()  # type: ignore[attr-defined]
    except AttributeError:  # CPython
        out["alloc_heap"] = None
    out["reset_cause"] = b.reset_cause()
    out["reset_reason"] = b.reset_reason
    out["boot_count"] = b.boot_count
    out["wifi"] = app.wifi_status()
    out["telegrams"] = app.hub.seq
    out["last_telegram_age_s"] = None if s is None else s.age_ms() // 1000
    out["config_errors"] = app.cfg_errors
    out["board_errors"] = b.errors
    out["log"] = log.recent
    sections = app.hub.status()
    for k in sections:
        out[k] = sections[k]
    out["config"] = config.public(app.cfg)
    return out


def status_body(app):
    return dumps(status_dict(app))


def _metric(lines, name, value, labels=""):
    lines.append("%s%s %s" % (name, "{" + labels + "}" if labels else "", value))


def metrics_text(app):
    """Prometheus text exposition: readings with the meter's exact digits, counters."""
    lines = []
    s = app.hub.sample
    if s is not None:
        lines.append("# HELP p1_reading Latest meter reading, exact digits as sent")
        lines.append("# TYPE p1_reading gauge")
        for name, v in items(s.body):
            e = by_name(name)
            if e is None or v[:1] == '"' or v == "null":
                continue
            labels = 'name="%s",obis="%s",unit="%s"' % (name, e[0], e[1] or "")
            _metric(lines, "p1_reading", v, labels)
    p = app.pipeline
    fc = p.framer.counters
    lines.append("# HELP p1_telegrams_total Telegrams seen since boot, by outcome")
    lines.append("# TYPE p1_telegrams_total counter")
    for result, n in (
        ("accepted", p.accepted),
        ("crc_error", p.rejected_crc),
        ("no_crc", p.rejected_no_crc),
        ("parse_error", p.parse_errors),
        ("truncated", fc.get("truncated", 0)),
        ("oversized", fc.get("oversized", 0)),
    ):
        _metric(lines, "p1_telegrams_total", n, 'result="%s"' % result)
    lines.append("# TYPE p1_line_errors_total counter")
    _metric(lines, "p1_line_errors_total", p.line_errors)
    lines.append("# TYPE p1_skipped_bytes_total counter")
    _metric(lines, "p1_skipped_bytes_total", fc.get("skipped_bytes", 0))
    lines.append("# TYPE p1_received_bytes_total counter")
    _metric(lines, "p1_received_bytes_total", p.bytes_in)
    if s is not None:
        lines.append("# TYPE p1_last_telegram_age_seconds gauge")
        _metric(lines, "p1_last_telegram_age_seconds", s.age_ms() // 1000)
    lines.append("# TYPE p1_uptime_seconds gauge")
    _metric(lines, "p1_uptime_seconds", app.uptime_s())
    lines.append("# TYPE p1_boot_count gauge")
    _metric(lines, "p1_boot_count", app.board.boot_count)
    heap = app.board.free_heap()
    if heap is not None:
        lines.append("# TYPE p1_free_heap_bytes gauge")
        _metric(lines, "p1_free_heap_bytes", heap)
    subs = app.hub.status()["subscribers"]["queues"]
    lines.append("# TYPE p1_subscriber_dropped_total counter")
    for sub in subs:
        _metric(lines, "p1_subscriber_dropped_total", sub["dropped"], 'name="%s"' % sub["name"])
    lines.append("")
    return "\n".join(lines)


def static_path(path):
    """web/static file for a URL path, or None if it is not a safe plain name."""
    if not path or len(path) > 64 or path[0] == "/" or "\\" in path:
        return None
    for part in path.split("/"):
        if not part or part[0] == ".":
            return None
    return STATIC + "/" + path


def content_type(path):
    ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if ext == "gz":
        ext = path[:-3].rsplit(".", 1)[-1].lower()
    return TYPES.get(ext, "application/octet-stream")


def make_app(app):
    """The microdot application serving `app` (an App)."""
    import asyncio

    from aio import watch_eof
    from microdot import Microdot, Request, Response
    from microdot.sse import with_sse

    try:  # a malformed request is a warning line, not a traceback on the console
        import microdot.microdot as _md

        def _short(e):
            import log

            log.warn("http: %s: %s" % (type(e).__name__, e))

        setattr(_md, "print_exception", _short)
    except (ImportError, AttributeError):
        pass
    Request.max_content_length = _MAX_CONTENT
    Request.max_body_length = _MAX_CONTENT
    Request.max_readline = 1024
    web = Microdot()
    # every handler is async: microdot would run a plain function in a thread
    # pool on CPython
    stats = {"requests": 0, "errors": 0, "sse_clients": 0, "sse_refused": 0}
    app.hub.add_status("http", lambda: stats)

    def js(body, status=200):
        return Response(body, status, {"Content-Type": JSON, "Cache-Control": "no-store"})

    def err(status, message):
        stats["errors"] += 1
        return js(error_body(status, message), status)

    @web.before_request
    async def count(req):
        stats["requests"] += 1

    @web.errorhandler(400)
    async def bad_request(req):
        return err(400, "bad request")

    @web.errorhandler(404)
    async def not_found(req):
        return err(404, "not found")

    @web.errorhandler(405)
    async def not_allowed(req):
        return err(405, "method not allowed")

    @web.errorhandler(413)
    async def too_large(req):
        return err(413, "request too large")

    @web.errorhandler(500)
    async def server_error(req):
        return err(500, "internal error")

    @web.errorhandler(Exception)
    async def crashed(req, e):
        import log

        log.exc(e, "http")
        return err(500, "internal error")

    def _file(path):
        import os

        try:
            os.stat(path)
        except OSError:
            return err(404, "not found")
        return Response.send_file(path, content_type=content_type(path), max_age=60)

    @web.get("/")
    async def index(req):
        return _file(STATIC + "/index.html")

    @web.get("/static/<path:path>")
    async def static(req, path):
        p = static_path(path)
        if p is None:
            return err(400, "bad path")
        return _file(p)

    @web.get("/api/v1/reading")
    async def reading(req):
        s = app.hub.sample
        if s is None:
            return err(503, "no telegram yet")
        return js(reading_body(s))

    @web.get("/api/v1/telegram")
    async def telegram(req):
        s = app.hub.sample
        if s is None:
            return err(503, "no telegram yet")
        return Response(
            s.raw,
            200,
            {"Content-Type": "text/plain; charset=iso-8859-1", "Cache-Control": "no-store"},
        )

    @web.get("/api/v1/status")
    async def status(req):
        return js(status_body(app))

    @web.get("/metrics")
    async def metrics(req):
        return Response(
            metrics_text(app), 200, {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    async def _events(req, sse):
        sub = app.hub.subscribe(_SSE_QUEUE, "sse")
        stats["sse_clients"] += 1
        watcher = _watch_eof(req)
        try:
            s = app.hub.sample
            if s is not None:
                await sse.send(reading_body(s).decode(), event="reading", event_id=str(s.seq))
            while True:
                # microdot's SSE queue is unbounded: let ours drop instead
                while len(sse.queue) > 1:
                    await asyncio.sleep(0.2)
                try:
                    s = await asyncio.wait_for(sub.get(), _SSE_HEARTBEAT_S)
                except asyncio.TimeoutError:
                    await sse.send("keepalive", comment=True)
                    continue
                await sse.send(reading_body(s).decode(), event="reading", event_id=str(s.seq))
        finally:
            if watcher is not None:
                watcher.cancel()
            stats["sse_clients"] -= 1
            app.hub.unsubscribe(sub)

    def _watch_eof(req):
        """A task that cancels this SSE handler when the client hangs up, so its
        subscription goes at once rather than at the next write."""
        reader = req.sock[0] if req.sock else None
        me = asyncio.current_task()
        if reader is None or me is None:
            return None

        return asyncio.create_task(watch_eof(reader, me))

    events_sse = with_sse(_events)

    @web.get("/api/v1/events")
    async def events(req):
        if stats["sse_clients"] >= _SSE_MAX_CLIENTS:
            stats["sse_refused"] += 1
            return err(503, "too many event clients")
        return await events_sse(req)

    return web

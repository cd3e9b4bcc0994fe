"""HTTP API: the routes, on our own small server (`web.server`).

  GET /                    the live page (static/index.html)
  GET /static/<path>       files of web/static
  GET /api/v1/reading      latest reading, exact values; 503 before the first
  GET /api/v1/telegram     the last accepted telegram, byte for byte; 503 before
  GET /api/v1/status       version, board, uptime, heap, Wi-Fi, counters, errors
  GET /metrics             Prometheus text
  GET /api/v1/events       SSE: one `reading` event per accepted telegram
Errors are JSON: {"error": "...", "status": N}.

Every reading goes out as the telegram's one JSON body (`Sample.body`) in
pieces, never copied: up to the meter, `"age_s"`, the rest. Status and
metrics are generators of `web.status`, imported per request and dropped
after: their code costs RAM only while a page is written.
"""

import asyncio

from mem import loaded, unload_new
from web.server import JSON, Server, error, file, router

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_SSE_QUEUE = const(2)  # samples queued per SSE client before the oldest drops
_SSE_HEARTBEAT_S = const(15)  # comment line that detects gone clients
NOSTORE = "Cache-Control: no-store\r\n"
TEXT = "text/plain; charset=utf-8"
# file extension -> content type
_TYPES = (
    "|html text/html; charset=utf-8|js text/javascript; charset=utf-8|mjs text/javascript; charset=utf-8"
    "|css text/css; charset=utf-8|json application/json|svg image/svg+xml|png image/png|ico image/x-icon"
    "|txt text/plain; charset=utf-8|webmanifest application/manifest+json|"
)

try:
    _HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "web"
except NameError:  # frozen module
    _HERE = "/web"
STATIC = _HERE + "/static"


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
    i = _TYPES.find("|" + ext + " ") if ext else -1
    if i < 0:
        return "application/octet-stream"
    i += len(ext) + 2
    return _TYPES[i : _TYPES.find("|", i)]


_COLD = ("web.status", "p1.table", "p1.jsonout")


def _cold(name, app):
    """A generator of `web.status.<name>(app)` that unloads, when it is done, the
    modules it brought in."""
    before = loaded(*_COLD)
    try:
        for piece in getattr(__import__("web.status", None, None, [name]), name)(app):
            yield piece
    finally:
        unload_new(before, *_COLD)


def make_server(app):
    """The HTTP server of `app` (an App): `await srv.start(host, port)`, `srv.close()`."""
    hub = app.hub

    def index(req):
        return file(req, STATIC + "/index.html", content_type("index.html"), "Cache-Control: max-age=60\r\n")

    def static(req):
        p = static_path(req.path[8:])
        if p is None:
            return error(400, "bad path")
        return file(req, p, content_type(p), "Cache-Control: max-age=60\r\n")

    def reading(req):
        s = hub.sample
        if s is None:
            return error(503, "no telegram yet", NOSTORE)
        return 200, JSON, reading_parts(s), NOSTORE

    def telegram(req):
        s = hub.sample
        if s is None:
            return error(503, "no telegram yet", NOSTORE)
        return 200, "text/plain; charset=iso-8859-1", s.raw, NOSTORE

    def status(req):
        return 200, JSON, _cold("status", app), NOSTORE

    def metrics(req):
        return 200, "text/plain; version=0.0.4; charset=utf-8", _cold("metrics", app), NOSTORE

    def events(req):
        return 200, "text/event-stream", _events, NOSTORE

    async def _events(req):
        sub = hub.subscribe(_SSE_QUEUE, "sse")
        try:
            s = hub.sample
            while True:
                if s is not None:
                    a, b, c = reading_parts(s)
                    await req.send((b"event: reading\nid: %d\ndata: " % s.seq, a, b, c, b"\n\n"))
                try:
                    s = await asyncio.wait_for(sub.get(), _SSE_HEARTBEAT_S)
                except asyncio.TimeoutError:
                    s = None
                    await req.send(b": keepalive\n\n")
        finally:  # a hang-up cancels us at once: the subscription goes with it
            hub.unsubscribe(sub)

    srv = Server(
        router(
            {
                "/": index,
                "/api/v1/reading": reading,
                "/api/v1/telegram": telegram,
                "/api/v1/status": status,
                "/metrics": metrics,
                "/api/v1/events": events,
            },
            (("/static/", static),),
        )
    )
    hub.add_status("http", lambda: srv.stats)
    return srv

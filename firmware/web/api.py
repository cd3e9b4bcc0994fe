"""HTTP API: the routes, on our own small server (`web.server`).

  GET /                    the live page (static/index.html)
  GET /static/<path>       files of web/static
  GET /api/v1/reading      latest reading, exact values; 503 before the first
  GET /api/v1/telegram     the last accepted telegram, byte for byte; 503 before
  GET /api/v1/status       version, board, uptime, heap, Wi-Fi, counters, errors
  GET /metrics             Prometheus text
  GET /api/v1/events       SSE: one `reading` event per accepted telegram
  GET /api/v1/history      energy per 15 min, hour, day, month (histread, cold; docs/HISTORY.md)
  GET /api/v1/tariff       the power-tariff monitor (tariff, cold; docs/TARIFF.md)
  /api/v1/relays           load management: GET the relays, POST an override
                           (web.relays, cold; docs/LOADCONTROL.md)
  /api/v1/config, login, logout, password, mqtt/test, wifi/scan: settings, the admin
                           login, by `web.settings` (cold; see there)
  POST /api/v1/update      a bundle streamed to flash, switched to at the next boot (web.update,
                           cold; admin login; docs/UPDATE.md)
  GET /api, /api/v1/data   HomeWizard's local API v1, with http.homewizard (web.homewizard)
With http.auth_readings every path above but the page needs a login (401).
With http.cors_origin every response carries Access-Control-Allow-Origin and
OPTIONS (a browser's preflight) is answered for every path (web.cold.preflight).
Errors are JSON: {"error": "...", "status": N}; another path: 404; another
method than GET or HEAD: 405 (with Allow).

Every reading goes out as the telegram's one JSON body (`Sample.body`) in
pieces, never copied: up to the meter, `"age_s"`, the rest. Status and
metrics are generators of `web.status` and `web.metrics`, imported per
request and dropped after: their code costs RAM only while a page is written
(and only one at a time: `mem.turn`); static files are
served by `web.files` (content types, path checks, the .gz sibling) the same
way. One handler tells the paths apart (no router, no function per route:
each costs RAM).
"""

from mem import done, loaded, turn, unload_new
from web.server import JSON, Server, cold, error

NOSTORE = "Cache-Control: no-store\r\n"
# the paths below /api/v1/, by their number in handle() less 2 (short names: no str object each)
_API = ("reading", "telegram", "status", "events")
_SET = ("config", "login", "logout", "password", "mqtt/test", "wifi/scan")  # web.settings

try:
    STATIC = (__file__.rsplit("/", 1)[0] if "/" in __file__ else "web") + "/static"
except NameError:  # frozen module
    STATIC = "/web/static"


def reading_parts(sample):
    """The reading as JSON in three pieces, the telegram's one body not copied:
    timestamp and meter, `"age_s"`, then the named readings (exact digits)."""
    mv = memoryview(sample.body)
    c = sample.cut
    return mv[:c], b', "age_s": %d' % (sample.age_ms() // 1000), mv[c:]


_COLD = ("web.status", "web.metrics", "web.homewizard", "p1.table", "p1.jsonout", "p1.bodyread")


def _cold(name, app, mod="web.status"):
    """A generator of `<mod>.<name>(app)` that unloads, when it is done, the
    modules it brought in."""
    before = loaded(*_COLD)
    try:
        for piece in getattr(__import__(mod, None, None, [name]), name)(app):
            yield piece
    finally:
        unload_new(before, *_COLD)
        done()


async def _slot(req, app, mod, deps):
    """`mod`.handle(req, app) (awaited), in the cold slot (mem.turn) like the status
    and metrics pages; what of `deps` it brought in is unloaded after. web.settings:
    ~15 KB of code while it runs (32-bit); web.update: the body streamed to flash;
    web.relays: load management."""
    await turn()
    before = loaded(*deps)
    try:
        r = __import__(mod, None, None, ["handle"]).handle(req, app)
        return r if isinstance(r, tuple) else await r
    finally:
        unload_new(before, *deps)
        done()


_HIST = ("histread", "history", "histcore", "fsutil", "web.cold", "tariff", "tariffrule")


async def _history(req, app):
    """GET /api/v1/history or /api/v1/tariff by histread.serve (with history, fsutil,
    tariff: ~10 KB of code while it runs, 32-bit), in the cold slot."""
    await turn()
    before = loaded(*_HIST)
    try:
        return __import__("histread").serve(req, app, before)
    except BaseException:
        unload_new(before, *_HIST)
        done()
        raise


_UPD = ("web.update", "otaboot", "fsutil", "web.auth")
_REL = ("web.relays", "web.auth", "p1.jsonout", "loadscold", "loadstate")


async def _page(name, app, ctype, mod):
    """The response of a page of `mod`, once no other cold job runs (mem.turn)."""
    await turn()
    if mod == "web.status":
        # the alarms as of now (and on MQTT if they changed), before the page's code is
        # loaded: `health` and `web.status` + `p1.jsonout` never in RAM at once (~2.4 KB
        # less while the check runs, 32-bit)
        app._health("check")
    return 200, ctype, _cold(name, app, mod), NOSTORE


def cors(srv, origin):
    """Send `Access-Control-Allow-Origin: origin` with every response ("": none)."""
    srv.head = "Access-Control-Allow-Origin: %s\r\n" % origin if origin else ""


def make_server(app):
    """The HTTP server of `app` (an App): `await srv.start(host, port)`, `srv.close()`."""
    hub = app.hub

    def handle(req):
        p = req.path
        if req.method == "OPTIONS" and req.srv.head:  # a CORS preflight (http.cors_origin)
            return cold("preflight")
        i = -1  # the route: 0 a static file ("/": the page), 2 to 5 /api/v1/..., 6 /metrics
        if p == "/" or p.startswith("/static/"):
            i = 0
        elif p == "/metrics":
            i = 6
        elif p.startswith("/api/v1/") and p[8:] in _API:
            i = _API.index(p[8:]) + 2
        elif (p == "/api" or p == "/api/v1/data") and app.cfg["http"]["homewizard"]:
            i = 7
        if i < 0:
            if p == "/api/v1/history" or p == "/api/v1/tariff":
                if req.method != "GET":
                    return error(405, None, "Allow: GET\r\n")
                if app.cfg["http"].get("auth_readings") and not cold("ok", req, app, mod="web.auth"):
                    return error(401, "login required")
                return _history(req, app)
            if p == "/api/v1/relays":
                return _slot(req, app, "web.relays", _REL)
            if p.startswith("/api/v1/") and p[8:] in _SET:
                return _slot(req, app, "web.settings", ("web.settings",))
            if p == "/api/v1/update":
                return _slot(req, app, "web.update", _UPD)
            if app.wifi is not None and app.wifi.ap is not None:  # captive portal (net.dns): setup
                return 302, "text/plain", "", "Location: /static/settings.html\r\n"
            return error(404)
        if req.method != "GET" and req.method != "HEAD":
            return error(405, None, "Allow: GET, HEAD\r\n")
        if i > 0 and app.cfg["http"].get("auth_readings") and not cold("ok", req, app, mod="web.auth"):
            return error(401, "login required")
        s = hub.sample
        if i == 0:  # by web.files (rarely asked for)
            return cold("static", req, STATIC, p[8:] if len(p) > 1 else "index.html", mod="web.files")
        if i < 4:  # the reading, the telegram
            if s is None:
                return error(503, "no telegram yet", NOSTORE)
            if i == 2:
                return 200, JSON, reading_parts(s), NOSTORE
            return 200, "text/plain; charset=iso-8859-1", s.raw, NOSTORE
        if i == 4 or i == 6 or i == 7:  # (HEAD: no body, no wait)
            c = "text/plain; version=0.0.4; charset=utf-8" if i == 6 else JSON
            n = "status" if i == 4 else "metrics" if i == 6 else "data" if len(p) > 4 else "device"
            m = "web.status" if i == 4 else "web.metrics" if i == 6 else "web.homewizard"  # (HomeWizard: opt-in)
            if req.method == "HEAD":
                return 200, c, _cold(n, app, m), NOSTORE
            return _page(n, app, c, m)
        return 200, "text/event-stream", events, NOSTORE  # the server sends the keep-alive comments

    async def events(req):
        sub = hub.subscribe(2, "sse")  # 2 samples queued; more: the oldest drops
        try:
            s = hub.sample
            while True:
                if s is not None:
                    x = reading_parts(s)
                    await req.send((b"event: reading\nid: %d\ndata: " % s.seq, x[0], x[1], x[2], b"\n\n"))
                s = await sub.get()
        finally:  # a hang-up cancels us (within the server's tick): the subscription goes with it
            if sub in hub.subs:  # (unless the hub found it dead)
                hub.subs.remove(sub)

    srv = Server(handle)
    srv.upload = "/api/v1/update"
    cors(srv, app.cfg["http"].get("cors_origin"))
    hub.add_status("http", srv.stats.copy)
    return srv

"""The rarely used parts of web.server: reason phrases and error texts,
percent-decoding, query strings, the CORS preflight. Call them through
`web.server.cold(name, *args)`, or import what you need inside the function
that needs it and drop the module after with `mem.unload("web.cold")`
(nothing imports it at module level), so its code takes RAM only while it
runs:

    from web.cold import args
    d = args(req.qs)        # {"n": "10", "q": "a b"}
    unload("web.cold")

Static files are in `web.files`, cold the same way (`cold(name, *args, mod="web.files")`).
"""

# "|", each status, its reason phrase (RFC 9110), and "/" the short text of an
# error (its JSON "error") where that is not the phrase in lower case
_TEXT = (
    "|200OK|201Created|204No Content|301Moved Permanently|302Found|304Not Modified|400Bad Request"
    "|401Unauthorized/login required|403Forbidden|404Not Found|405Method Not Allowed|411Length Required"
    "|413Content Too Large/request too large|414URI Too Long|422Unprocessable Content/invalid"
    "|429Too Many Requests|431Request Header Fields Too Large/headers too large"
    "|500Internal Server Error/internal error|503Service Unavailable/unavailable|"
)


def reason(status, short=0):
    """The reason phrase of a status for the status line ("" for one not
    listed, which RFC 9112 allows); short=1: the short text of an error."""
    i = _TEXT.find("|%d" % status) + 4
    if i < 4:
        return "error" if short else ""
    r, _, s = _TEXT[i : _TEXT.find("|", i)].partition("/")
    return (s or r.lower()) if short else r


def text(status):
    """The short text of an error status ("error" for one not listed)."""
    return reason(status, 1)


def unquote(s):
    """Percent-decode a str; ValueError on a bad escape or bytes that are not UTF-8."""
    if "%" not in s:
        return s
    p = s.encode().split(b"%")
    out = bytearray(p[0])
    for x in p[1:]:
        if len(x) < 2:
            raise ValueError(400)
        out.append(int(x[:2], 16))
        out += x[2:]
    return bytes(out).decode()


def args(qs):
    """The query (str, without "?") as a dict, "%" and "+" decoded; a name
    without "=" gets ""; a repeated name: the last wins. ValueError on a bad
    escape or bytes that are not UTF-8."""
    d = {}
    for x in qs.split("&"):
        if x:
            k, _, v = x.replace("+", " ").partition("=")
            d[unquote(k)] = unquote(v)
    return d


def small(writer):
    """CPython (net.tcp_raw): 4 KB send buffers, so a client that does not
    read shows soon (its write deadline)."""
    import socket

    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_SNDBUF"), 4096)
    writer.transport.set_write_buffer_limits(high=4096)


def make_room(srv):
    """At the connection cap: cancel the oldest connection that waits for a
    request (kept alive after a response, or new and silent for `fresh_ms`);
    False if there is none."""
    from clock import ticks_add, ticks_diff, ticks_ms

    late = ticks_add(ticks_ms(), srv.idle_ms - srv.fresh_ms)
    for x in srv._live:
        if x.idle == 2 or x.idle == 1 and ticks_diff(late, x.deadline) >= 0:
            x.idle = 0
            x.task.cancel()
            return True
    return False


def close(srv):
    """Server.close()."""
    if srv.server:
        srv.server.close()
        srv._tick.cancel()
    srv.server = srv.sock = None  # (the cancelled accept loop closes the socket)
    for r in srv._live:
        try:
            r.task.cancel()
        except RuntimeError:  # MicroPython: a handler closing its own server
            pass


async def relisten(srv, host, port):
    """MicroPython: listen again after the accept loop died."""
    import asyncio
    import gc

    import log
    from web.server import Server

    # The dead accept loop's frame still holds the listening socket: close it
    # (the device's sockets would close when collected, the Unix port's never:
    # EADDRINUSE on every try, seen under memory pressure) and drop the server.
    if srv.sock is not None:
        srv.sock.close()
        srv.sock = None
    srv.server = False  # (not None: the reaper calls this again if it fails half-way)
    # A MemoryError inside asyncio's IOQueue._enqueue (its entry stored, poller.register
    # failed) leaves an entry that holds the socket for ever: the port stayed taken
    # after the heap came back (seen with the recovery test's hog). Entries whose
    # tasks have ended wait for nothing: drop them and close their sockets.
    core = getattr(asyncio, "core", None)
    # asyncio keeps the last task that died unawaited (the accept loop) in
    # core._exc_context for its exception handler: its frame holds the socket too.
    c = getattr(core, "_exc_context", None)
    if c:
        c["future"] = c["exception"] = None
    q = getattr(core, "_io_queue", None)
    m = getattr(q, "map", {})
    for k in list(m):
        e = m[k]
        if (e[0] is None or e[0].done()) and (e[1] is None or e[1].done()):
            del m[k]
            try:
                q.poller.unregister(e[2])  # pyright: ignore[reportOptionalMemberAccess]
            except Exception:  # noqa: BLE001 - it never got registered
                pass
            e[2].close()
    while True:  # until it listens: nothing else would try again
        gc.collect()
        try:
            await Server.start(srv, host, port)  # (net.tcp_raw's start() takes no address)
            break
        except Exception as e:  # noqa: BLE001 - EADDRINUSE until the old socket is closed; MemoryError
            try:
                log.warn("http: listen again: %r" % (e,))
            except MemoryError:  # (the text itself): this loop must go on
                pass
            await asyncio.sleep(1)
    log.warn("http: listening again")


def go_on(writer):
    """The interim response to "Expect: 100-continue" (the body is awaited)."""
    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")


def preflight():
    """The answer to a CORS preflight (OPTIONS) when `http.cors_origin` is set
    (web.api; the server adds Access-Control-Allow-Origin to every response):
    the methods and request headers a dashboard on another origin may use.
    200, not 204: a 204 must not carry the Content-Length the server sends."""
    return (
        200,
        "text/plain",
        None,
        "Access-Control-Allow-Methods: GET, HEAD, PUT, PATCH, POST\r\n"
        "Access-Control-Allow-Headers: Authorization, Content-Type\r\nAccess-Control-Max-Age: 600\r\n",
    )

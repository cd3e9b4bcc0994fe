"""A small HTTP/1.1 server on asyncio streams, the same on MicroPython and CPython.

Strategy: one task per connection, with one `Request` reused for every request
on it (keep-alive). The head is read with `reader.read()` into the connection's
bytes and parsed in place by offsets (MicroPython's `readline()` grows without
bound), so a line, the number of header lines and the body all have hard
limits; only the headers named in `Server.keep` are stored. Every response
goes out through ONE bytearray of the server (`out_size`, a TCP segment): head
and a small body leave in one write (no Nagle stall between them); a larger
body, a generator (chunked) or a file is copied through it and drained each
time it fills. One buffer serves every connection because it is only filled
and handed to `writer.write()` (which sends or copies it) between two awaits.
Deadlines: a connection has at most one (`Request.deadline`, in ticks) and one
task of the server cancels a connection whose deadline passed: waiting for a
request (`idle_ms`), reading the rest of it (`read_ms`), each drain of the
response (`write_ms`). No `wait_for` per read. RAM: this module is what every
request runs; what few requests need (error texts, percent-decoding, making
room at the connection cap, 100-continue, listening again, close) is in
`web.cold`, imported for the call and dropped after (`_cold`).

    async def handler(req):                    # or web.server.router({...})
        return 200, "text/plain", "hello"      # (status, content type, body[, extra headers])

    srv = Server(handler)
    await srv.start("0.0.0.0", 80)
    srv.close()

A body is one of: bytes / bytearray / memoryview (of bytes) / str
(Content-Length); a tuple of those, written one after another, never joined
(Content-Length); any other iterable (a list too), e.g. a generator of
str/bytes pieces (Transfer-Encoding: chunked, through the one buffer); an open
binary file (`file()` opens it: Content-Length from its size, streamed, closed
after); None (empty); or an async callable `fn(req)`: a stream (Server-Sent
Events). For a stream the server counts it (`max_streams`, checked and counted
before anything is awaited, else 503), watches for the client hanging up (then
cancels `fn` at once: CancelledError inside it), writes the head and closes the
connection when `fn` returns; `fn` writes with `await req.send(x)`.
Extra headers are one str of complete lines: "Cache-Control: no-store\\r\\n".
A handler returns the response, or an awaitable of it (an `async def`). One
that raises gets a 500 JSON error (logged with `log.exc`); the connection goes
on. The reason phrase is "OK" below 400, else "N/A" (clients ignore it; the
JSON body says what went wrong).
"""

import asyncio

import log
from aio import sleep_ms, watch_eof
from clock import ticks_add, ticks_diff, ticks_ms
from mem import unload

JSON = "application/json"
_PIECE = (bytes, bytearray, memoryview, str)  # one tuple, not one per isinstance call


def _cold(name, *a):
    """web.cold's `name`(*a): rarely used code, imported for the call and dropped
    after (`mem.unload`, which must also drop the package's attribute: see
    docs/HTTP_SERVER.md), so it takes no RAM in between."""
    f = getattr(__import__("web.cold", None, None, (name,)), name)
    unload("web.cold")
    return f(*a)


def error(status, msg=None, extra=""):
    """A JSON error response {"error": msg, "status": status}; msg (plain text,
    no quotes) defaults to the status's short text."""
    return status, JSON, '{"error": "%s", "status": %d}' % (msg or _cold("text", status), status), extra


def file(req, path, ctype, extra=""):
    """A response streaming `path` from flash, or its pre-gzipped sibling
    `path.gz` when the client accepts gzip; a 404 error when neither opens."""
    if "gzip" in req.headers.get("accept-encoding", ""):
        try:
            return 200, ctype, open(path + ".gz", "rb"), "Content-Encoding: gzip\r\n" + extra
        except OSError:
            pass
    try:
        return 200, ctype, open(path, "rb"), extra
    except OSError:
        return error(404)


def router(routes, prefixes=()):
    """A handler dispatching on the path.

    routes: {path: handler} (GET and HEAD) or {path: {"GET": h, "POST": h2}};
    prefixes: ((prefix, handler), ...) tried in order for other paths (GET, HEAD).
    Unknown path: 404; a method the path does not take: 405 with Allow.
    """

    def handle(req):  # the route's coroutine itself, or an error response
        m = req.method
        h = routes.get(req.path)
        for p in prefixes:
            if h is None and req.path.startswith(p[0]):
                h = p[1]
        if h is None:
            return error(404)
        a = ("GET", "HEAD")
        if isinstance(h, dict):
            a = h
            h = h.get(m) or m == "HEAD" and h.get("GET")
        elif m not in a:
            h = None
        return h(req) if h else error(405, None, "Allow: %s\r\n" % ", ".join(a))

    return handle


class Request:
    """The current request of one connection (the object is reused on keep-alive).

    method, path (percent-decoded), qs (the raw query, no "?"; `web.cold.args`
    parses it): str; headers: {lower-case name: str} for the names in
    `Server.keep` only; body: bytes (Content-Length; b"" without); v10: an
    HTTP/1.0 request; close: the connection closes after this response (a
    handler may set it); reader, writer: the connection's streams.
    """

    # set per request by the server (declared for type checkers; no bytecode)
    path: str
    qs: str
    headers: dict
    body: bytes
    v10: bool
    close: bool

    def __init__(self, srv, reader, writer):
        self.srv = srv
        self.reader = reader
        self.writer = writer
        self.task = asyncio.current_task()
        self.n = 0  # bytes of this response in the server's buffer
        self.cs = -1  # where the open chunk's size goes in it; -1: not chunked
        self.idle = 1  # 1: a new connection, 2: kept alive, waiting; 3: in a drain; else 0
        self.method = ""
        # deadline (set before the server looks at it): ticks_ms after which the
        # server cancels the task; None: none

    async def send(self, x, end=True):
        """Write x (bytes-like or str, or a tuple/list/iterator of them) and drain
        it within `write_ms`: how a stream writes. With end=False (the server's
        own calls) x is only copied into the buffer, written each time it fills."""
        b = self.srv._b
        m = len(b) - 7  # 7 bytes stay free to end a chunk
        if isinstance(x, _PIECE):
            x = (x,)
        for p in x:
            if isinstance(p, str):
                p = p.encode()
            i = 0
            while i < len(p):
                if self.n >= m:
                    await self._flush()
                k = min(m - self.n, len(p) - i)
                b[self.n : self.n + k] = p if k == len(p) else memoryview(p)[i : i + k]
                self.n += k
                i += k
        if end:
            await self._flush()

    async def _flush(self, end=False):
        """Write what the buffer holds (ending the open chunk; with end, the
        last chunk too) and drain it within `write_ms`."""
        b = self.srv._b
        n = self.n
        cs = self.cs
        self.n = 0
        if cs >= 0:  # the chunk's size goes into the 5 bytes kept for it
            d = n - cs - 5
            b[cs : cs + 5] = b"%03x\r\n" % d
            b[n : n + 7] = b"\r\n0\r\n\r\n"
            n += 7 if end and d else 2  # an empty chunk can only be the last: "000\r\n\r\n"
            self.cs = -end  # -1 after the last chunk, else 0: the next one begins the buffer
            self.n = 5 + 5 * self.cs
        if n:
            w = self.writer
            # CPython's transport may keep a view of what it is given (3.12+): a copy
            w.write(b[:n] if hasattr(w, "transport") else memoryview(b)[:n])
            self.deadline = ticks_add(ticks_ms(), self.srv.write_ms)
            self.idle = 3
            await w.drain()
            self.idle = 0
            self.deadline = None


class Server:
    """HTTP/1.1 server; the limits below are class attributes a test may change."""

    max_conns = 6  # open connections (ESP32 lwIP has ~10 sockets); more: 503, closed
    max_streams = 4  # stream responses (SSE) at once; more: 503
    max_line = 1024  # request line (longer: 414) and each header line (431)
    max_headers = 24  # header lines; more: 431
    max_body = 2048  # Content-Length accepted; more: 413
    idle_ms = 8000  # a new or kept-alive connection waits this long for a request
    read_ms = 10000  # then the head and body must arrive within this
    write_ms = 10000  # each drain of a response must end within this
    tick_ms = 500  # how often deadlines are checked
    fresh_ms = 1000  # a new connection silent this long may make room for another
    out_size = 1440  # the output buffer: one TCP segment (lwIP's TCP_MSS); 64..4096
    backlog = 4
    # header names stored, lower case, each between colons; a name found inside
    # another must come before it (the server itself reads the first five)
    keep = (
        b":content-length:transfer-encoding:connection:expect:accept:accept-encoding:content-type"
        b":authorization:cookie:if-none-match:"
    )

    def __init__(self, handler):
        self.handler = handler
        self.server = None
        self.stats = {"requests": 0, "errors": 0, "conns": 0, "refused": 0, "streams": 0, "timeouts": 0}
        self._live = []  # Requests of the open connections
        self._b = bytearray(self.out_size)  # the output buffer

    async def start(self, host, port):
        """Listen (OSError if the port is taken) and start the deadline task."""
        self.server = await asyncio.start_server(self._conn, host, port, backlog=self.backlog)
        self._tick = asyncio.create_task(self._reap(host, port))

    def close(self):
        """Stop listening and close every connection."""
        _cold("close", self)

    async def _reap(self, host, port):
        while True:
            try:
                await sleep_ms(self.tick_ms)
                for r in self._live:
                    if r.deadline is not None and ticks_diff(ticks_ms(), r.deadline) >= 0:
                        r.deadline = None
                        r.idle = 0  # not to be evicted as well
                        self.stats["timeouts"] += 1
                        r.task.cancel()
                # MicroPython: an exception (MemoryError) ends its accept loop for
                # good; listen again (the old socket goes with its finaliser)
                if getattr(self.server, "task", self._tick).done():  # (CPython: no such task)
                    return await _cold("relisten", self, host, port)
            except Exception as e:  # noqa: BLE001 - this task must not end
                _log(e)

    async def _conn(self, reader, writer):
        st = self.stats
        r = None
        try:
            r = Request(self, reader, writer)
            if st["conns"] >= self.max_conns and not _cold("make_room", self):
                st["refused"] += 1
                r.close = True
                return await self._respond(r, error(503, "too many connections"))
            st["conns"] += 1
            self._live.append(r)
            buf = b""  # bytes read, not yet parsed from pos on
            pos = 0
            while True:
                # read one request into r: lines are found and parsed in buf by
                # offsets, without awaiting
                r.deadline = ticks_add(ticks_ms(), self.idle_ms)
                r.method = ""  # (not a HEAD before its request line)
                r.headers = h = {}
                r.body = b""
                lines = need = -1  # header lines seen (-1: before the request line); the body's length
                status = 400  # why a malformed request is refused (ValueError)
                try:
                    while True:
                        if need < 0:
                            e = buf.find(10, pos)  # 10: "\n"
                            if (len(buf) if e < 0 else e) - pos > self.max_line:
                                status = 431 if lines >= 0 else 414
                                raise ValueError
                            if e >= 0:
                                s = pos
                                pos = e + 1
                                if buf[e - 1] == 13:  # (e == pos: the "\n" before, or e < pos now)
                                    e -= 1
                                if lines < 0:
                                    if e > s:  # the request line (empty lines before it are ignored)
                                        r.method, t, v = buf[s:e].decode().split(" ")  # else ValueError
                                        r.v10 = v == "HTTP/1.0"
                                        if not v.startswith("HTTP/1.") or not t.startswith("/"):
                                            raise ValueError
                                        t, _, r.qs = t.partition("?")
                                        r.path = _cold("unquote", t) if "%" in t else t
                                        lines = 0
                                        r.deadline = ticks_add(ticks_ms(), self.read_ms)
                                elif e > s:  # a header line
                                    lines += 1
                                    c = buf.find(58, s, e)  # 58: ":"
                                    if lines > self.max_headers:
                                        status = 431
                                        raise ValueError
                                    if c <= s or buf[s] < 33 or buf[c - 1] < 33:  # no name, folded, space
                                        raise ValueError
                                    k = buf[s:c].lower()
                                    i = self.keep.find(k)
                                    if self.keep[i - 1] == 58 == self.keep[i + len(k)]:  # (not found: keep[-2])
                                        h[k.decode()] = buf[c + 1 : e].strip().decode()
                                else:  # the end of the head
                                    r.close = r.v10 or "close" in h.get("connection", "").lower()
                                    c = h.get("content-length", "0")
                                    if "transfer-encoding" in h or (
                                        "content-length" not in h and r.method.startswith("P")  # POST, PUT, PATCH
                                    ):
                                        status = 411  # (no chunked request bodies)
                                        raise ValueError
                                    if not c.isdigit():
                                        raise ValueError
                                    need = int(c)
                                    if need > self.max_body:
                                        status = 413
                                        raise ValueError
                                    if "expect" in h:  # 100-continue (allowed even once the body is here)
                                        _cold("go_on", writer)
                                continue
                        elif len(buf) - pos >= need:
                            break
                        more = await reader.read(need + pos - len(buf) if need > 512 else 512)
                        if not more:
                            return
                        r.idle = 0
                        buf = buf[pos:] + more if pos < len(buf) else more
                        pos = 0
                    if need:  # (a body read after its head is the whole buffer: no copy)
                        r.body = buf if pos == 0 and need == len(buf) else buf[pos : pos + need]
                    pos += need
                    if pos >= len(buf):
                        buf = b""
                    status = 0
                except ValueError:  # malformed, or a bad escape or UTF-8 (400)
                    pass
                r.deadline = None
                st["requests"] += 1
                if status:
                    r.close = True
                    resp = error(status)
                else:
                    try:
                        resp = self.handler(r)
                        if not isinstance(resp, tuple):
                            resp = await resp
                    except Exception as e:  # noqa: BLE001 - MemoryError included
                        resp = None  # a coroutine's frame (what it holds) goes
                        _log(e)
                        resp = error(500, "internal error")  # no import: the heap may be short
                r.body = b""
                await self._respond(r, resp)
                if r.close:
                    break
                r.idle = 0 if buf else 2
        except (OSError, asyncio.CancelledError):  # a reset; deadline, eviction, hang-up, close()
            pass
        except Exception as e:  # noqa: BLE001
            _log(e)
        finally:
            if r in self._live:
                st["conns"] -= 1
                self._live.remove(r)
            # close; on CPython never wait for a peer that does not read
            t = getattr(writer, "transport", None)
            try:
                if t and r and r.idle == 3:
                    t.abort()
                writer.close()
                if t is None:
                    await writer.wait_closed()  # MicroPython: this closes the socket
            except Exception:  # noqa: BLE001
                pass

    async def _respond(self, r, resp):
        st = self.stats
        body = resp[2]
        head = r.method == "HEAD"
        kind = 0  # 1: a file, 2: a stream
        n = -2  # no length: the body ends with the connection
        try:
            if callable(body):  # a stream: it owns the connection until it returns
                r.close = True
                if not head:
                    if st["streams"] < self.max_streams:
                        st["streams"] += 1  # counted before any await
                        kind = 2
                        # a hang-up cancels the stream at once
                        w = asyncio.create_task(watch_eof(r.reader, r.task))
                    else:
                        resp = error(503, "too many streams")
                        body = resp[2]
            st["errors"] += resp[0] >= 400  # (True counts 1)
            if body is None:
                body = b""
            if isinstance(body, _PIECE):  # (a str is encoded twice: to count it, to send it)
                body = (body,)
            if isinstance(body, tuple):
                n = 0
                for p in body:
                    n += len(p.encode() if isinstance(p, str) else p)
            elif hasattr(body, "readinto"):  # an open file
                kind = 1
                n = body.seek(0, 2)
                body.seek(0)
            elif not callable(body) and not r.v10:
                n = -1  # an iterator: chunked (HTTP/1.0: until the connection closes)
            await r.send(
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s%s\r\n"
                % (
                    resp[0],
                    "OK" if resp[0] < 400 else "N/A",
                    resp[1],
                    "Content-Length: %d\r\n" % n if n >= 0 else "Transfer-Encoding: chunked\r\n" if n == -1 else "",
                    "Connection: close\r\n" if r.close else "",
                    resp[3] if len(resp) > 3 else "",
                ),
                False,
            )
            b = self._b
            if not head:
                if kind == 2:
                    await r._flush()
                    await body(r)  # type: ignore[operator]  # an async callable
                elif kind:
                    while n > 0:
                        if r.n >= len(b):
                            await r._flush()
                        k = body.readinto(memoryview(b)[r.n : r.n + min(len(b) - r.n, n)])  # type: ignore[union-attr]
                        if not k:  # the file shrank: the length sent is wrong
                            r.close = True
                            break
                        r.n += k
                        n -= k
                else:
                    if n == -1:  # a chunk begins: 5 bytes for its size
                        if len(b) - r.n < 13:
                            await r._flush()
                        r.cs = r.n
                        r.n += 5
                    await r.send(body, False)  # type: ignore[arg-type]
            await r._flush(True)
        finally:
            if kind == 1:
                body.close()  # type: ignore[union-attr]
            elif kind:
                st["streams"] -= 1
                w.cancel()  # pyright: ignore[reportPossiblyUnboundVariable]


def _log(e):
    try:
        log.exc(e, "http")
    except Exception:  # noqa: BLE001 - out of memory even for that
        pass

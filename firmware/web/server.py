"""A small HTTP/1.1 server on asyncio streams, the same on MicroPython and CPython.

Strategy: one task per connection, with one `Request` reused for every request
on it (keep-alive). The head is read with `reader.read()` into the request's
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
response (`write_ms`). No `wait_for` per read.

    async def handler(req):                    # or web.server.router({...})
        return 200, "text/plain", "hello"      # (status, content type, body[, extra headers])

    srv = Server(handler)
    await srv.start("0.0.0.0", 80)
    srv.close()

A body is one of: bytes / bytearray / memoryview (of bytes) / str
(Content-Length); a tuple or list of those, written one after another, never
joined (Content-Length); any other iterable, e.g. a generator of str/bytes
pieces (Transfer-Encoding: chunked, through the one buffer); an open binary
file (`file()` opens it: Content-Length from its size, streamed, closed after);
None (empty); or an async callable `fn(req)`: a stream (Server-Sent Events).
For a stream the server counts it (`max_streams`, checked and counted before
anything is awaited, else 503), writes the head, watches for the client hanging
up (then cancels `fn` at once: CancelledError inside it) and closes the
connection when `fn` returns; `fn` writes with `await req.send(x)`.
Extra headers are one str of complete lines: "Cache-Control: no-store\\r\\n".
A handler returns the response, or an awaitable of it (an `async def`). One
that raises gets a 500 JSON error (logged with `log.exc`); the connection goes
on. Reason phrases are the short error texts ("404 not found").
"""

import asyncio

from aio import watch_eof
from clock import ticks_add, ticks_diff, ticks_ms

JSON = "application/json"
_MSG = {
    400: "bad request",
    404: "not found",
    405: "method not allowed",
    411: "length required",
    413: "request too large",
    414: "uri too long",
    431: "headers too large",
    500: "internal error",
    503: "unavailable",
}


def error(status, msg=None, extra=""):
    """A JSON error response {"error": msg, "status": status}; msg (plain text,
    no quotes) defaults to the status text."""
    return status, JSON, '{"error": "%s", "status": %d}' % (msg or _MSG.get(status, "error"), status), extra


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
        if h is None:
            for p in prefixes:
                if req.path.startswith(p[0]):
                    h = p[1]
                    break
            else:
                return error(404)
        if isinstance(h, dict):
            f = h.get("GET" if m == "HEAD" and m not in h else m)
            return f(req) if f else error(405, None, "Allow: %s\r\n" % ", ".join(h))
        if m != "GET" and m != "HEAD":
            return error(405, None, "Allow: GET, HEAD\r\n")
        return h(req)

    return handle


def _unquote(b):
    """Percent-decode bytes (ValueError on a bad escape)."""
    if b"%" not in b:
        return b
    p = b.split(b"%")
    out = bytearray(p[0])
    for x in p[1:]:
        if len(x) < 2:
            raise ValueError(400)
        out.append(int(x[:2], 16))
        out += x[2:]
    return bytes(out)


class Request:
    """The current request of one connection (the object is reused on keep-alive).

    method, path (percent-decoded), qs (the raw query, no "?"): str;
    headers: {lower-case name: str} for the names in `Server.keep` only;
    body: bytes (Content-Length; b"" without); v10: an HTTP/1.0 request;
    close: the connection closes after this response (a handler may set it);
    reader, writer: the connection's streams.
    """

    def __init__(self, srv, reader, writer):
        self.srv = srv
        self.reader = reader
        self.writer = writer
        self.task = asyncio.current_task()
        self.buf = b""  # bytes read, not yet parsed from pos on
        self.pos = 0
        self.deadline = None  # ticks_ms after which the server cancels the task
        self.idle = 0  # 1: a new connection, 2: kept alive, waiting; 3: in a drain
        self.n = 0  # bytes of this response in the server's buffer
        self.cs = -1  # where the open chunk's size goes in it; -1: not chunked
        self.method = self.path = self.qs = ""
        self.headers = {}
        self.body = b""
        self.v10 = self.close = False

    def args(self):
        """The query as a dict, percent- and "+"-decoded (a repeated name: the last wins)."""
        d = {}
        for x in self.qs.split("&"):
            if x:
                x = _unquote(x.replace("+", " ").encode()).decode()
                i = x.find("=")
                d[x[:i] if i >= 0 else x] = x[i + 1 :] if i >= 0 else ""
        return d

    async def send(self, x):
        """Write x (bytes-like or str, or a tuple/list/iterator of them) and drain
        it within `write_ms`: how a stream writes."""
        await self.srv._body(self, x, True)


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
    # header names stored, lower case (the server itself reads the first five)
    keep = (
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"expect",
        b"accept-encoding",
        b"content-type",
        b"authorization",
        b"cookie",
        b"accept",
        b"if-none-match",
    )

    def __init__(self, handler):
        self.handler = handler
        self.server = None
        self.stats = {"requests": 0, "errors": 0, "conns": 0, "refused": 0, "streams": 0, "timeouts": 0}
        self._live = []  # Requests of the open connections
        self._tick = None
        self._b = bytearray(0)  # the output buffer (start)

    async def start(self, host="0.0.0.0", port=80):
        """Listen (OSError if the port is taken) and start the deadline task."""
        self._b = bytearray(self.out_size)
        self._addr = (host, port)
        self.server = await asyncio.start_server(self._conn, host, port, backlog=self.backlog)
        self._tick = asyncio.create_task(self._reap())

    def close(self):
        """Stop listening and close every connection."""
        if self.server:
            self.server.close()
            self.server = None
        if self._tick:
            self._tick.cancel()
        for r in self._live:
            try:
                r.task.cancel()
            except RuntimeError:  # MicroPython: a handler closing its own server
                pass

    async def _reap(self):
        ms = getattr(asyncio, "sleep_ms", None)  # MicroPython's allocates nothing
        while True:
            try:
                await (ms(self.tick_ms) if ms else asyncio.sleep(self.tick_ms / 1000))
                now = ticks_ms()
                for r in self._live:
                    if r.deadline is not None and ticks_diff(now, r.deadline) >= 0:
                        r.deadline = None
                        self.stats["timeouts"] += 1
                        r.task.cancel()
                # MicroPython: an exception (MemoryError) ends its accept loop for
                # good; listen again (the old socket goes with its finaliser)
                t = getattr(self.server, "task", None)
                if t and t.done():
                    import gc

                    self.server = None
                    gc.collect()
                    await self.start(*self._addr)
                    _log("http: listening again")
                    return
            except Exception as e:  # noqa: BLE001 - this task must not end
                _log(e)

    async def _conn(self, reader, writer):
        st = self.stats
        try:
            r = Request(self, reader, writer)
            if st["conns"] >= self.max_conns:
                # make room: close the connection that has waited longest for a
                # request, kept alive after a response or new and silent `fresh_ms`
                v = None
                late = ticks_add(ticks_ms(), self.idle_ms - self.fresh_ms)
                for x in self._live:
                    d = x.deadline
                    if d is not None and (x.idle == 2 or x.idle == 1 and ticks_diff(late, d) >= 0):
                        if v is None or ticks_diff(d, v.deadline) < 0:
                            v = x
                if v:
                    v.idle = 0
                    v.deadline = None
                    v.task.cancel()
                else:
                    st["refused"] += 1
                    r.close = True
                    await self._respond(r, error(503, "too many connections"))
                    r = None
        except Exception:  # noqa: BLE001 - out of memory, or the peer is gone
            r = None
        if r is None:
            await _shut(writer, False)
            return
        st["conns"] += 1
        r.idle = 1
        try:
            self._live.append(r)
            while True:
                try:
                    status = await self._read(r)
                except ValueError as e:  # malformed: ValueError(status) or a decoding error
                    status = e.args[0] if e.args and isinstance(e.args[0], int) else 400
                if status < 0:
                    break
                r.deadline = None
                st["requests"] += 1
                resp = None
                if status:
                    r.close = True
                    resp = error(status)
                else:
                    try:
                        resp = self.handler(r)
                        if not isinstance(resp, tuple):
                            resp = await resp
                    except Exception as e:  # noqa: BLE001 - MemoryError included
                        resp = None
                        _log(e)
                r.body = b""
                await self._respond(r, resp or error(500))
                if r.close:
                    break
                r.idle = 2 if r.pos >= len(r.buf) else 0
        except asyncio.CancelledError:  # deadline, eviction, hang-up, close()
            pass
        except Exception as e:  # noqa: BLE001 - a peer that resets is routine
            if not isinstance(e, OSError):
                _log(e)
        finally:
            st["conns"] -= 1
            if r in self._live:
                self._live.remove(r)
            await _shut(writer, r.idle == 3)

    async def _read(self, r):
        """Read one request into r: 0, or -1 if the peer closed before it was
        complete; ValueError(status) when it is malformed or too large. Lines
        are found and parsed in r.buf by offsets, without awaiting."""
        r.deadline = ticks_add(ticks_ms(), self.idle_ms)
        r.method = r.path = r.qs = ""
        r.headers = h = {}
        r.body = b""
        lines = -1  # header lines seen; -1 before the request line
        need = -1  # the body's length, once the head is complete
        while True:
            buf = r.buf
            s = r.pos
            if need >= 0:
                if len(buf) - s >= need:
                    break
            else:
                e = buf.find(b"\n", s)
                if e - s > self.max_line or (e < 0 and len(buf) - s > self.max_line):
                    raise ValueError(431 if lines >= 0 else 414)
                if e >= 0:
                    r.pos = e + 1
                    if e > s and buf[e - 1] == 13:
                        e -= 1
                    if lines < 0:
                        if e > s:  # the request line (empty lines before it are ignored)
                            m, t, v = buf[s:e].split(b" ")  # else ValueError: 400
                            if v[:7] != b"HTTP/1." or len(v) != 8 or t[:1] != b"/":
                                raise ValueError(400)
                            r.v10 = v == b"HTTP/1.0"
                            r.method = m.decode()
                            q = t.find(b"?")
                            if q >= 0:
                                r.qs = t[q + 1 :].decode()
                                t = t[:q]
                            r.path = _unquote(t).decode()
                            lines = 0
                            r.deadline = ticks_add(ticks_ms(), self.read_ms)
                    elif e > s:  # a header line
                        lines += 1
                        c = buf.find(b":", s, e)
                        if lines > self.max_headers:
                            raise ValueError(431)
                        if c <= s or buf[s] in b" \t" or buf[c - 1] in b" \t":
                            raise ValueError(400)
                        k = buf[s:c].lower()
                        if k in self.keep:
                            h[k.decode()] = buf[c + 1 : e].strip().decode()
                    else:  # the end of the head
                        c = h.get("connection")
                        r.close = r.v10 or (c is not None and "close" in c.lower())
                        c = h.get("content-length")
                        if "transfer-encoding" in h or (c is None and r.method in ("POST", "PUT", "PATCH")):
                            raise ValueError(411)  # no chunked request bodies
                        if c is not None and not c.isdigit():
                            raise ValueError(400)
                        need = int(c or 0)
                        if need > self.max_body:
                            raise ValueError(413)
                        if need and len(buf) - r.pos < need and h.get("expect", "").lower() == "100-continue":
                            await self._body(r, b"HTTP/1.1 100 Continue\r\n\r\n", True)
                            r.deadline = ticks_add(ticks_ms(), self.read_ms)
                    continue
            more = await r.reader.read(need + s - len(buf) if need > 512 else 512)
            if not more:
                return -1
            r.idle = 0
            r.buf = buf[s:] + more if s < len(buf) else more
            r.pos = 0
        r.pos = s + need
        if need:
            r.body = buf[s : r.pos]
        if r.pos >= len(buf):
            r.buf = b""
            r.pos = 0
        return 0

    async def _respond(self, r, resp):
        st = self.stats
        status, ctype, body = resp[0], resp[1], resp[2]
        head = r.method == "HEAD"
        if status >= 400:
            st["errors"] += 1
        if body is None:
            body = b""
        elif isinstance(body, str):
            body = body.encode()
        kind = 0  # 1: a file, 2: a stream
        w = None
        try:
            if isinstance(body, (bytes, bytearray, memoryview)):
                n = len(body)
            elif isinstance(body, (tuple, list)):
                n = 0
                for p in body:
                    n += len(p.encode() if isinstance(p, str) else p)
            elif hasattr(body, "readinto"):  # an open file
                kind = 1
                n = body.seek(0, 2)
                body.seek(0)
            elif callable(body):  # a stream: it owns the connection until it returns
                n = -2  # the body ends with the connection
                r.close = True
                if not head:
                    if st["streams"] >= self.max_streams:
                        await self._respond(r, error(503, "too many streams"))
                        return
                    st["streams"] += 1  # counted before any await
                    kind = 2
            else:  # an iterator: chunked, or for HTTP/1.0 until the connection closes
                n = -2 if r.v10 else -1
                r.close = r.close or r.v10
            x = (
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s%s\r\n"
                % (
                    status,
                    _MSG.get(status, "OK"),
                    ctype,
                    "Content-Length: %d\r\n" % n if n >= 0 else "Transfer-Encoding: chunked\r\n" if n == -1 else "",
                    "Connection: close\r\n" if r.close else "",
                    resp[3] if len(resp) > 3 else "",
                )
            ).encode()
            i = self._cp(r, x, 0)
            if i >= 0:  # a head longer than the buffer
                await self._body(r, x[i:])
            if head:
                pass
            elif kind == 2:
                await self._flush(r)
                w = asyncio.create_task(watch_eof(r.reader, r.task))
                await body(r)  # type: ignore[misc]  # an async callable
            elif kind == 1:
                while n > 0:
                    k = len(self._b) - r.n
                    if k <= 0:
                        await self._flush(r)
                        continue
                    k = body.readinto(memoryview(self._b)[r.n : r.n + min(k, n)])  # type: ignore
                    if not k:  # the file shrank: the length sent is wrong
                        r.close = True
                        break
                    r.n += k
                    n -= k
            else:
                if n == -1:
                    if len(self._b) - r.n < 13:
                        await self._flush(r)
                    r.cs = r.n
                    r.n += 5
                # a small body leaves with the head, in one write
                i = self._cp(r, body, 0) if isinstance(body, (bytes, bytearray, memoryview)) else 0
                if i > 0:
                    body = memoryview(body)[i:]  # type: ignore
                if i >= 0:
                    await self._body(r, body)
            await self._flush(r, True)
        finally:
            if kind == 1:
                body.close()  # type: ignore
            elif kind == 2:
                st["streams"] -= 1
            if w:
                w.cancel()

    async def _body(self, r, x, flush=False):
        """Copy x (bytes-like or str, or an iterable of them) into the output
        buffer, flushing it each time it is full (and at the end with flush)."""
        if isinstance(x, (bytes, bytearray, memoryview, str)):
            x = (x,)
        for p in x:
            if isinstance(p, str):
                p = p.encode()
            i = self._cp(r, p, 0)
            while i >= 0:
                await self._flush(r)
                i = self._cp(r, p, i)
        if flush:
            await self._flush(r)

    def _cp(self, r, p, i):
        """Copy bytes p[i:] into the buffer as far as they fit: -1 when all did,
        else the index reached."""
        b = self._b
        k = len(b) - r.n - (7 if r.cs >= 0 else 0)  # room for CRLF and "0\r\n\r\n"
        m = len(p) - i
        if k >= m:
            b[r.n : r.n + m] = memoryview(p)[i:] if i else p
            r.n += m
            return -1
        if k > 0:
            b[r.n : r.n + k] = memoryview(p)[i : i + k]
            r.n += k
            i += k
        return i

    async def _flush(self, r, last=False):
        """Write what the buffer holds (closing the open chunk; with last, the
        final chunk too) and drain it within `write_ms`."""
        b = self._b
        n = r.n
        cs = r.cs
        r.n = 0
        if cs >= 0:
            d = n - cs - 5
            if d > 0:
                b[cs : cs + 5] = b"%03x\r\n" % d
                b[n : n + 2] = b"\r\n"
                n += 2
            else:
                n = cs
            if last:
                b[n : n + 5] = b"0\r\n\r\n"
                n += 5
                r.cs = -1
            else:
                r.cs = 0
                r.n = 5
        if n:
            w = r.writer
            mv = memoryview(b)[:n]
            # CPython's transport may keep a view of what it is given (3.12+): copy
            w.write(bytes(mv) if hasattr(w, "transport") else mv)
            r.deadline = ticks_add(ticks_ms(), self.write_ms)
            r.idle = 3
            await w.drain()
            r.idle = 0
            r.deadline = None


def _log(e):
    try:
        import log

        if isinstance(e, str):
            log.warn(e)
        else:
            log.exc(e, "http")
    except Exception:  # noqa: BLE001 - out of memory even for that
        pass


async def _shut(w, abort):
    """Close a connection; on CPython never wait for a peer that does not read."""
    t = getattr(w, "transport", None)
    try:
        if abort and t:
            t.abort()
        w.close()
        if t is None:
            await w.wait_closed()  # MicroPython: this closes the socket
    except Exception:  # noqa: BLE001
        pass

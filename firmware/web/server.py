"""A small HTTP/1.1 server on asyncio streams, the same on MicroPython and CPython.

Strategy: one task per connection, with one `Request` reused for every request
on it (keep-alive), and nothing else per connection: no watcher task, no
`wait_for`. The head is read with `reader.read()` into the connection's bytes
and parsed in place by offsets (MicroPython's `readline()` grows without
bound), so a line, the number of header lines and the body all have hard
limits; only the headers named in `Server.keep` are stored. Every response
goes out through ONE bytearray shared by all servers (`out_size`, a TCP
segment): head and a small body leave in one write (no Nagle stall between
them); a larger body, a generator (chunked) or a file is copied through it and
drained each time it fills. One buffer serves every connection because it is
only filled and handed to `writer.write()` (which sends or copies it) between
two awaits; at every await it is empty again (`_n`, `_cs`: its fill, the open
chunk). One task of the server (`_reap`, every `tick_ms`) does what would
otherwise take a task or a `wait_for` per connection: it cancels a connection
whose deadline passed (`Request.deadline`, in ticks: waiting for a request
`idle_ms`, reading the rest of it `read_ms`, each drain `write_ms`), ends a
stream whose client hung up (a non-blocking read of its socket) and writes an
SSE stream's keep-alive comment after `beat_ms` without an event. RAM: this
module is what every request runs; what few requests need (error texts,
percent-decoding, making room at the connection cap, 100-continue, listening
again, close) is in `web.cold`, static files in `web.files`, each imported for
the call and dropped after (`cold()`); a router is in `web.router`.

    async def handler(req):                    # or web.router.router({...})
        return 200, "text/plain", "hello"      # (status, content type, body[, extra headers])

    srv = Server(handler)
    await srv.start("0.0.0.0", 80)
    srv.close()

A body is one of: bytes / bytearray / memoryview (of bytes) / str
(Content-Length); a tuple of those, written one after another, never joined
(Content-Length); any other iterable (a list too), e.g. a generator of
str/bytes pieces (Transfer-Encoding: chunked, through the one buffer); an open
binary file (`cold("file", ..., mod="web.files")` opens it: Content-Length from its size,
streamed, closed after); None (empty); or an async callable `fn(req)`: a
stream of Server-Sent Events. A stream is counted (`max_streams`, checked and
counted before anything is awaited, else 503), runs in the connection's task
after the head, gets a comment line ": keepalive" from the server after
`beat_ms` without a write, is cancelled (CancelledError inside `fn`) within
`tick_ms` of the client hanging up, and the connection closes when `fn`
returns; `fn` writes with `await req.send(x)`. (net.tcp_raw's RawServer is a
Server whose own `_conn` speaks no HTTP: the same buffer, deadlines, hang-up
detection and close.)
Extra headers are one str of complete lines: "Cache-Control: no-store\\r\\n".
A handler returns the response, or an awaitable of it (an `async def`). One
that raises gets a 500 JSON error (logged with `log.exc`); the connection goes
on. The reason phrase of the status line comes from `web.cold.reason` (a
table there, not here; "OK" and "Service Unavailable" need no import).
"""

import asyncio

from clock import ticks_add, ticks_diff, ticks_ms

JSON = "application/json"
_PIECE = (bytes, bytearray, memoryview, str)  # one tuple, not one per isinstance call
# the output buffer of every server, how much of it is filled, where the open
# chunk's size goes (-1: not chunked); only ever non-empty between two awaits
_b = bytearray(0)
_n = 0
_cs = -1


def cold(name, *a, mod="web.cold"):
    """`name`(*a) of `mod` (web.cold: a status text, percent-decoding ...;
    web.files: a static file): rarely used code, imported for the call and
    dropped after (`mem.call`), so it takes no RAM in between."""
    from mem import call  # (imports inside a function: no name kept in this module)

    return call(mod, name, *a)


def error(status, msg=None, extra=""):
    """A JSON error response {"error": msg, "status": status}; msg (plain text,
    no quotes) defaults to the status's short text."""
    return status, JSON, '{"error": "%s", "status": %d}' % (msg or cold("text", status), status), extra


class Request:
    """The current request of one connection (the object is reused on keep-alive).

    method, path (percent-decoded), qs (the raw query, no "?"; `web.cold.args`
    parses it): str; headers: {lower-case name: str} for the names in
    `Server.keep` only; body: bytes (Content-Length; b"" without); close: the
    connection closes after this response (a handler may set it; 2: an HTTP/1.0
    request); reader, writer: the connection's streams; srv: its server;
    left: for a POST to `Server.upload` only, the bytes of the body still to
    be read from `reader` (body holds those that came with the head).
    Server state: task (the connection's), deadline (ticks_ms after which the
    reaper cancels the task; None: none), idle (1: new, 2: kept alive and
    waiting, 3: in a drain, 4: an SSE stream between writes, 5: a stream of
    net.tcp_raw between writes, 0: else).
    """

    # set per request by the server (declared for type checkers; no bytecode)
    method: str
    path: str
    qs: str
    headers: dict
    body: bytes
    close: int
    left: int

    def __init__(self, srv, reader, writer):
        self.srv = srv
        self.reader = reader
        self.writer = writer
        self.task = asyncio.current_task()
        self.idle = 1

    async def send(self, x=(), end=1):
        """Write x (bytes-like or str, or a tuple/list/iterator of them) and drain
        it within `write_ms`: how a stream writes. The server's own calls: end=0
        only copies x into the buffer (written each time it fills), end=2 also
        ends a chunked body."""
        global _n, _cs
        b = _b
        m = len(b) - 7  # 7 bytes stay free to end a chunk
        if isinstance(x, _PIECE):
            x = (x,)
        for p in x:
            if isinstance(p, str):
                p = p.encode()
            i = 0
            while i < len(p):
                if _n >= m:
                    await self.send()
                k = min(m - _n, len(p) - i)
                b[_n : _n + k] = p if k == len(p) else memoryview(p)[i : i + k]
                _n += k
                i += k
        if end:  # write what the buffer holds, ending the open chunk
            n = _n
            c = _cs
            _n = 0  # (empty at every await)
            _cs = -1
            if c >= 0:  # the chunk's size goes into the 5 bytes kept for it
                k = n - c - 5
                b[c : c + 5] = b"%03x\r\n" % k
                b[n : n + 7] = b"\r\n0\r\n\r\n"
                n += 7 if end > 1 and k else 2  # an empty chunk can only be the last: "000\r\n\r\n"
                c = 1 - end  # -1 after the last chunk, else 0: the next one begins the buffer
            if n:
                w = self.writer
                # CPython's transport may keep a view of what it is given (3.12+): a copy
                w.write(b[:n] if hasattr(w, "transport") else memoryview(b)[:n])
                i = self.idle
                self.idle = 3
                self.deadline = ticks_add(ticks_ms(), self.srv.write_ms)
                await w.drain()
                self.idle = i
                self.deadline = ticks_add(ticks_ms(), self.srv.beat_ms) if i == 4 else None
            _cs = c
            _n = 5 + 5 * c


class Server:
    """HTTP/1.1 server; the limits below are class attributes a test may change."""

    max_conns = 6  # open connections (ESP32 lwIP has ~10 sockets); more: 503, closed
    max_streams = 4  # stream responses (SSE) at once; more: 503
    max_line = 1024  # request line (longer: 414) and each header line (431)
    max_headers = 24  # header lines; more: 431
    max_head = 4096  # bytes of all header lines together (without line ends); more: 431
    max_body = 2048  # Content-Length accepted; more: 413
    idle_ms = 8000  # a new or kept-alive connection waits this long for a request
    read_ms = 10000  # then the head and body must arrive within this
    write_ms = 10000  # each drain of a response must end within this
    beat_ms = 15000  # an SSE stream silent this long gets a comment line (": keepalive")
    tick_ms = 500  # how often deadlines and the hang-up of streams are checked
    fresh_ms = 1000  # a new connection silent this long may make room for another
    out_size = 1440  # the output buffer: one TCP segment (lwIP's TCP_MSS); 64..4096
    backlog = 4
    upload = ""  # a path whose POST body the handler reads from r.reader itself (Request.left)
    head = ""  # header lines for every response (the app's CORS header), "" or whole lines
    # header names stored, lower case, each between colons; a name found inside
    # another must come before it (the server itself reads the first five)
    keep = (
        b":content-length:transfer-encoding:connection:expect:accept:accept-encoding:content-type"
        b":authorization:cookie:if-none-match:"
    )

    def __init__(self, handler):
        global _b
        self.handler = handler
        self.server = None
        self.sock = None  # MicroPython: the listening socket (start)
        self.stats = {"requests": 0, "errors": 0, "conns": 0, "refused": 0, "streams": 0, "timeouts": 0}
        self._live = []  # Requests of the open connections
        if len(_b) != self.out_size:
            _b = bytearray(self.out_size)

    async def start(self, host, port):
        """Listen (OSError if the port is taken) and start the reaper task."""
        self.server = s = await asyncio.start_server(self._conn, host, port, backlog=self.backlog)
        # MicroPython keeps the listening socket only in the accept loop's frame; the
        # loop's entry in asyncio's I/O queue names it, for web.cold.relisten to close
        # once that loop died (CPython: no such queue)
        for e in getattr(getattr(getattr(asyncio, "core", None), "_io_queue", None), "map", {}).values():
            if e[0] is getattr(s, "task", 0):
                self.sock = e[2]
        self._tick = asyncio.create_task(self._reap(host, port))

    def close(self):
        """Stop listening and close every connection."""
        cold("close", self)

    async def _reap(self, host, port):
        z = getattr(asyncio, "sleep_ms", None)  # MicroPython's: sleeps without allocating
        while True:
            try:
                await (z(self.tick_ms) if z else asyncio.sleep(self.tick_ms / 1000))
                for r in self._live:
                    t = r.deadline
                    t = t is not None and ticks_diff(ticks_ms(), t) >= 0
                    if r.idle > 3:  # a stream between its writes: has its client hung up?
                        try:
                            s = getattr(r.reader, "s", None)  # MicroPython: the socket, non-blocking
                            if s is None:  # CPython: the reader saw the end, or the transport a reset
                                s = r.reader.at_eof() or r.writer.is_closing()
                            else:  # what the client sends is dropped; None: nothing came
                                s = s.read(64) == b""
                            if s:
                                raise OSError
                            if t:  # an SSE stream silent for beat_ms
                                r.deadline = ticks_add(ticks_ms(), self.beat_ms)
                                r.writer.write(b": keepalive\n\n")  # sent now (or with the next drain)
                        except OSError:  # hung up, or reset
                            r.task.cancel()
                    elif t:
                        r.deadline = None
                        r.idle = 3  # not to be evicted as well; on CPython aborted, not flushed
                        self.stats["timeouts"] += 1
                        r.task.cancel()
                # MicroPython: an exception (MemoryError) ends its accept loop for
                # good; listen again (web.cold.relisten closes the socket it left open)
                # (CPython: no such task; False: a relisten that failed half-way, again)
                # (no local for the Server: this frame, waiting in relisten, would keep
                # its dead task and so the listening socket: EADDRINUSE for good)
                if self.server is False or getattr(self.server, "task", self._tick).done():
                    return await cold("relisten", self, host, port)
            except Exception as e:  # noqa: BLE001 - this task must not end
                _log(e)

    async def _conn(self, reader, writer):
        global _n, _cs
        st = self.stats
        r = resp = None
        try:
            r = Request(self, reader, writer)
            if st["conns"] >= self.max_conns and not cold("make_room", self):
                st["refused"] += 1
                r.close = True
                r.method = ""
                resp = error(503, "too many connections")
            else:
                st["conns"] += 1
                self._live.append(r)
            buf = b""  # bytes read, not yet parsed from pos on
            pos = 0
            while True:
                if resp is None:
                    # read one request into r: lines are found and parsed in buf
                    # by offsets, without awaiting
                    r.deadline = ticks_add(ticks_ms(), self.idle_ms)
                    r.method = ""  # (not a HEAD before its request line)
                    r.headers = h = {}
                    lines = need = -1  # header lines seen (-1: before the request line); the body's length
                    resp = 400  # why a malformed request is refused (ValueError)
                    try:
                        while True:
                            if need < 0:
                                e = buf.find(b"\n", pos)
                                if (len(buf) if e < 0 else e) - pos > self.max_line:
                                    resp = 431 if lines >= 0 else 414
                                    raise ValueError
                                if e >= 0:
                                    s = pos
                                    pos = e + 1
                                    if buf[e - 1] == 13:  # (e == pos: the "\n" before, or e < pos now)
                                        e -= 1
                                    if lines < 0:
                                        if e > s:  # the request line (empty lines before it are ignored)
                                            r.method, k, c = buf[s:e].decode().split(" ")  # else ValueError
                                            r.close = 2 if c == "HTTP/1.0" else 0
                                            if not c.startswith("HTTP/1.") or not k.startswith("/"):
                                                raise ValueError
                                            k, c, r.qs = k.partition("?")
                                            r.path = cold("unquote", k) if "%" in k else k
                                            lines = 0
                                            r.deadline = ticks_add(ticks_ms(), self.read_ms)
                                    elif e > s:  # a header line
                                        lines += 1
                                        c = buf.find(b":", s, e)
                                        need -= e - s  # the header lines' bytes so far, negative
                                        if lines > self.max_headers or need < -self.max_head:
                                            resp = 431
                                            raise ValueError
                                        if c <= s or buf[s] < 33 or buf[c - 1] < 33:  # no name, folded, space
                                            raise ValueError
                                        k = buf[s:c].lower()
                                        i = self.keep.find(k)
                                        if self.keep[i - 1] == 58 == self.keep[i + len(k)]:  # (not found: keep[-2])
                                            h[k.decode()] = buf[c + 1 : e].strip().decode()
                                    else:  # the end of the head
                                        r.close = r.close or "close" in h.get("connection", "").lower()
                                        c = h.get("content-length", "0")
                                        if "transfer-encoding" in h or (
                                            "content-length" not in h and r.method.startswith("P")  # POST, PUT, PATCH
                                        ):
                                            resp = 411  # (no chunked request bodies)
                                            raise ValueError
                                        if not c.isdigit():
                                            raise ValueError
                                        need = int(c)
                                        if r.path == self.upload and r.method == "POST":
                                            # the handler reads this body itself (web.update: streamed to
                                            # flash); r.body is what came with the head, r.left the rest
                                            r.close = True
                                            r.left = need - min(need, len(buf) - pos)
                                            need -= r.left
                                        elif need > self.max_body:
                                            resp = 413
                                            raise ValueError
                                        if "expect" in h:  # 100-continue (allowed even once the body is here)
                                            cold("go_on", writer)
                                    continue
                            elif len(buf) - pos >= need:
                                break
                            k = await reader.read(need + pos - len(buf) if need > 512 else 512)
                            if not k:
                                return
                            r.idle = 0
                            buf = buf[pos:] + k if pos < len(buf) else k
                            pos = 0
                        # (a body read after its head is the whole buffer: no copy)
                        r.body = buf if pos == 0 and need == len(buf) else buf[pos : pos + need]
                        pos += need
                        if pos >= len(buf):
                            buf = b""
                        resp = 0
                    except ValueError:  # malformed, or a bad escape or UTF-8 (400)
                        pass
                    r.deadline = None
                    st["requests"] += 1
                    if resp:
                        r.close = True
                        resp = error(resp)
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
                # the response
                b = resp[2]
                s = r.method == "HEAD"
                i = 0  # 1: a file, 2: a stream
                e = -2  # the body's length; -1: chunked; -2: none, it ends with the connection
                try:
                    if callable(b):  # a stream: it owns the connection until it returns
                        r.close = True
                        if not s:
                            if st["streams"] < self.max_streams:
                                st["streams"] += 1  # counted before any await
                                i = 2
                                r.idle = 4  # (the tick: keep-alive comments, hang-up)
                            else:
                                resp = error(503, "too many streams")
                                b = resp[2]
                    st["errors"] += resp[0] >= 400  # (True counts 1)
                    if b is None:
                        b = b""
                    if isinstance(b, _PIECE):  # (a str is encoded twice: to count it, to send it)
                        b = (b,)
                    if isinstance(b, tuple):
                        e = 0
                        for p in b:
                            e += len(p.encode() if isinstance(p, str) else p)
                    elif hasattr(b, "readinto"):  # an open file
                        i = 1
                        e = b.seek(0, 2)
                        b.seek(0)
                    elif not callable(b) and r.close != 2:
                        e = -1  # an iterator: chunked (HTTP/1.0: until the connection closes)
                    c = resp[0]
                    k = "OK"  # the reason phrase: web.cold's, but no import for a 200 or a 503
                    if c != 200:
                        try:
                            k = "Service Unavailable" if c == 503 else cold("reason", c)
                        except Exception:  # noqa: BLE001 - MemoryError: no phrase (RFC 9112 allows it)
                            k = ""
                    await r.send(
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s%s%s\r\n"
                        % (
                            c,
                            k,
                            resp[1],
                            "Content-Length: %d\r\n" % e
                            if e >= 0
                            else "Transfer-Encoding: chunked\r\n"
                            if e == -1
                            else "",
                            "Connection: close\r\n" if r.close else "",
                            resp[3] if len(resp) > 3 else "",
                            self.head,
                        ),
                        0,
                    )
                    resp = None  # not kept while the connection waits (nor its body)
                    if s:
                        pass
                    elif i == 2:
                        await r.send()
                        await b(r)  # type: ignore[operator]  # an async callable
                    elif i:
                        while e > 0:
                            if _n >= len(_b):
                                await r.send()
                            k = b.readinto(memoryview(_b)[_n : _n + min(len(_b) - _n, e)])  # type: ignore[union-attr]
                            if not k:  # the file shrank: the length sent is wrong
                                r.close = True
                                break
                            _n += k
                            e -= k
                    else:
                        if e == -1:  # a chunk begins: 5 bytes for its size
                            if len(_b) - _n < 13:
                                await r.send()
                            _cs = _n
                            _n += 5
                        await r.send(b, 0)  # type: ignore[arg-type]
                    await r.send((), 2)
                finally:
                    _n = 0  # a body that raised leaves nothing in the buffer
                    _cs = -1
                    if i == 1:
                        b.close()  # type: ignore[union-attr]
                    elif i:
                        st["streams"] -= 1
                    elif hasattr(b, "close"):  # a generator a hang-up left half-way: its `finally` runs now
                        b.close()  # type: ignore[union-attr]
                b = c = k = p = None  # not kept while the connection waits: the last body, piece, header
                if r.close:
                    break
                r.idle = 0 if buf else 2
        except (OSError, asyncio.CancelledError):  # a reset; deadline, eviction, hang-up, close()
            pass
        except Exception as e:  # noqa: BLE001
            _log(e)
        finally:
            await self._end(r, writer)

    async def _end(self, r, writer):
        """Forget a connection (r: its Request or None) and close it; on CPython
        never wait for a peer that does not read."""
        if r in self._live:
            self.stats["conns"] -= 1
            self._live.remove(r)
        t = getattr(writer, "transport", None)
        try:
            if t and r and r.idle == 3:
                t.abort()
            writer.close()
            if t is None:
                await writer.wait_closed()  # MicroPython: this closes the socket
        except Exception:  # noqa: BLE001
            pass


def _log(e):
    try:
        import log

        log.exc(e, "http")
    except Exception:  # noqa: BLE001 - out of memory even for that
        pass

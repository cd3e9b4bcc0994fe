"""web/server.py under the WebAssembly MicroPython (32-bit, no sockets): each
connection is driven through `Server._conn` with fake streams, and the bytes
written are checked exactly. Covers the parser fed whole and one byte at a
time, pipelining, limits, chunked bodies through a 64-byte buffer, pieces,
files, a stream ended by the client's hang-up, the idle deadline and a
handler exception; prints the heap allocated per request (gc off).

Plain script for run.mjs (top-level await); exits 1 if any check failed.
"""

import asyncio
import gc
import sys

import log
from mem import unload
import web.server
from web.router import router
from web.server import JSON, Server, cold, error

log.quiet = True
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what)


class Sock:
    """The socket under a Fake (MicroPython's Stream.s), read without waiting:
    what the server's tick asks a stream's connection."""

    def __init__(self, f):
        self.f = f

    def read(self, n):
        return None if self.f.hold or self.f.chunks else b""  # (None: nothing yet)


class Fake:
    """Reader and writer at once, like MicroPython's Stream: `chunks` are what
    the client sends (then end of stream, or nothing more if `hold`)."""

    def __init__(self, chunks, hold=False, keep=True):
        self.s = Sock(self)
        self.chunks = list(chunks)
        self.hold = hold
        self.out = bytearray()
        self.keep = keep  # keep what is written (else count it: no allocation)
        self.n = 0
        self.closed = False

    async def read(self, n):
        if self.chunks:
            c = self.chunks.pop(0)
            if len(c) > n:
                self.chunks.insert(0, c[n:])
                c = c[:n]
            return c
        if self.hold:
            await asyncio.Event().wait()
        return b""

    def write(self, b):
        self.n += len(b)
        if self.keep:
            self.out += b

    async def drain(self):
        pass

    def close(self):
        pass

    async def wait_closed(self):
        self.closed = True


async def hello(req):
    return 200, "text/plain", "hello"


async def echo(req):
    from web.cold import args  # as a handler takes the query: cold, imported for the call

    unload("web.cold")
    return 200, "text/plain", "%s %s %s %r %r" % (req.method, req.path, req.qs, sorted(args(req.qs).items()), req.body)


async def pieces(req):
    mv = memoryview(b'xx{"a": 1, "b": 2}yy')
    return 200, JSON, (mv[2:10], mv[10:17], "}"), "Cache-Control: no-store\r\n"


async def gen(req):
    def g():
        for i in range(40):
            yield "line %d\n" % i
            if i == 7:
                yield b"=" * 150  # bigger than the buffer

    return 200, "text/plain", g()


async def boom(req):
    raise RuntimeError("boom")


async def listed(req):
    return 200, "text/plain", ["a", b"b", memoryview(b"cd")[1:]]  # a list: an iterable, chunked


ev_state = {"gone": 0}


async def _stream(req):
    try:
        await req.send(("data: ", b"1", "\n\n"))
        await asyncio.Event().wait()  # only a hang-up ends this
    finally:
        ev_state["gone"] += 1


async def events(req):
    return 200, "text/event-stream", _stream


async def static(req):
    return cold("file", req, "/tmp/http_mp_" + req.path[8:], "text/plain", mod="web.files")


with open("/tmp/http_mp_f.txt", "wb") as f:
    f.write(bytes(range(200)))


def setup():
    """The output buffer at Server.out_size (Server() makes it)."""
    web.server._b = bytearray(Server.out_size)


srv = Server(
    router(
        {
            "/": hello,
            "/echo": {"GET": echo, "POST": echo},
            "/pieces": pieces,
            "/gen": gen,
            "/boom": boom,
            "/list": listed,
            "/ev": events,
        },
        (("/static/", static),),
    )
)
setup()


async def talk(chunks, hold=False):
    f = Fake(chunks, hold)
    await asyncio.create_task(srv._conn(f, f))  # its own task, as under start_server
    check(f.closed, "connection closed at the end")
    return bytes(f.out)


REASON = {
    200: b"OK",
    201: b"Created",
    302: b"Found",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
}
REASON.update({411: b"Length Required", 413: b"Content Too Large", 414: b"URI Too Long", 418: b""})
REASON.update({431: b"Request Header Fields Too Large", 500: b"Internal Server Error", 503: b"Service Unavailable"})


def resp(status, ctype, body, extra="", close=False):
    if isinstance(body, str):
        body = body.encode()
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n%s" % (
        status,
        REASON[status],
        ctype.encode(),
        len(body),
        b"Connection: close\r\n" if close else b"",
        extra.encode(),
        body,
    )


def dechunk(data):
    """Body of a chunked message at the start of data, and what follows it."""
    out = b""
    while True:
        i = data.index(b"\r\n")
        n = int(data[:i], 16)
        if n == 0:
            return out, data[i + 4 :]
        out += data[i + 2 : i + 2 + n]
        check(data[i + 2 + n : i + 4 + n] == b"\r\n", "CRLF after a chunk")
        data = data[i + 4 + n :]


HELLO = resp(200, "text/plain", "hello")
REQ = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n"

# keep-alive and pipelining, whole and one byte at a time
three = REQ + b"GET /echo?a=1&b=x%20y+z HTTP/1.1\r\n\r\n" + b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
want = HELLO + resp(200, "text/plain", "GET /echo a=1&b=x%20y+z [('a', '1'), ('b', 'x y z')] b''")
want += resp(200, "text/plain", "POST /echo  [] b'abc'")
out = await talk([three])  # noqa: F704
check(out == want, "three pipelined requests")
out = await talk([three[i : i + 1] for i in range(len(three))])  # noqa: F704
check(out == want, "the same one byte at a time")

# errors
junk = await talk([REQ + b"\x00junk\r\n\r\n" + REQ])  # noqa: F704
check(junk == HELLO + resp(400, JSON, error(400)[2], close=True), "pipelined junk: 400 and close")
out = await talk([b"GET /nope HTTP/1.1\r\n\r\nPUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"])  # noqa: F704
want = resp(404, JSON, error(404)[2]) + resp(405, JSON, error(405)[2], "Allow: GET, HEAD\r\n")
check(out == want, "404 and 405")
for head, status in (
    (b"GET / HTTP/1.1\r\n" + b"X: 1\r\n" * 25 + b"\r\n", 431),
    (b"GET /" + b"a" * 1100 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nCookie: " + b"a" * 1100 + b"\r\n\r\n", 431),
    (b"POST /echo HTTP/1.1\r\nContent-Length: 3000\r\n\r\n", 413),
    (b"POST /echo HTTP/1.1\r\n\r\n", 411),
    (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
):
    out = await talk([head])  # noqa: F704
    check(out == resp(status, JSON, error(status)[2], close=True), "limit %d" % status)
out = await talk([b"GET /boom HTTP/1.1\r\n\r\n", REQ])  # noqa: F704
check(out == resp(500, JSON, '{"error": "internal error", "status": 500}') + HELLO, "500, then the next request")

# a HEAD, then a line too long: the 414 has its body; HTTP/1.2 is answered as 1.1;
# Expect: 100-continue gets its interim response
out = await talk([b"HEAD / HTTP/1.1\r\n\r\nGET /" + b"a" * 1100 + b" HTTP/1.1\r\n\r\n"])  # noqa: F704
check(out == HELLO[: HELLO.index(b"\r\n\r\n") + 4] + resp(414, JSON, error(414)[2], close=True), "HEAD, then 414")
out = await talk([b"GET / HTTP/1.2\r\n\r\n"])  # noqa: F704
check(out == HELLO, "HTTP/1.2 answered")
out = await talk([b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n", b"hi"])  # noqa: F704
check(out == b"HTTP/1.1 100 Continue\r\n\r\n" + resp(200, "text/plain", "POST /echo  [] b'hi'"), "100-continue")

# the cold module: status texts, percent-decoding, query strings; dropped after use
import web.cold as wc  # noqa: E402

check(wc.text(404) == "not found" and wc.text(418) == "error", "status texts")
check(wc.text(401) == "login required" and wc.text(431) == "headers too large", "status texts with their own")
check(wc.reason(404) == "Not Found" and wc.reason(401) == "Unauthorized" and wc.reason(418) == "", "reason phrases")
check(wc.unquote("/a%20b%C3%A9") == "/a b\u00e9" and wc.unquote("/plain") == "/plain", "unquote")
for bad in ("/a%zz", "/a%2", "/%ff"):
    try:
        wc.unquote(bad)
        check(False, "unquote(%r) raised" % bad)
    except ValueError:
        pass
check(wc.args("a=1&b=x%20y+z&c&a=2&d=%3D") == {"a": "2", "b": "x y z", "c": "", "d": "="}, "args")
del sys.modules["web.cold"]
error(404)
check("web.cold" not in sys.modules, "web.cold dropped after a call")

# bodies
out = await talk([b"GET /list HTTP/1.1\r\n\r\n"])  # noqa: F704
check(
    out.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"),
    "a list: chunked",
)
check(dechunk(out[out.index(b"\r\n\r\n") + 4 :]) == (b"abd", b""), "a list: its pieces")
out = await talk([b"GET /pieces HTTP/1.1\r\n\r\n"])  # noqa: F704
check(out == resp(200, JSON, '{"a": 1, "b": 2}', "Cache-Control: no-store\r\n"), "pieces")
out = await talk([b"GET /static/f.txt HTTP/1.1\r\n\r\nGET /static/nope HTTP/1.1\r\n\r\n"])  # noqa: F704
check(out == resp(200, "text/plain", bytes(range(200))) + resp(404, JSON, error(404)[2]), "file, then 404")
Server.out_size = 64  # every chunk boundary case through a tiny buffer
setup()
out = await talk([b"GET /gen HTTP/1.1\r\n\r\n" + REQ])  # noqa: F704
head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
check(out.startswith(head), "chunked head")
body, rest = dechunk(out[len(head) :])
want = b"".join(b"line %d\n" % i + (b"=" * 150 if i == 7 else b"") for i in range(40))
check(body == want, "chunked body through 64 bytes")
check(rest == resp(200, "text/plain", "hello"), "keep-alive after chunked")
Server.out_size = 1440
setup()

# a stream ends when the client hangs up (seen by the server's tick)
Server.tick_ms = 20
tick = srv._tick = asyncio.create_task(srv._reap("", 0))
out = await talk([b"GET /ev HTTP/1.1\r\n\r\n"])  # noqa: F704
check(out == b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: 1\n\n", "stream")
check(ev_state["gone"] == 1 and srv.stats["streams"] == 0, "stream ended by the hang-up")
tick.cancel()

# the idle deadline closes a silent connection
Server.idle_ms = 100
Server.tick_ms = 20
tick = srv._tick = asyncio.create_task(srv._reap("", 0))
t0 = srv.stats["timeouts"]
out = await talk([], hold=True)  # noqa: F704
check(out == b"" and srv.stats["timeouts"] == t0 + 1, "idle connection closed by the deadline")
tick.cancel()
check(srv.stats["conns"] == 0, "no connection left open")
Server.idle_ms = 8000

# at the cap (web.cold.make_room): a kept-alive connection makes room, a busy one does not
Server.max_conns = 1
idle = Fake([REQ], hold=True)
t1 = asyncio.create_task(srv._conn(idle, idle))
await asyncio.sleep(0)  # noqa: F704
check(idle.out == HELLO and srv.stats["conns"] == 1, "first connection answered, kept alive")
out = await talk([REQ])  # noqa: F704
check(out == HELLO and idle.closed, "a kept-alive connection made room for a new one")
busy = Fake([b"GET / HTTP/1.1\r\n"], hold=True)  # a request begun: not idle
t1 = asyncio.create_task(srv._conn(busy, busy))
await asyncio.sleep(0)  # noqa: F704
r0 = srv.stats["refused"]
out = await talk([REQ])  # noqa: F704
check(out == resp(503, JSON, '{"error": "too many connections", "status": 503}', close=True), "503 at the cap")
check(srv.stats["refused"] == r0 + 1 and not busy.closed, "the busy connection stays")
Server.max_conns = 6
srv.close()  # (web.cold.close): every connection is cancelled
await asyncio.sleep(0)  # noqa: F704
check(busy.closed and srv.stats["conns"] == 0, "close() closes every connection")

# heap allocated per request, keep-alive, collector off
BROWSER = (
    b"GET / HTTP/1.1\r\nHost: 192.168.1.50\r\nConnection: keep-alive\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
    b"Accept-Encoding: gzip, deflate\r\nAccept-Language: en-GB,en;q=0.9,fi;q=0.8\r\n"
    b"Cache-Control: max-age=0\r\nUpgrade-Insecure-Requests: 1\r\nReferer: http://192.168.1.50/\r\n\r\n"
)


def drive(coro):
    """Run a coroutine that never waits (fake streams) to its end, without the
    event loop: no other task and no collection (WebAssembly collects when it
    returns to JS) between the two heap readings."""
    try:
        while True:
            coro.send(None)
    except StopIteration:
        pass


per = {}
for name, req in (
    ("curl-like GET /", REQ),
    ("browser GET /", BROWSER),
    ("GET /pieces", b"GET /pieces HTTP/1.1\r\n\r\n"),
):
    f = Fake([req] * 21, keep=False)
    f1 = Fake([req], keep=False)
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    drive(srv._conn(f, f))
    a1 = gc.mem_alloc()
    drive(srv._conn(f1, f1))
    a2 = gc.mem_alloc()
    gc.enable()
    per[name] = (a1 - a0 - (a2 - a1)) // 20
print("allocation per request, WebAssembly 32-bit, gc off (request bytes given):", per)
check(max(per.values()) < 2500, "allocation per request bounded")

print("%d failed" % len(failures))
sys.exit(1 if failures else 0)

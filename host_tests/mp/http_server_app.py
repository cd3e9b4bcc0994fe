"""The test server of host_tests/test_http_server.py: web/server.py with one route
per case. Runs unchanged under CPython and MicroPython's Unix port (not under
the WebAssembly port: no sockets, so it is not named test_*).

    python|micropython http_server_app.py CODE_DIR PORT STATIC_DIR [name=value ...]

CODE_DIR holds web/server, clock, log, mem, hub and net/tcp_raw (firmware/ or
compiled .mpy); name=value sets an int class attribute of Server (max_conns=4
...), `gc=off` disables the automatic collection (allocation measurements)
and `raw=PORT` also runs net.tcp_raw's RawServer there (2 clients, a 1 s
write deadline) on a hub of its own: GET /publish puts telegrams into it, GET
/raw shows its status. Prints "ready PORT" once listening; GET /quit stops it.
"""

import sys

sys.path.insert(0, sys.argv[1])

import asyncio  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402

import log  # noqa: E402
from mem import unload  # noqa: E402
from web.router import router  # noqa: E402
from web.server import JSON, Server, cold, error  # noqa: E402

PORT = int(sys.argv[2])
STATIC = sys.argv[3]
MP = sys.implementation.name == "micropython"
state = {"open": 0, "gone": 0}
stop = asyncio.Event()


def query(req):
    """The query as a dict, as a handler gets it: web.cold imported for the call."""
    from web.cold import args

    try:
        return args(req.qs)
    finally:
        unload("web.cold")


async def hello(req):
    return 200, "text/plain; charset=utf-8", "hello"


READING = '{"timestamp": "2026-12-02T12:00:00+01:00", "meter": "E0000000000000000", "age_s": 0}'


async def reading(req):
    """What the abuse tests ask for during each abuse: a small JSON, no-store."""
    return 200, JSON, READING, "Cache-Control: no-store\r\n"


async def code(req):
    """An empty response with the status given as ?c=N (reason phrases)."""
    return int(query(req)["c"]), "text/plain", ""


async def echo(req):
    d = {
        "method": req.method,
        "path": req.path,
        "qs": req.qs,
        "args": query(req),
        "headers": req.headers,
        "body": req.body.decode(),
        "v10": req.close == 2,
    }
    return 200, JSON, json.dumps(d)


_PIECES = b'xx{"a": 1, "b": [1, 2, 3], "c": "three"}yy'


async def pieces(req):
    """A JSON body as three memoryview slices of one buffer, as the lead writes it."""
    mv = memoryview(_PIECES)
    # a str piece too, not ASCII: Content-Length counts its UTF-8 bytes
    return 200, JSON, (mv[2:10], mv[10:27], '"c": "thr\u00e9e"}'), "Cache-Control: no-store\r\n"


async def big(req):
    """n lines "%07d\\n"; after line 100 a 1500-byte bytes piece (more than the buffer), after 200 a memoryview."""
    n = int(query(req).get("n", "1000"))

    def gen():
        for i in range(n):
            yield "%07d\n" % i
            if i == 100:
                yield b"-" * 1500
            elif i == 200:
                yield memoryview(b"0123456789")[2:8]

    return 200, "text/plain", gen()


async def flood(req):
    """An endless chunked body: only the write deadline ends it if nobody reads."""
    piece = b"x" * 1024

    def gen():
        while True:
            yield piece

    return 200, "text/plain", gen()


async def static(req):
    return cold(
        "file", req, STATIC + "/" + req.path[8:], "text/plain", "Cache-Control: max-age=60\r\n", mod="web.files"
    )


async def _events(req):
    state["open"] += 1
    try:
        i = 0
        n = int(query(req).get("n", "1000000"))
        while i < n:
            await req.send(("event: tick\nid: %d\ndata: " % i, b'{"n": ', str(i), b"}\n\n"))
            i += 1
            await asyncio.sleep(0.02)
        await asyncio.sleep(3600)  # only a hang-up (or close) ends it now
    finally:
        state["open"] -= 1
        state["gone"] += 1


async def events(req):
    return 200, "text/event-stream", _events, "Cache-Control: no-store\r\n"


async def boom(req):
    raise RuntimeError("boom")


async def oom(req):
    if not MP:
        raise MemoryError()
    hog = []
    while True:  # the whole heap, then MemoryError; the hog goes with the frame
        hog.append(bytearray(1024))


async def stats(req):
    d = {}
    for k in srv.stats:
        d[k] = srv.stats[k]
    for k in state:
        d[k] = state[k]
    if req.qs == "gc=1":
        gc.collect()
    try:
        d["mem_alloc"] = gc.mem_alloc()  # type: ignore[attr-defined]
        d["mem_free"] = gc.mem_free()  # type: ignore[attr-defined]
    except AttributeError:  # CPython
        pass
    return 200, JSON, json.dumps(d)


async def kill_accept(req):
    """MicroPython: end the accept loop by an exception in it (at the next connection
    it accepts), as a MemoryError there does. Unlike a cancellation, which closes
    the listening socket, that leaves it open: web.cold.relisten must close it."""
    t = getattr(srv.server, "task", None)
    if t is None:
        return error(404, "no accept task here")
    import asyncio.stream as st

    real = st.Stream

    def dies(*args):
        st.Stream = real
        raise ValueError("the accept loop dies")

    st.Stream = dies
    return 200, "text/plain", "killed"


hub = None
raw = None


def telegram(i, size):
    """Telegram i of the raw-server tests: `size` bytes, each 8 of them "T%06d|"."""
    return (b"T%06d|" % i) * (size // 8)


async def publish(req):
    """n telegrams of `size` bytes into the raw server's hub; with slow=1 one per
    loop turn, in the background, until a client is dropped as too slow."""
    a = query(req)
    n = int(a.get("n", "1"))
    size = int(a.get("size", "80"))

    async def feed():
        d0 = raw.status()["dropped_slow"]
        for i in range(n):
            try:
                hub.publish(b"{}", 0, telegram(i, size))
            except MemoryError:  # (the small heap of the mp-mpy flavour) the next turn
                pass
            await asyncio.sleep(0)
            if raw.status()["dropped_slow"] > d0:
                break

    if a.get("slow"):
        asyncio.create_task(feed())
    else:
        for i in range(n):
            hub.publish(b"{}", 0, telegram(i, size))
    return 200, "text/plain", "ok"


async def raw_status(req):
    d = raw.status()
    d["queues"] = [q["name"] for q in hub._subscribers()["queues"]]
    return 200, JSON, json.dumps(d)


async def limit(req):
    """Set limits of the server (a test that needs others than the command line's)."""
    for k, v in query(req).items():
        setattr(Server, k, int(v))
    return 200, "text/plain", "ok"


async def quit_(req):
    stop.set()
    return 200, "text/plain", "bye"


srv = Server(
    router(
        {
            "/": hello,
            "/api/v1/reading": reading,
            "/code": code,
            "/echo": {"GET": echo, "POST": echo, "PUT": echo},
            "/pieces": pieces,
            "/big": big,
            "/flood": flood,
            "/events": events,
            "/boom": boom,
            "/oom": oom,
            "/stats": stats,
            "/kill-accept": kill_accept,
            "/publish": publish,
            "/raw": raw_status,
            "/limit": limit,
            "/quit": quit_,
        },
        (("/static/", static),),
    )
)
for a in sys.argv[4:]:
    k, v = a.split("=")
    if k == "gc":
        if v == "off":
            gc.disable()
    elif k == "raw":
        from hub import Hub
        from net.tcp_raw import RawServer

        hub = Hub()
        raw = RawServer(hub, "127.0.0.1", int(v), 2, 1000)
    else:
        setattr(Server, k, int(v))
log.quiet = True


async def main():
    await srv.start("127.0.0.1", PORT)
    if raw is not None:
        await raw.start()
    print("ready", PORT)
    await stop.wait()
    await asyncio.sleep(0.1)  # let /quit's response go
    srv.close()
    if raw is not None:
        raw.close()


asyncio.run(main())

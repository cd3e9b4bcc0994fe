"""microdot serving what http_server_app.py serves at / and /stats, for the
allocation comparison of host_tests/test_http_server.py (Unix port).

    micropython http_microdot_app.py MICRODOT_PARENT_DIR PORT [gc=off]

Prints "ready PORT"; GET /quit stops it.
"""

import sys

sys.path.insert(0, sys.argv[1])

import gc  # noqa: E402
import json  # noqa: E402

from microdot import Microdot  # noqa: E402

app = Microdot()


@app.get("/")
async def hello(req):
    return "hello", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/stats")
async def stats(req):
    return json.dumps({"mem_alloc": gc.mem_alloc()}), 200, {"Content-Type": "application/json"}  # type: ignore[attr-defined]


@app.get("/quit")
async def quit_(req):
    app.shutdown()
    return "bye"


if "gc=off" in sys.argv[3:]:
    gc.disable()
print("ready", sys.argv[2])
app.run(host="127.0.0.1", port=int(sys.argv[2]))

"""The runtime under real MicroPython: config validation, the hub, the meter
pipeline with recorded telegrams, the payload builders (status and metrics pages),
the HTTP server built for the app, and the heap per telegram.

Plain script for run.mjs (it uses top-level await, which only that runner
allows); exits 1 if any check failed. The two
recorded telegrams are embedded (host_tests/telegrams/se-lg-e360-01.txt and
nl-dsmr5-iskra-01.txt) so no file has to be copied into the FS.
"""

import gc
import json
import sys


import config
from app import App
from board import Board
from hub import Hub
from meter import Pipeline
from p1.bodyread import items
from web import api

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL", what)


FI = (
    b"/LGF5E360\r\n\r\n0-0:1.0.0(210222161900W)\r\n1-0:1.8.0(00000896.02"
    b"0*kWh)\r\n1-0:2.8.0(00000048.792*kWh)\r\n1-0:3.8.0(00000518.309*"
    b"kVArh)\r\n1-0:4.8.0(00000023.732*kVArh)\r\n1-0:1.7.0(0000.000*kW"
    b")\r\n1-0:2.7.0(0000.020*kW)\r\n1-0:3.7.0(0000.000*kVAr)\r\n1-0:4.7"
    b".0(0000.308*kVAr)\r\n1-0:21.7.0(0000.000*kW)\r\n1-0:22.7.0(0000."
    b"012*kW)\r\n1-0:41.7.0(0000.000*kW)\r\n1-0:42.7.0(0000.071*kW)\r\n1"
    b"-0:61.7.0(0000.063*kW)\r\n1-0:62.7.0(0000.000*kW)\r\n1-0:23.7.0("
    b"0000.000*kVAr)\r\n1-0:24.7.0(0000.146*kVAr)\r\n1-0:43.7.0(0000.0"
    b"00*kVAr)\r\n1-0:44.7.0(0000.135*kVAr)\r\n1-0:63.7.0(0000.000*kVA"
    b"r)\r\n1-0:64.7.0(0000.026*kVAr)\r\n1-0:32.7.0(230.1*V)\r\n1-0:52.7"
    b".0(232.2*V)\r\n1-0:72.7.0(230.4*V)\r\n1-0:31.7.0(000.6*A)\r\n1-0:5"
    b"1.7.0(000.6*A)\r\n1-0:71.7.0(000.3*A)\r\n!A077\r\n"
)
DSMR5 = (
    b"/ISk5\\2MT382-1000\r\n\r\n1-3:0.2.8(50)\r\n0-0:1.0.0(170102192002W)"
    b"\r\n0-0:96.1.1(4B384547303034303436333935353037)\r\n1-0:1.8.1(00"
    b"0004.426*kWh)\r\n1-0:1.8.2(000002.399*kWh)\r\n1-0:2.8.1(000002.4"
    b"44*kWh)\r\n1-0:2.8.2(000000.000*kWh)\r\n0-0:96.14.0(0002)\r\n1-0:1"
    b".7.0(00.244*kW)\r\n1-0:2.7.0(00.000*kW)\r\n0-0:96.7.21(00013)\r\n0"
    b"-0:96.7.9(00000)\r\n1-0:99.97.0(0)(0-0:96.7.19)\r\n1-0:32.32.0(0"
    b"0000)\r\n1-0:52.32.0(00000)\r\n1-0:72.32.0(00000)\r\n1-0:32.36.0(0"
    b"0000)\r\n1-0:52.36.0(00000)\r\n1-0:72.36.0(00000)\r\n0-0:96.13.0()"
    b"\r\n1-0:32.7.0(0230.0*V)\r\n1-0:52.7.0(0230.0*V)\r\n1-0:72.7.0(022"
    b"9.0*V)\r\n1-0:31.7.0(0.48*A)\r\n1-0:51.7.0(0.44*A)\r\n1-0:71.7.0(0"
    b".86*A)\r\n1-0:21.7.0(00.070*kW)\r\n1-0:41.7.0(00.032*kW)\r\n1-0:61"
    b".7.0(00.142*kW)\r\n1-0:22.7.0(00.000*kW)\r\n1-0:42.7.0(00.000*kW"
    b")\r\n1-0:62.7.0(00.000*kW)\r\n0-1:24.1.0(003)\r\n0-1:96.1.0(323232"
    b"3241424344313233343536373839)\r\n0-1:24.2.1(170102161005W)(000"
    b"00.107*m3)\r\n0-2:24.1.0(003)\r\n0-2:96.1.0()\r\n!6EEE\r\n"
)


class FakeBoard(Board):
    """No hardware: a list of byte chunks as the meter."""

    def __init__(self, chunks=()):
        Board.__init__(self, {"name": "fake", "chip": "host", "storage_dir": "/tmp"})
        self.chunks = list(chunks)
        self.dr = None

    def open_meter(self, source=""):
        board = self

        class Src:
            reconnect = False

            async def read(self, n):
                return board.chunks.pop(0) if board.chunks else b""

            def close(self):
                pass

        return Src()

    def data_request(self, on):
        self.dr = on


# --- config ------------------------------------------------------------------
cfg, errs = config.validate({})
check(errs == [] and cfg["http"]["port"] == 80, "config defaults")
cfg, errs = config.validate({"http": {"port": 0}, "meter": {"std_offset": "+01:00"}, "mqtt": {"tls": 1}, "x": 1})
check(len(errs) == 3, "config: three errors, got %r" % (errs,))
check(cfg["http"]["port"] == 80 and cfg["meter"]["std_offset"] == "+01:00", "config fallback")
check(cfg["mqtt"]["tls"] is False, "config: int is not a bool")
try:
    import os

    os.mkdir("/tmp")
except OSError:
    pass
with open("/tmp/bad.json", "w") as f:
    f.write("{broken")
cfg, errs = config.load("/tmp/bad.json")
check(cfg == config.DEFAULTS and len(errs) == 1, "config: broken file -> defaults + error")
cfg, errs = config.load("/tmp/missing.json")
check(len(errs) == 1, "config: missing file -> error")
good = config.copy_defaults()
good["wifi"]["password"] = "secret"
config.save("/tmp/c.json", good)
check(config.load("/tmp/c.json") == (good, []), "config: save/load roundtrip")
check(config.public(good)["wifi"]["password"] == "***", "config: password masked")
check(config.parse_offset("+02:00") == 120 and config.parse_offset("x") is None, "offset")

# --- hub -----------------------------------------------------------------------
hub = Hub()
sub = hub.subscribe(2, "t")
for i in range(5):
    hub.publish(('{"i": %d}' % i).encode(), 0, b"x")
check(len(sub._q) == 2 and sub.dropped == 3, "hub: bounded, drops oldest")
check(sub.get_nowait().body == b'{"i": 3}', "hub: oldest kept is #4")
hub.subs.remove(sub)


# --- pipeline ------------------------------------------------------------------
def chunks(data, n):
    return [data[i : i + n] for i in range(0, len(data), n)]


hub = Hub()
p = Pipeline(hub, 3072, 120)
for c in chunks(FI, 7):
    p.feed(c)
check(p.accepted == 1 and hub.sample is not None, "pipeline: fi telegram accepted")
r = dict(items(hub.sample.body))
check(r["energy_import_kwh"] == "896.020", "exact energy %r" % (r.get("energy_import_kwh"),))
check(hub.sample.raw == FI, "raw bytes kept exactly")
bad = FI.replace(b"896.020", b"896.021")
p.feed(b"\x00\xffnoise" + bad)
check(p.accepted == 1 and p.rejected_crc == 1, "pipeline: bad CRC rejected")
check(dict(items(hub.sample.body))["energy_import_kwh"] == "896.020", "bad CRC never a value")
nocrc = FI[: FI.rindex(b"!") + 1] + b"\r\n"
p.feed(nocrc)
check(p.accepted == 1 and p.rejected_no_crc == 1, "pipeline: no CRC after CRCs rejected")
p2 = Pipeline(Hub(), 3072, 60)
p2.feed(nocrc)
check(p2.accepted == 1, "pipeline: no CRC accepted while no CRC was ever seen")
p.feed(DSMR5)
check(p.accepted == 2 and dict(items(hub.sample.body))["meter"].startswith('"ISk5'), "dsmr5 accepted")
st = p.status()
check(st["framer_skipped_bytes"] >= 7 and st["accepted"] == 2, "status counters %r" % (st,))

# --- meter task with a fake source ---------------------------------------------
import meter  # noqa: E402

fb = FakeBoard(chunks(FI + DSMR5, 100))
hub = Hub()
p = Pipeline(hub)
await meter.run(fb, p, "fake")  # noqa: F704 - run.mjs allows top-level await
check(p.accepted == 2 and fb.dr is True and p.source_state == "ended", "meter.run")

# --- app + payload builders ------------------------------------------------------
from web import metrics as metrics_mod  # noqa: E402
from web import status as st_mod  # noqa: E402


def page(gen):
    return "".join(gen)


def reading_body(sample):
    """The reading JSON as one bytes object (the server sends api.reading_parts as they are)."""
    a, b, c = api.reading_parts(sample)
    return bytes(a) + b + bytes(c)


cfg = config.copy_defaults()
app = App(cfg, ["config: test error"], FakeBoard())
check(
    app.device_id == "000000000000" and app.hostname == "p1-0000", "device id from the MAC, mDNS name p1-<last 4 hex>"
)
check(page(metrics_mod.metrics(app)).find("p1_reading") < 0, "metrics before the first telegram")
app.pipeline.feed(FI)
body = reading_body(app.hub.sample).decode()
d = json.loads(body)
check(d["meter"] == "LGF5E360" and d["age_s"] == 0, "reading body")
check('"energy_import_kwh": 896.020' in body, "exact digits in JSON: " + body[:200])
check(body.index('"timestamp"') < body.index('"meter"') < body.index('"age_s"'), "key order")
text = page(st_mod.status(app))
s = json.loads(text)
check(s["config_errors"] == ["config: test error"] and s["meter"]["accepted"] == 1, "status")
check(s["free_heap"] is None or s["free_heap"] > 0, "free heap")
check(
    text.startswith('{"version": ') and text.index('"board"') < text.index('"chip"') < text.index('"device_id"'),
    "status order fixed",
)
check(text.index('"log"') < text.index('"wifi"') < text.index('"meter"') < text.index('"config"'), "sections in order")
m = page(metrics_mod.metrics(app))
check(
    'p1_reading{name="energy_import_kwh",obis="1-0:1.8.0",unit="kWh"} 896.020' in m,
    "metrics exact",
)
check('p1_telegrams_total{result="accepted"} 1' in m, "metrics counter")
# static files: web.files (imported for the call by the server, here once)
import web.files as wfiles  # noqa: E402


class NoGzip:
    headers = {}


for bad in ("../x", "a/.b", "", "/etc/passwd", "a//b", "a\\b"):
    check(wfiles.static(NoGzip, api.STATIC, bad)[:3] == (400, "application/json", '{"error": "bad path", "status": 400}'),
          "static path guard: %r" % bad)  # fmt: skip
check(wfiles.static(NoGzip, "/nonexistent", "app.js")[0] == 404, "static: missing file")
check(wfiles.content_type("x.js").startswith("text/javascript"), "content type")
check(wfiles.content_type("x.js.gz").startswith("text/javascript"), "content type of a .gz")
check(wfiles.content_type("x.webmanifest") == "application/manifest+json", "content type, last")
check(wfiles.content_type("x.exe") == "application/octet-stream", "content type, unknown")
del sys.modules["web.files"]


# --- heap: flat per telegram -------------------------------------------------------
# This port's gc.collect() reclaims nothing while a script runs (it cannot scan
# the wasm stack), so "retained" figures only grow here. What it measures
# faithfully is how much each telegram allocates (gc disabled around it): that
# must be the same for the 1st and the 40th telegram. What is kept between
# telegrams is bounded by construction (one frame buffer, the latest Sample,
# fixed-size subscriber rings).


def alloc():
    try:
        return gc.mem_alloc()
    except AttributeError:  # CPython: no figure
        return 0


def per_telegram(fn, n):
    out = []
    for i in range(n):
        gc.collect()
        gc.disable()
        a0 = alloc()
        fn(i)
        out.append(alloc() - a0)
        gc.enable()
    return out


hub = Hub()
p = Pipeline(hub)
subs = [hub.subscribe(4, "sse"), hub.subscribe(4, "raw")]
fi_chunks = chunks(FI, 256)


def one(i):
    for c in fi_chunks:
        p.feed(c)
    for s_ in subs:
        s_.get_nowait()


def one_with_json(i):
    one(i)
    reading_body(hub.sample)  # what each SSE event costs


a = per_telegram(one, 40)
b = per_telegram(one_with_json, 40)
check(p.accepted == 80, "80 telegrams accepted")
print("heap: framer buffer %d B preallocated; bytes allocated per %d-byte telegram:" % (p.framer.size, len(FI)))
print("  pipeline+hub+2 subscribers: #2 %d, #40 %d, max %d" % (a[1], a[-1], max(a[1:])))
print("  + reading JSON (one SSE event): #2 %d, #40 %d, max %d" % (b[1], b[-1], max(b[1:])))
check(max(a[1:]) - min(a[1:]) <= 256, "allocation per telegram flat: %r" % (a,))
check(max(b[1:]) - min(b[1:]) <= 256, "allocation per telegram + JSON flat: %r" % (b,))

gc.collect()
gc.disable()
a0 = alloc()
app = App(config.copy_defaults(), [], FakeBoard())
start_app = alloc() - a0
a0 = alloc()
api.make_server(app)
start_web = alloc() - a0
gc.enable()
print("  at start: App (hub, pipeline, 3 KB frame buffer) %d B; HTTP server + routes %d B" % (start_app, start_web))
app.pipeline.feed(FI)
c = per_telegram(lambda i: (page(st_mod.status(app)), page(metrics_mod.metrics(app))), 20)
print("  one /api/v1/status + one /metrics: #2 %d, #20 %d" % (c[1], c[-1]))
check(max(c[1:]) - min(c[1:]) <= 256, "status+metrics allocation flat: %r" % (c,))


# --- the history job out of memory before its snapshot: tried again -------------
class NoRoom:
    """`history` whose code could not be loaded: the job runs out of memory."""

    def job(self, app, body):
        raise MemoryError


app = App(config.copy_defaults(), [], FakeBoard())
sys.modules["history"] = NoRoom()  # (found by the job's __import__)
tries = []
for i in range(5):
    app._hq = 7  # the quarter the job was started for
    await app._history(b'{"timestamp": "2026-12-03T10:15:02+01:00"}')  # noqa: F704
    tries.append(app._hq)
sys.modules.pop("history")
check(tries == [-1, -1, -1, 7, 7], "history out of memory: the next telegram tries again, 3 times: %r" % (tries,))

print("runtime_mp: %d failures" % len(failures))
sys.exit(1 if failures else 0)

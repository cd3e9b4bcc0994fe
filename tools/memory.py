#!/usr/bin/env python3
"""The memory budget of a classic ESP32 and its Unix-port equivalent (docs/MEMORY.md).

A classic ESP32 without PSRAM, running the stock MicroPython image, gives
Python about BUDGET_32 bytes of GC heap for everything (code imported from
.mpy files included) with Wi-Fi and one TLS connection up. The tests run the
whole firmware under MicroPython's Unix port, which is 64-bit: the same code
and data take more heap there, code and data by different factors. This
module measures both factors on the same steps under the WebAssembly port
(32-bit, the ESP32's word size) and the Unix port, and derives the Unix
heap limit that stands for the ESP32 budget:

    limit = F_CODE * CODE_32 + F_DATA * (BUDGET_32 - CODE_32)

CODE_32 is the most code (32-bit) the firmware may load; the budget test
checks that the firmware's code stays below it, and the limit is then on the
safe side (data, which grows more on 64-bit, gets no more room than on the
device).

    python3 tools/memory.py            # measure the factors now, print the figures
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_32 = 100 * 1024  # classic ESP32, stock image, Wi-Fi + one TLS connection
CODE_32 = 64 * 1024  # the most code (32-bit, imported from .mpy) the firmware may load
# Measured by `python3 tools/memory.py` (WebAssembly 1.29 vs Unix port 1.29-preview),
# see docs/MEMORY.md; `make bench` measures them again.
F_CODE = 1.29
F_DATA = 1.28


def unix_limit(f_code: float = F_CODE, f_data: float = F_DATA) -> int:
    """The Unix-port heap (bytes, rounded up to KB) that stands for BUDGET_32 on the device."""
    b = f_code * CODE_32 + f_data * (BUDGET_32 - CODE_32)
    return -(-int(b) // 1024) * 1024


# The modules a running dongle (host board aside) has imported.
RUNTIME_MODULES = [
    "app", "aio", "board", "clock", "hub", "log", "meter", "version",
    "p1.body", "p1.bodyread", "p1.crc", "p1.framer", "p1.obis",
    "web.api", "web.server", "net.tcp_raw", "net.mqtt", "net.mqtt_client", "mem",
]  # fmt: skip

TELEGRAM = ROOT / "host_tests" / "telegrams" / "nl-dsmr5-iskra-01.txt"

# The data step: what the firmware keeps while it runs, built from the same
# code on both ports: pipeline buffers, samples held by subscriber queues, a
# full MQTT ring of bodies, the configuration, log lines, dicts of counters.
DATA_STEP = """
import asyncio
import config, log
from app import App
from board import Board
from net.tcp_raw import RawServer
from net.mqtt_client import MqttService


class CalBoard(Board):
    def __init__(self):
        Board.__init__(self, {"name": "esp32-devkit", "chip": "esp32", "storage_dir": "/"})


cfg, errs = config.validate({"wifi": {"ssid": "home", "password": "secret"},
                             "mqtt": {"enabled": True, "host": "192.168.1.10", "tls": True, "ca": "/ca.der"}})
app = App(cfg, errs, CalBoard())
web = __import__("web.api", None, None, ["make_server"]).make_server(app)
raw = RawServer(app.hub, "0.0.0.0", 2323)
svc = MqttService(app.hub, cfg["mqtt"], app.device_id, app.version, "esp32-devkit")
app.mqtt = svc
tel = open(%(telegram)r, "rb").read()
for i in range(4):
    app.pipeline.feed(tel)
for i in range(4):
    svc.offer(app.hub.sample)
for i in range(8):
    log.warn("calibration line %%d with some text" %% i)
# The tasks a running dongle has: meter, supervisor, MQTT (its session and
# reader; the service is the hub's subscriber itself), the HTTP server's
# connections (a kept-alive poller, an SSE stream), the raw client;
# coroutine frames and Task objects, created, never run.
sse = app.hub.subscribe(2, "sse")
rawsub = app.hub.subscribe(2, "raw")
tasks = [
    asyncio.create_task(app._supervise()),
    asyncio.create_task(svc.run()),
    asyncio.create_task(web._conn(None, None)),
    asyncio.create_task(web._conn(None, None)),
    asyncio.create_task(raw._conn(None, None)),
    asyncio.create_task(sse.get()),
    asyncio.create_task(rawsub.get()),
]
"""


def build(out: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tools"))
    import build_device

    if not (out / build_device.MARKER).exists() or os.environ.get("P1_REBUILD", "1") == "1":
        build_device.build(out, march="xtensawin")  # the same bytecode on both ports
    return out


def steps_file(out: Path, modules: list[str]) -> Path:
    present = [m for m in modules if (out / (m.replace(".", "/") + ".mpy")).exists()]
    text = "#--- code\nimport " + ", ".join(present) + "\n#--- data\n" + DATA_STEP % {"telegram": str(TELEGRAM)}
    f = out.parent / (out.name + "-steps.py")
    f.write_text(text)
    return f


def parse(text: str) -> dict[str, int]:
    out = {}
    for line in text.split("\n"):
        parts = line.split()
        if len(parts) == 3 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def measure(modules: list[str] | None = None, out: Path | None = None) -> dict[str, dict[str, int]]:
    """{"wasm": {"code": B, "data": B}, "unix": {...}} for the modules and DATA_STEP."""
    out = out or ROOT / "build" / "memcal"
    build(out)
    steps = steps_file(out, modules or RUNTIME_MODULES)
    wasm = subprocess.run(
        ["node", str(ROOT / "tools" / "mp" / "heap_steps.mjs"), str(out), str(steps), str(TELEGRAM)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if wasm.returncode:
        raise RuntimeError("heap_steps.mjs failed:\n" + wasm.stderr)
    mp = Path(sys.executable).parent / "micropython"
    unix = subprocess.run(
        [str(mp), "-X", "heapsize=4M", str(ROOT / "tools" / "mp" / "heap_steps.py"), str(out), str(steps)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if unix.returncode:
        raise RuntimeError("heap_steps.py failed:\n" + unix.stderr + unix.stdout)
    return {"wasm": parse(wasm.stdout), "unix": parse(unix.stdout)}


def main() -> int:
    m = measure()
    w, u = m["wasm"], m["unix"]
    fc, fd = u["code"] / w["code"], u["data"] / w["data"]
    print(f"code: {w['code']} B (32-bit WebAssembly) -> {u['code']} B (64-bit Unix): factor {fc:.2f}")
    print(f"data: {w['data']} B (32-bit WebAssembly) -> {u['data']} B (64-bit Unix): factor {fd:.2f}")
    print(f"budget {BUDGET_32 // 1024} KB (32-bit) with at most {CODE_32 // 1024} KB code ->"
          f" Unix-port limit {unix_limit(fc, fd) // 1024}K (documented factors: {unix_limit() // 1024}K)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

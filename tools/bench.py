#!/usr/bin/env python3
"""`make bench`: speed and memory figures, each against a baseline measured in the same run.

1. CPython: decode the same 10 000-telegram stream with our parser and with
   dsmr_parser (the baseline: TelegramBuffer + TelegramParser, the way its
   serial reader uses it); print the ratio. Goal: >= 5x.
2. MicroPython (WebAssembly port, node): heap bytes allocated per telegram
   (gc.mem_alloc deltas) at the start and the end of a 1 000-telegram run.
   Goal: small and flat. Then the live heap the device code takes once
   imported from .mpy files, against microdot's own.
3. MQTT latency (tools/bench_mqtt.py, when present): last telegram byte in ->
   subscriber has the state message, p50/p99 over 1 000 telegrams. Goal p99 <= 50 ms.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT / "tools"))
TG = ROOT / "host_tests" / "telegrams"
N = int(os.environ.get("BENCH_TELEGRAMS", "10000"))

STREAMS = {
    # name: (recorded telegrams cycled, dsmr_parser spec name)
    "Finnish/Swedish (E360, Aidon, Sagemcom)": (
        ["se-lg-e360-01.txt", "se-lg-e360-02.txt", "xx-lg-e360-04.txt", "se-aidon-6534-01.txt",
         "se-sagemcom-ell5-01.txt"],
        "SWEDEN",
    ),
    "Dutch DSMR 5 (Iskra)": (["nl-dsmr5-iskra-01.txt", "nl-dsmr5-iskra-am550-02.txt"], "V5"),
}


def ours(stream: bytes) -> int:
    from p1.framer import Framer
    from p1.parse import parse
    from p1.readings import readings

    fr = Framer(3072)
    n = 0
    for i in range(0, len(stream), 4096):
        fr.feed(stream[i : i + 4096])
        while (f := fr.next_frame()) is not None:
            if fr.crc == "ok":
                readings(parse(f, "ok", 120))
                n += 1
    return n


def theirs(stream: bytes, spec_name: str) -> int:
    from dsmr_parser import telegram_specifications
    from dsmr_parser.clients.telegram_buffer import TelegramBuffer
    from dsmr_parser.parsers import TelegramParser

    parser = TelegramParser(getattr(telegram_specifications, spec_name))
    buf = TelegramBuffer()
    text = stream.decode("latin-1")
    n = 0
    for i in range(0, len(text), 4096):
        buf.append(text[i : i + 4096])
        for t in buf.get_all():
            parser.parse(t)
            n += 1
    return n


def best_of(fn, *args, runs: int = 3) -> tuple[float, int]:
    best = float("inf")
    count = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        count = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, count


def bench_parser() -> None:
    import dsmr_parser

    version = getattr(dsmr_parser, "__version__", None)
    if version is None:
        from importlib.metadata import version as v

        version = v("dsmr-parser")
    print(f"== Parser on CPython {sys.version.split()[0]}: {N} telegrams per stream, best of 3")
    print(f"   baseline: dsmr_parser {version} (TelegramBuffer + TelegramParser)")
    for name, (files, spec) in STREAMS.items():
        tel = [(TG / f).read_bytes() for f in files]
        stream = b"".join(tel[i % len(tel)] for i in range(N))
        t_ours, n_ours = best_of(ours, stream)
        t_theirs, n_theirs = best_of(theirs, stream, spec)
        assert n_ours == n_theirs == N, (n_ours, n_theirs)
        print(
            f"   {name}: ours {t_ours * 1e6 / N:7.1f} us/telegram, dsmr_parser "
            f"{t_theirs * 1e6 / N:7.1f} us/telegram -> ours is {t_theirs / t_ours:.1f}x faster"
            f" (goal >= 5x)"
        )


MP_SCRIPT = r"""
import gc, sys, time
from p1.framer import Framer
from p1.parse import parse
from p1.readings import readings
from p1.jsonout import dumps
tel = [open(p, "rb").read() for p in sys.argv[1:]]
fr = Framer(3072)
n = 1000
marks = (1, 10, 100, 500, 1000)
t0 = time.ticks_ms()
for i in range(1, n + 1):
    data = tel[i % len(tel)]
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    fr.feed(data)
    while True:
        f = fr.next_frame()
        if f is None:
            break
        dumps(readings(parse(f, fr.crc, 120)))
    used = gc.mem_alloc() - a0
    gc.enable()
    if i in marks:
        print("   telegram %4d (%d B): %5d B allocated" % (i, len(data), used))
ms = time.ticks_diff(time.ticks_ms(), t0)
print("   %d telegrams in %d ms under the WebAssembly port (not ESP32 speed)" % (n, ms))
"""


def bench_micropython() -> None:
    print("== Parser under MicroPython (WebAssembly port): heap per telegram,"
          " framer + parse + readings + JSON")
    print("   baseline: the first telegram of the same run. (This port's gc.collect() frees")
    print("   nothing inside one run, so live-heap size cannot be shown here; allocation")
    print("   per telegram is the figure it measures faithfully.)")
    files = [str(TG / f) for f in STREAMS["Finnish/Swedish (E360, Aidon, Sagemcom)"][0]]
    script = ROOT / "build" / "bench_mp.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(MP_SCRIPT)
    r = subprocess.run(
        ["node", str(ROOT / "tools" / "mp" / "run.mjs"), str(script), *files],
        capture_output=True, text=True, timeout=600,
    )
    sys.stdout.write(r.stdout)
    if r.returncode:
        sys.stdout.write(r.stderr)
        raise SystemExit("MicroPython benchmark failed")


IMPORT_GROUPS = [
    "parser=p1.framer,p1.parse,p1.readings,p1.jsonout",
    "runtime=app,config,board,hub,meter,aio,fsutil,log",
    "microdot=microdot,microdot.sse",
    "http_api=web.api",
    "mqtt_raw_tcp=net.mqtt_client,net.ha,net.spool,net.tcp_raw",
]


def bench_import_heap() -> None:
    print("== Device code in RAM: live heap after importing the built .mpy files")
    print("   (WebAssembly MicroPython, gc between imports; stock image, modules on the filesystem)")
    out = ROOT / "build" / "device"
    subprocess.run([sys.executable, str(ROOT / "tools" / "build_device.py"), "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    r = subprocess.run(["node", str(ROOT / "tools" / "mp" / "import_heap.mjs"), str(out), *IMPORT_GROUPS],
                       capture_output=True, text=True, timeout=300)
    if r.returncode:
        sys.stdout.write(r.stderr)
        raise SystemExit("import heap measurement failed")
    sizes = {}
    for line in r.stdout.split("\n"):
        if line.strip():
            label, added, live = line.split()
            sizes[label] = int(added)
            print(f"   {label:14s} +{int(added) / 1024:5.1f} KB   (live {int(live) / 1024:5.1f} KB)")
    ours = sum(v for k, v in sizes.items() if k != "microdot")
    print(f"   baseline: microdot itself {sizes['microdot'] / 1024:.1f} KB; our modules {ours / 1024:.1f} KB"
          f" = {ours / sizes['microdot']:.1f}x microdot. ~100 KB free heap on an ESP32 without PSRAM:"
          " freeze the modules or use ROMFS on the device (docs/RUNTIME.md, Memory).")


def bench_mqtt() -> None:
    try:
        import bench_mqtt
    except ImportError:
        print("== MQTT latency: tools/bench_mqtt.py not present")
        return
    bench_mqtt.main([]) if hasattr(bench_mqtt, "main") else print(bench_mqtt.run())


def main() -> int:
    bench_parser()
    bench_micropython()
    bench_import_heap()
    bench_mqtt()
    return 0


if __name__ == "__main__":
    sys.exit(main())

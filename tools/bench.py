#!/usr/bin/env python3
"""`make bench`: every speed and memory figure of the firmware, each against a
baseline measured in the same run or a budget stated beside it; a summary
table at the end, and exit status 1 when any figure misses its target.

1. CPython (tools/bench_cpython.py): the parser and the decode tool end to end
   against dsmr_parser. Goal >= 5x both.
2. MicroPython's Unix port (tools/bench_mpspeed.py): telegram bytes -> JSON,
   the device pipeline against the general decoder (goal >= 3x) and a
   regex-per-line baseline with a bitwise CRC.
3. Allocation per telegram, 32-bit and 64-bit (tools/bench_memory.py). Goal <= 6 KB 32-bit.
4. Code in RAM from .mpy and from ROMFS, 32-bit and 64-bit, against the
   budget's code share; web/server.py against microdot.
5. The whole firmware at the budget's heap under load (tools/loadgen.py):
   no MemoryError, free heap left, a 4 KB block free all along.
6. MQTT latency on the host board (tools/bench_mqtt.py). Goal p99 <= 50 ms.

docs/BENCH.md says what each figure is and how it is measured.

    python3 tools/bench.py [--skip soak,mqtt,...] [--only cpython,...]
    sections: cpython mpspeed memory soak mqtt
    BENCH_TELEGRAMS=N: telegrams per CPython stream (default 2000)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "firmware", ROOT / "tools"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

SECTIONS = ("cpython", "mpspeed", "memory", "soak", "mqtt")
MQTT_N = 500


def log(s: str = "") -> None:
    print(s, flush=True)


def _error(section: str, e: BaseException) -> dict:
    last = traceback.format_exception_only(type(e), e)[-1].strip()
    log(f"   {section} FAILED: {last}")
    traceback.print_exc(limit=-3, file=sys.stdout)
    return {"figure": f"{section}: ran", "value": "error: " + last[:60], "target": "runs", "ok": False}


def summary(figs: list[dict]) -> str:
    rows = [("figure", "value", "target", "result")]
    for f in figs:
        rows.append(
            (f["figure"], f["value"], f["target"], "info" if f["ok"] is None else ("OK" if f["ok"] else "MISSED"))
        )
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    line = "-+-".join("-" * n for n in w)
    out = [" | ".join(r[i].ljust(w[i]) for i in range(4)) for r in rows]
    return "\n".join([out[0], line, *out[1:]])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip", default="", help="comma-separated sections to leave out")
    ap.add_argument("--only", default="", help="comma-separated sections to run")
    a = ap.parse_args(argv)
    want = [s for s in SECTIONS if (not a.only or s in a.only.split(",")) and s not in a.skip.split(",")]
    t0 = time.monotonic()
    figs: list[dict] = []
    code: dict | None = None
    dev = image = None

    if "cpython" in want:
        try:
            import bench_cpython

            figs += bench_cpython.run(int(os.environ.get("BENCH_TELEGRAMS", "2000")), log)
        except Exception as e:  # noqa: BLE001 - a section that breaks is a missed figure, not the end
            figs.append(_error("cpython", e))
    if "mpspeed" in want:
        try:
            import bench_mpspeed

            figs += bench_mpspeed.run(log=log)
        except Exception as e:  # noqa: BLE001
            figs.append(_error("mpspeed", e))
    if "memory" in want:
        try:
            import bench_memory

            dev, image = bench_memory.build_device()
            figs += bench_memory.allocation(dev, bench_memory.build_x64(), log)
            f, code = bench_memory.code_in_ram(dev, image, log)
            figs += f
        except Exception as e:  # noqa: BLE001
            figs.append(_error("memory", e))
    if "soak" in want:
        try:
            import bench_memory

            figs += bench_memory.soak32(log)
            figs += bench_memory.soak(code, log)
        except Exception as e:  # noqa: BLE001
            figs.append(_error("soak", e))
    if "mqtt" in want:
        try:
            import bench_mqtt

            figs += bench_mqtt.report(bench_mqtt.run(MQTT_N), log)
        except Exception as e:  # noqa: BLE001
            figs.append(_error("mqtt", e))

    missed = [f for f in figs if f["ok"] is False]
    log(f"\n== Summary ({time.monotonic() - t0:.0f} s; 'info' rows have no target of their own)")
    log(summary(figs))
    log(f"\n{len(missed)} figure(s) MISSED" if missed else "\nevery figure meets its target")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The memory budget: the whole firmware under MicroPython's Unix port with a hard
heap (docs/MEMORY.md), under the load a dongle sees at home (tools/loadgen.py,
shared with `make bench`):

- telegrams (DSMR 5; a Finnish E360 for `[device-loads]`), CRC-checked, decoded,
  published;
- MQTT QoS 1 over TLS (MicroPython's own ssl on mbedTLS) to a real mosquitto, with
  Home Assistant discovery, and a broker outage long enough for the RAM ring to
  spill to the flash spool;
- one SSE client, one raw-telegram TCP client, and the live page's polling of
  status, reading and metrics (every 0.5 s; the page asks every 3 s);

then: no MemoryError anywhere, no HTTP error, every reading delivered to the MQTT
subscriber exactly (each telegram's state, compared with what SSE delivered), and
the lowest free heap and largest free block printed. `[device]` runs it on Debian's
32-bit Unix port (tools/mp32.py) at the ESP32's own budget, 100 KB, a telegram a
second, and `[device-loads]` the same with load management's rules and the meter
they were made for; `[today]` on the 64-bit port at five telegrams a second with
load management's rules, at the heap it needs today (a guard against growth).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from mosquitto import Mosquitto, available
from runtime_harness import Firmware

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import loadgen  # noqa: E402
import memory  # noqa: E402
import run_host  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="mosquitto not installed (make setup)")


# The heap the whole firmware needs today under this load (Unix port, 64-bit): the
# guard that keeps it from growing while the gap to the budget is closed. Lower it
# as cuts land; never raise it without saying why in docs/MEMORY.md.
TODAY_K = 164  # with load management's rules running (RULES below): 152K without a relay
TODAY_PLAIN_K = 152  # the host board without relays (the soak, the settings and update tests)
ROMFS = -1  # the budget's heap plus the ROMFS image's size
# Load management's rules run on every reading (issue 11): two relays, the phase
# guard (25 A) and the power guard (the tariff monitor's projection).
RULES = {
    "board": "host-relays",
    "loads": {"limit_w": 20000},
    "relay1": {"name": "boiler", "priority": 1},
    "relay2": {"name": "ev", "priority": 2},
}


# Each case: (heap in K, under Debian's 32-bit MicroPython (tools/mp32.py), load
# management's RULES, seconds between telegrams, telegrams, telegrams before the outage,
# the simulated meter: "dsmr5" a Dutch DSMR 5 meter with a gas meter on its M-Bus, "fi"
# a Finnish Landis+Gyr E360 (tools/simulate.py)).
CASES = {
    # The device's own budget: 100 KB of a 32-bit heap, the ESP32's word size and GC
    # block, no calibration factor; the load at a meter's rate (a telegram a
    # second), the host board without relays, the larger DSMR 5 telegram.
    "device": (memory.BUDGET_32 // 1024, True, False, 1.0, 200, 60, "dsmr5"),
    # The same with load management's rules running (issue 11), with the meter they were
    # made for (the first target: Finnish power tariffs and fuses), at ten times its rate.
    "device-loads": (memory.BUDGET_32 // 1024, True, True, 1.0, 200, 60, "fi"),
    # The rules with a DSMR 5 meter: not yet (~2-4 KB over: its M-Bus code, its larger telegram).
    "device-loads-dsmr5": (memory.BUDGET_32 // 1024, True, True, 1.0, 200, 60, "dsmr5"),
    # The 64-bit guard: five times a meter's rate with the rules, at TODAY_K.
    "today": (TODAY_K, False, True, loadgen.INTERVAL, loadgen.TOTAL, loadgen.BEFORE_OUTAGE, "dsmr5"),
    # The code from a ROMFS image (a MicroPython image with a ROMFS partition,
    # `make deploy-romfs`): the 64-bit budget plus the image, which is one block in
    # the heap here and memory-mapped flash on the device (docs/MEMORY.md).
    "romfs": (ROMFS, False, True, loadgen.INTERVAL, loadgen.TOTAL, loadgen.BEFORE_OUTAGE, "dsmr5"),
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "case",
    [
        # [device]: a plain test since 2026-12-03: 10 runs of 10 after the last cuts, lowest
        # free heap 7.1-12.4 KB, smallest largest free block 1.8-5.1 KB; passes at 96K (docs/MEMORY.md)
        pytest.param("device"),
        # [device-loads]: a plain test since 2026-12-03 (fourth stop): since its configs go out in
        # pieces it passed at 98K 3 runs of 3 (lowest free heap 7.2-8.2 KB), fails at 96K (docs/MEMORY.md)
        pytest.param("device-loads"),
        pytest.param(
            "device-loads-dsmr5",
            marks=pytest.mark.xfail(
                run=False,
                reason="at the margin: with load management's rules and a DSMR 5 meter ~2-4 KB over until"
                " 2026-12-03, since then 1 run of 2 passed at 100K (the other: the history job out of memory"
                " once, its next try fine), docs/MEMORY.md",
            ),
        ),
        pytest.param("today"),
        pytest.param("romfs"),
    ],
)
def test_whole_firmware_fits_the_classic_esp32_budget_under_load(tmp_path, case):
    heap_k, mp32, rules, interval, total, before, dialect = CASES[case]
    if mp32 and not run_host.MP32_EXE.exists():
        pytest.skip("Debian's 32-bit MicroPython is not installed (make setup; x86 machines only)")
    romfs_args = []
    if heap_k == ROMFS:
        import romfs

        image = len(romfs.make_image(run_host.build_unix()))
        heap_k = memory.unix_limit() // 1024 + -(-image // 1024)
        romfs_args = ["--romfs"]
    # P1_BUDGET_HEAP_K: try another heap, P1_BUDGET_DIALECT another meter (exploring)
    limit = int(os.environ.get("P1_BUDGET_HEAP_K") or heap_k) * 1024
    with Mosquitto(tmp_path / "broker", tls=True) as broker:
        sub = loadgen.state_subscriber(broker)
        fw = Firmware(
            tmp_path,
            "--mp", *(["--mp32"] if mp32 else []), "--heap", f"{limit // 1024}K", "--mem", "1", *romfs_args,
            "--interval", str(interval), "--step", "1", "--dialect", os.environ.get("P1_BUDGET_DIALECT") or dialect,
            "--mqtt", f"mqtts://127.0.0.1:{broker.port}?ca={broker.ca}",
            config=json.dumps(RULES if rules else {}),
        )  # fmt: skip
        try:
            sse = loadgen.SseClient(fw.port)
            raw = loadgen.RawReader(fw.raw_port)
            # [device]: the page's own rate (a status page at most every 3 s); the 64-bit
            # guard six times that
            poll = loadgen.Poller(fw.port, loadgen.PAGE_S if mp32 else loadgen.POLL_S)
            poll.start()
            # How far the meter is: on the 32-bit port counted from the SSE events, not by
            # asking for status every 20 ms (the page's load is the poller's; a status page
            # 50 times a second is the harness's, not a home's); on the 64-bit guard as ever.
            def seen():
                return len(sse.events) if mp32 else fw.status()["telegrams"]

            fw.wait(lambda: seen() >= before, 60 + before * interval, "telegrams before the outage")
            broker.stop()
            time.sleep(loadgen.OUTAGE_S)
            spooled = fw.status()["mqtt"]
            broker.start()
            fw.wait(lambda: seen() >= total, 120 + total * interval, f"{total} telegrams")
            n = fw.status()["telegrams"]
            fw.wait(lambda: len(sse.events) >= n, 20, "SSE events")

            def delivered():
                return {json.loads(p)["timestamp"] for _, p, _ in list(sub.messages)}

            want = {json.loads(d)["timestamp"] for _, _, d in sse.events[:n]}
            fw.wait(lambda: want <= delivered(), 60, "every reading at the MQTT subscriber")
            poll.stop.set()
            poll.join(15)
            status = fw.status()
        finally:
            fw.stop()
            sub.close()
    out = "".join(fw.lines)
    h = loadgen.heap_figures(out, loadgen.BLOCK_BYTES_32 if mp32 else loadgen.BLOCK_BYTES)
    port = "32-bit (Debian's i386 build: the ESP32's word size)" if mp32 else "64-bit"
    print(
        f"\nmemory budget [{case}]: Unix port {port}, heap {limit // 1024}K"
        f"{' (ROMFS image included)' if romfs_args else ''} (the budget: {memory.BUDGET_32 // 1024} KB of a 32-bit"
        f" heap, {memory.unix_limit() // 1024}K of a 64-bit one by tools/memory.py); {n} telegrams {interval} s apart;"
        f" used after start {h['used_after_start']} B, peak {h['peak_used']} B; lowest free heap {h['lowest_free']} B,"
        f" smallest largest-free-block {h['smallest_max_block']} B; spooled during the outage {spooled['spooled']}"
    )
    text = out + fw.stderr()
    lines = text.split("\n")
    bad = [i for i, ln in enumerate(lines) if "out of memory" in ln or "MemoryError" in ln]
    assert not bad, "\n".join(lines[max(0, bad[0] - 12) : bad[0] + 14] if bad else [])
    assert poll.errors == [], poll.errors[:5]
    assert poll.codes.get(200, 0) > (100 if not mp32 else 150)
    m = status["meter"]
    assert m["memory_errors"] == 0 and m["parse_errors"] == 0 and status["memory_errors"] == 0
    assert status["mqtt"]["state"] == "connected" and status["mqtt"]["dropped"] == 0, status["mqtt"]
    assert spooled["spooled"] > 0, "the outage was long enough to reach the flash spool"
    # every reading at the subscriber, with the exact JSON that SSE sent
    by_ts = {json.loads(p)["timestamp"]: p for _, p, _ in sub.messages}
    for _, _, d in sse.events[:n]:
        assert by_ts[json.loads(d)["timestamp"]] == re.sub(r', "age_s": \d+', "", d, count=1).encode()
    assert raw.data.count(b"\r\n!") >= n - 2  # the raw client got the telegrams too
    assert status["restarts"] == {}
    if rules:
        assert [r["name"] for r in status["loads"]["relays"]] == ["boiler", "ev"] and status["loads"]["stale"] is False
    if not mp32:  # (64-bit: a TLS reconnect needs a 3 KB block; 32-bit: printed, the run's no MemoryError is the test)
        assert h["smallest_max_block"] >= 4096, "the heap stayed in one piece"

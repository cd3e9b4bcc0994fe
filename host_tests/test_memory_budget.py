"""The memory budget: the whole firmware, under MicroPython's Unix port with the heap
that stands for a classic ESP32's (tools/memory.py, docs/MEMORY.md), under the load
a dongle sees at home:

- a DSMR 5 telegram every 0.2 s (five times what a Dutch meter sends), CRC-checked,
  decoded, published;
- MQTT QoS 1 over TLS (MicroPython's own ssl on mbedTLS) to a real mosquitto, with
  Home Assistant discovery, and a broker outage long enough for the RAM ring to
  spill to the flash spool;
- one SSE client, one raw-telegram TCP client, and the live page's polling of
  status, reading and metrics (every 0.5 s; the page asks every 3 s);

then: no MemoryError anywhere, no HTTP error, every reading delivered to the MQTT
subscriber exactly (each telegram's state, compared with what SSE delivered), and
the lowest free heap and largest free block printed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from mosquitto import Mosquitto, Subscriber, available
from runtime_harness import Firmware, SseClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import memory  # noqa: E402

pytestmark = pytest.mark.skipif(not available(), reason="mosquitto not installed (make setup)")

INTERVAL = 0.2
BEFORE_OUTAGE = 80  # telegrams
OUTAGE_S = 12.0  # ~60 telegrams while the broker is away: more than the RAM ring holds
TOTAL = 260


class Poller(threading.Thread):
    """The live page's requests, over keep-alive connections like a browser's."""

    def __init__(self, port: int, period: float = 0.5):
        super().__init__(daemon=True)
        self.port = port
        self.period = period
        self.codes: dict[int, int] = {}
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import http.client

        c = None
        while not self.stop.is_set():
            for path in ("/api/v1/status", "/api/v1/reading", "/metrics"):
                try:
                    if c is None:
                        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                    c.request("GET", path)
                    r = c.getresponse()
                    body = r.read()
                    self.codes[r.status] = self.codes.get(r.status, 0) + 1
                    if r.status not in (200, 503) or (r.status == 503 and path != "/api/v1/reading"):
                        self.errors.append(f"{path}: {r.status} {body[:200]!r}")
                    if path == "/api/v1/status" and r.status == 200:
                        json.loads(body)
                except (OSError, http.client.HTTPException, ValueError) as e:
                    self.errors.append(f"{path}: {type(e).__name__}: {e}")
                    if c is not None:
                        c.close()
                    c = None
            self.stop.wait(self.period)
        if c is not None:
            c.close()


class RawReader(threading.Thread):
    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.data = bytearray()

    def run(self) -> None:
        try:
            while True:
                b = self.sock.recv(65536)
                if not b:
                    break
                self.data += b
        except OSError:
            pass


MEM = re.compile(rb"GC: total: (\d+), used: (\d+), free: (\d+)")
MAXFREE = re.compile(rb"max free sz: (\d+)")


@pytest.mark.xfail(reason="being made to fit (issue 8), removed when it passes", strict=False)
@pytest.mark.timeout(400)
def test_whole_firmware_fits_the_classic_esp32_budget_under_load(tmp_path):
    # P1_BUDGET_HEAP_K: try another heap (exploring what the firmware needs); the test uses the budget
    limit = int(os.environ.get("P1_BUDGET_HEAP_K", "0")) * 1024 or memory.unix_limit()
    with Mosquitto(tmp_path / "broker", tls=True) as broker:
        sub = Subscriber(broker, ["p1/+/state"], qos=1, clean=False, client_id="budget-sub")
        fw = Firmware(
            tmp_path,
            "--mp", "--heap", f"{limit // 1024}K", "--mem", "1",
            "--interval", str(INTERVAL), "--step", "1", "--dialect", "dsmr5",
            "--mqtt", f"mqtts://127.0.0.1:{broker.port}?ca={broker.ca}",
        )  # fmt: skip
        try:
            sse = SseClient(fw.port)
            raw = RawReader(fw.raw_port)
            raw.start()
            poll = Poller(fw.port)
            poll.start()
            fw.wait(lambda: fw.status()["telegrams"] >= BEFORE_OUTAGE, 60, "telegrams before the outage")
            broker.stop()
            time.sleep(OUTAGE_S)
            spooled = fw.status()["mqtt"]
            broker.start()
            fw.wait(lambda: fw.status()["telegrams"] >= TOTAL, 120, f"{TOTAL} telegrams")
            n = fw.status()["telegrams"]
            fw.wait(lambda: len(sse.events) >= n, 20, "SSE events")

            def delivered():
                return {json.loads(p)["timestamp"] for _, p, _ in sub.messages}

            want = {json.loads(d)["timestamp"] for _, _, d in sse.events[:n]}
            fw.wait(lambda: want <= delivered(), 60, "every reading at the MQTT subscriber")
            poll.stop.set()
            poll.join(15)
            status = fw.status()
        finally:
            fw.stop()
            sub.close()
    out = b"".join(x.encode() for x in fw.lines)
    frees = [int(m.group(3)) for m in MEM.finditer(out)]
    blocks = [int(m.group(1)) for m in MAXFREE.finditer(out)]
    block_bytes = 32  # GC block size on the 64-bit Unix port
    lowest_free, lowest_block = min(frees), min(blocks) * block_bytes
    print(
        f"\nmemory budget: Unix-port heap {limit // 1024}K (= {memory.BUDGET_32 // 1024} KB on a 32-bit ESP32,"
        f" tools/memory.py); {n} telegrams; lowest free heap {lowest_free} B, smallest largest-free-block"
        f" {lowest_block} B; spooled during the outage {spooled['spooled']}"
    )
    text = out.decode(errors="replace") + fw.stderr()
    assert "out of memory" not in text and "MemoryError" not in text, text[-3000:]
    assert poll.errors == [], poll.errors[:5]
    assert poll.codes.get(200, 0) > 100
    m = status["meter"]
    assert m["memory_errors"] == 0 and m["parse_errors"] == 0
    assert status["mqtt"]["state"] == "connected" and status["mqtt"]["dropped"] == 0
    assert spooled["spooled"] > 0, "the outage was long enough to reach the flash spool"
    # every reading at the subscriber, with the exact JSON that SSE sent
    by_ts = {json.loads(p)["timestamp"]: p for _, p, _ in sub.messages}
    for _, _, d in sse.events[:n]:
        assert by_ts[json.loads(d)["timestamp"]] == _without_age(d).encode()
    assert raw.data.count(b"\r\n!") >= n - 2  # the raw client got the telegrams too
    assert status.get("restarts", {}) == {}


def _without_age(sse_data: str) -> str:
    return re.sub(r', "age_s": \d+', "", sse_data, count=1)

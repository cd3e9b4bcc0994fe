#!/usr/bin/env python3
"""The load a dongle sees at home, for the whole firmware on loopback: shared by
`make bench` (tools/bench_memory.py) and the memory budget test.

Load generators (each a thread on 127.0.0.1):
- `SseClient` (runtime_harness's): one client of /api/v1/events, every event kept;
- `RawReader`: one client of the raw telegram port, every byte kept;
- `Poller`: the live page's requests (status, reading, metrics) on one
  kept-alive connection like a browser's, every status code counted;
- `state_subscriber(broker)`: a persistent QoS 1 MQTT subscriber of
  `p1/+/state` (survives broker restarts, so nothing sent is lost to it).

`soak()` runs the firmware under MicroPython's Unix port with a hard heap (the
budget's, tools/memory.py) and `micropython.mem_info()` every second, a DSMR 5
telegram every 0.2 s, MQTT over TLS to a real mosquitto with an outage long
enough to spool, and all the clients above; it never raises for what the
firmware does (a MemoryError, a crash, a stall): it returns what it saw.

    python3 tools/loadgen.py [--heap 130K] [--telegrams 260]    # one soak, figures printed

The broker and the firmware process come from host_tests/ (mosquitto.py,
runtime_harness.py), as for tools/bench_mqtt.py.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "tools", ROOT / "host_tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

# The budget test's load (host_tests/test_memory_budget.py).
INTERVAL = 0.2  # s between telegrams (five times a DSMR 5 meter's rate)
BEFORE_OUTAGE = 80  # telegrams
OUTAGE_S = 12.0  # ~60 telegrams while the broker is away: more than the MQTT RAM ring holds
TOTAL = 260  # telegrams
POLL_S = 0.5  # the live page asks every 3 s; six times that
PAGE_S = 3.0  # the live page's own rate (app.js: status at most every 3 s; readings come by SSE)
BLOCK_BYTES = 32  # GC block on the 64-bit Unix port (4 words)
BLOCK_BYTES_32 = 16  # on a 32-bit one (tools/mp32.py), as on the ESP32
STALL_S = 20.0  # no telegram for this long: the firmware is stuck, the soak ends

MEM = re.compile(r"GC: total: (\d+), used: (\d+), free: (\d+)")
MAXFREE = re.compile(r"max free sz: (\d+)")
FAILED = re.compile(r"allocating (\d+) bytes")


from runtime_harness import SseClient  # noqa: E402 - one client of /api/v1/events, every event kept


class RawReader(threading.Thread):
    """One client of the raw telegram port; `data` holds every byte it got."""

    close = SseClient.close  # shut the socket down: the reading thread ends

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.data = bytearray()
        self.start()

    def run(self) -> None:
        try:
            while True:
                b = self.sock.recv(65536)
                if not b:
                    break
                self.data += b
        except OSError:
            pass


class Poller(threading.Thread):
    """The live page's requests, over keep-alive connections like a browser's."""

    PATHS = ("/api/v1/status", "/api/v1/reading", "/metrics")

    def __init__(self, port: int, period: float = POLL_S):
        super().__init__(daemon=True)
        self.port = port
        self.period = period
        self.codes: dict[int, int] = {}
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        c = None
        while not self.stop.is_set():
            for path in self.PATHS:
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


def state_subscriber(broker, client_id: str = "budget-sub"):
    """A persistent QoS 1 subscriber of every dongle's state (host_tests/mosquitto.py)."""
    from mosquitto import Subscriber

    return Subscriber(broker, ["p1/+/state"], qos=1, clean=False, client_id=client_id)


def heap_figures(text: str, block: int = BLOCK_BYTES) -> dict:
    """From `micropython.mem_info()` prints: the first sample's live heap, the lowest
    free heap and the smallest largest-free-block (bytes; `block`: the GC block's size,
    32 on the 64-bit Unix port, 16 on the 32-bit one, which mem_info counts them in)."""
    mems = [(int(m.group(1)), int(m.group(2)), int(m.group(3))) for m in MEM.finditer(text)]
    blocks = [int(m.group(1)) * block for m in MAXFREE.finditer(text)]
    if not mems:
        return {"samples": 0}
    return {
        "samples": len(mems),
        "total": mems[0][0],
        "used_after_start": mems[0][1],
        "lowest_free": min(m[2] for m in mems),
        "peak_used": max(m[1] for m in mems),
        "smallest_max_block": min(blocks) if blocks else 0,
    }


def _get(port: int, path: str, timeout: float = 5.0):
    """(status, body) or (None, error text): never raises."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()
    except (OSError, http.client.HTTPException) as e:
        return None, f"{type(e).__name__}: {e}"


def _status(port: int) -> dict | None:
    st, body = _get(port, "/api/v1/status")
    if st != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _wait(pred, timeout: float, alive=lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        if not alive():
            return False
        time.sleep(0.1)
    return False


def _wait_progress(count, n: int, stall_s: float, alive) -> bool:
    """Wait until count() >= n; False once it has not grown for stall_s or the process ended."""
    last, since = -1, time.monotonic()
    while True:
        c = count()
        if c >= n:
            return True
        now = time.monotonic()
        if c != last:
            last, since = c, now
        elif now - since > stall_s or not alive():
            return False
        time.sleep(0.2)


def soak(
    heap: int,
    tmp: Path | None = None,
    *,
    interval: float = INTERVAL,
    before_outage: int = BEFORE_OUTAGE,
    outage_s: float = OUTAGE_S,
    total: int = TOTAL,
    mp32: bool = False,
    poll_s: float = POLL_S,
    log=lambda s: None,
) -> dict:
    """The whole firmware under the Unix port with `heap` bytes and the load above
    (`mp32`: under Debian's 32-bit build, tools/mp32.py).

    Returns {"heap", "telegrams", "heap_figures": heap_figures(...), "memory_errors"
    (MemoryError / out-of-memory seen in its output or counted in status),
    "smallest_failed_alloc" (bytes of the smallest request that failed, or None),
    "first_memory_error" (the first one's traceback, when there was one),
    "http_errors", "http_ok", "sse_events", "mqtt_delivered", "mqtt_expected",
    "spooled", "raw_telegrams", "stalled" (what it waited for in vain, or ""),
    "exit" (its exit code), "tail" (the end of its output)}.
    """
    from mosquitto import Mosquitto
    from runtime_harness import Firmware

    if tmp is None:
        with tempfile.TemporaryDirectory() as d:
            return soak(heap, Path(d), interval=interval, before_outage=before_outage,
                        outage_s=outage_s, total=total, mp32=mp32, poll_s=poll_s, log=log)  # fmt: skip
    res: dict = {"heap": heap, "telegrams": 0, "stalled": "", "memory_errors": 0, "http_errors": []}
    broker = Mosquitto(tmp / "broker", tls=True)
    broker.start()
    sub = fw = sse = raw = poll = None
    try:
        sub = state_subscriber(broker)
        try:
            fw = Firmware(
                tmp,
                "--mp", *(["--mp32"] if mp32 else []), "--heap", f"{heap // 1024}K", "--mem", "1",
                "--interval", str(interval), "--step", "1", "--dialect", "dsmr5",
                "--mqtt", f"mqtts://127.0.0.1:{broker.port}?ca={broker.ca}",
            )  # fmt: skip
        except AssertionError as e:  # it did not get as far as serving HTTP
            res["stalled"] = "start"
            res["tail"] = str(e)[-3000:]
            return res
        alive = lambda: fw.proc.poll() is None  # noqa: E731
        sse = SseClient(fw.port)
        raw = RawReader(fw.raw_port)
        poll = Poller(fw.port, poll_s)
        poll.start()
        last = {"st": None}

        def progress() -> int:
            """Telegrams so far: status's count, or what SSE and the raw port delivered
            when status does not answer."""
            st = _status(fw.port)
            if st is not None:
                last["st"] = st
            seen = max(len(sse.events), raw.data.count(b"\r\n!"), (last["st"] or {}).get("telegrams", 0))
            res["telegrams"] = seen
            return seen

        log(f"   soak: heap {heap // 1024}K, {total} telegrams {interval} s apart, outage after {before_outage}")
        if not _wait_progress(progress, before_outage, STALL_S, alive):
            res["stalled"] = f"{before_outage} telegrams before the outage"
        else:
            broker.stop()
            time.sleep(outage_s)
            st = _status(fw.port)
            res["spooled"] = (st or {}).get("mqtt", {}).get("spooled")
            broker.start()
            if not _wait_progress(progress, total, STALL_S, alive):
                res["stalled"] = f"{total} telegrams"
        n = res["telegrams"]
        _wait(lambda: len(sse.events) >= n, 20, alive)
        want = {json.loads(d)["timestamp"] for _, _, d in sse.events[:n]}
        res["mqtt_expected"] = len(want)

        def delivered() -> set:
            with sub.cond:
                msgs = list(sub.messages)
            return {json.loads(p)["timestamp"] for _, p, _ in msgs}

        if not _wait(lambda: want <= delivered(), 30, alive) and not res["stalled"]:
            res["stalled"] = "every reading at the MQTT subscriber"
        res["mqtt_delivered"] = len(want & delivered())
        poll.stop.set()
        poll.join(15)
        st = _status(fw.port) or last["st"] or {}
        res["memory_errors"] = (st.get("meter") or {}).get("memory_errors", 0)
        res["mqtt_state"] = (st.get("mqtt") or {}).get("state")
        res["restarts"] = st.get("restarts", {})
    finally:
        if poll is not None:
            poll.stop.set()
        for c in (sse, raw):
            if c is not None:
                c.close()
        if fw is not None:
            res["exit"] = fw.stop()
        if sub is not None:
            sub.close()
        broker.stop()
    out = "".join(fw.lines)
    text = out + fw.stderr()
    res["heap_figures"] = heap_figures(out, BLOCK_BYTES_32 if mp32 else BLOCK_BYTES)
    oom = text.count("MemoryError") + text.count("out of memory")
    res["memory_errors"] = max(res["memory_errors"], oom)
    i = text.find("MemoryError")
    if i >= 0:  # the first one, with its traceback: where the heap ran out first
        start = text.rfind("Traceback", 0, i)
        start = start if start >= 0 and i - start < 2000 else text.rfind("\n", 0, i) + 1
        res["first_memory_error"] = text[start : text.find("\n", i) if text.find("\n", i) > 0 else None]
    failed = [int(m.group(1)) for m in FAILED.finditer(text)]
    res["smallest_failed_alloc"] = min(failed) if failed else None
    res["http_errors"] = poll.errors if poll is not None else []
    res["http_ok"] = poll.codes.get(200, 0) if poll is not None else 0
    res["sse_events"] = len(sse.events) if sse is not None else 0
    res["raw_telegrams"] = raw.data.count(b"\r\n!") if raw is not None else 0
    res["tail"] = "\n".join(line for line in text.splitlines() if "GC:" not in line and "blocks:" not in line)[-3000:]
    res["text"] = text
    return res


def main(argv: list[str]) -> int:
    import memory

    ap = argparse.ArgumentParser(prog="loadgen.py", description=__doc__.splitlines()[0])
    ap.add_argument("--heap", help="Unix-port heap (default: the budget's: 129K; with --mp32 100K)")
    ap.add_argument("--mp32", action="store_true", help="Debian's 32-bit MicroPython (tools/mp32.py)")
    ap.add_argument("--poll", type=float, default=POLL_S, help=f"seconds between the page's polls (the page: {PAGE_S})")
    ap.add_argument("--telegrams", type=int, default=TOTAL)
    ap.add_argument("--interval", type=float, default=INTERVAL, help="seconds between telegrams")
    ap.add_argument("--log", help="write the firmware's whole output (mem_info every second) to this file")
    a = ap.parse_args(argv)
    heap = int(a.heap.rstrip("Kk")) * 1024 if a.heap else memory.BUDGET_32 if a.mp32 else memory.unix_limit()
    r = soak(
        heap,
        total=a.telegrams,
        before_outage=min(BEFORE_OUTAGE, a.telegrams // 3),
        interval=a.interval,
        mp32=a.mp32,
        poll_s=a.poll,
        log=print,
    )
    tail = r.pop("tail", "")
    text = r.pop("text", "")
    if a.log:
        Path(a.log).write_text(text)
    print(json.dumps(r, indent=1, default=str))
    if r["memory_errors"] or r["stalled"]:
        print(tail)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""`make soak`: a long, bounded run of the whole firmware on the host board that
prints figures (not a test; exit status 1 when a check fails).

N telegrams (100 000 by default; SOAK_N= or --n to shorten) from the simulator
(tools/simulate.py: the Finnish meter, a meter second per telegram, noise and
every telegram written in bursts of 3-5 pieces) go through the firmware, under
CPython and under MicroPython's Unix port at a fixed heap, with the clients of
tools/loadgen.py attached (one SSE client, one raw client, the live page's
polls, a persistent QoS 1 MQTT subscriber; MQTT over TLS to mosquitto) and a
broker outage in the middle. The simulator logs the values of every clean
telegram it wrote (`--log`, JSON lines); afterwards every reading the firmware
sent (SSE events, MQTT states, raw telegrams) is checked against that log.

Checks: no crash (the process runs to the end and stops with 0, no Traceback,
no MemoryError), telegrams accepted == clean telegrams written, zero values
that differ from what the simulator wrote (and no reading it did not write),
every accepted reading delivered to the MQTT subscriber, memory flat (heap at
start, middle and end: MicroPython's `mem_info()` after a collection; CPython's
resident set).

    python3 tools/soak.py [--n 100000] [--interval 0.005] [--only cpython,mp] [--heap 152K] [--info-heap 129K]

--heap is the MicroPython heap that must pass (the budget test's `[today]`);
--info-heap runs once more at another heap (the budget's, tools/memory.py)
and reports it without failing on it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "tools", ROOT / "host_tests", ROOT / "firmware"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import loadgen  # noqa: E402 - the clients and the heap parser

N = 100_000
# s between telegrams: 100 000 in ~8 minutes under CPython, ~25 under MicroPython, whose
# MQTT (QoS 1 over TLS, one message per reading) delivers ~90 readings/s at most here:
# faster, the RAM ring and then the flash spool fill and readings drop (counted).
INTERVAL_CPYTHON = 0.005
INTERVAL_MP = 0.015
NOISE = 0.01  # share of telegrams with noise (bad CRC, garbage, truncated, oversized)
BURST_PAUSE = 0.0005  # s between the pieces of a telegram
OUTAGE_S = 5.0  # the broker is away this long, in the middle
START = "2026-11-20T00:00:00"  # meter time (UTC); no DST change within the ~28 h of meter time
SPILL_KB = 4096  # the flash spool may hold the outage's readings (the most config allows)
STALL_S = 60.0
SKIP = {"timestamp", "meter", "age_s"}
RSS = re.compile(r"VmRSS:\s+(\d+) kB")


def key(iso: str) -> str:
    """ISO time stamp -> the meter's YYMMDDhhmmss (unique here: one per meter second)."""
    return iso[2:4] + iso[5:7] + iso[8:10] + iso[11:13] + iso[14:16] + iso[17:19]


_SPEC: dict = {}  # reading name -> p1.table.by_name(name) (a table scan each: cached)


def check(reading: dict, want: dict, bad: list, where: str) -> int:
    """Compare every value of `reading` with the simulator's text; mismatches go to `bad`."""
    from p1.table import by_name

    n = 0
    for name, value in reading.items():
        if name in SKIP:
            continue
        if name not in _SPEC:
            _SPEC[name] = by_name(name)
        spec = _SPEC[name]
        if spec is None or spec[2] == "ts":
            if spec is None:
                bad.append(f"{where}: unknown reading {name}")
            continue
        w = want.get(spec[0])
        ok = w is not None and (value == int(w) if isinstance(value, int) else value == w)
        if not ok and len(bad) < 50:
            bad.append(f"{where} {reading.get('timestamp')}: {name} = {value!r}, simulator wrote {w!r}")
        n += 1
    return n


class Tap(threading.Thread):
    """The simulator's second client: connecting releases it (--wait-clients 2)
    once the firmware's clients are attached; what it reads is discarded."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.start()

    def run(self) -> None:
        try:
            while self.sock.recv(65536):
                pass
        except OSError:
            pass


def _rss(pid: int) -> int | None:
    try:
        m = RSS.search(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return int(m.group(1)) * 1024 if m else None


def run(n: int, interval: float, mp: bool, heap: str, log=print, tmp: Path | None = None) -> dict:
    """One soak; never raises for what the firmware does: returns what it saw."""
    from mosquitto import Mosquitto
    from runtime_harness import Firmware

    if tmp is None:
        with tempfile.TemporaryDirectory() as d:
            return run(n, interval, mp, heap, log, Path(d))
    name = f"MicroPython {heap}" if mp else "CPython"
    res: dict = {"name": name, "n": n, "interval": interval, "problems": []}
    problems: list[str] = res["problems"]
    expected_log = tmp / "expected.jsonl"
    broker = Mosquitto(tmp / "broker", tls=True)
    broker.start()
    sim = sub = fw = sse = raw = poll = tap = None
    t0 = time.monotonic()
    mem: list[tuple[int, int]] = []  # (accepted, bytes): heap used (mp) or resident set (CPython)
    try:
        sub = loadgen.state_subscriber(broker, client_id=f"soak-{os.getpid()}")
        sim = subprocess.Popen(
            [sys.executable, str(ROOT / "tools" / "simulate.py"), "--tcp", "127.0.0.1:0", "--wait-clients", "2",
             "--interval", str(interval), "--step", "1", "--count", str(n), "--noise", str(NOISE),
             "--seed", "7", "--start", START, "--bursts", "--burst-pause", str(BURST_PAUSE),
             "--log", str(expected_log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert sim.stderr is not None
        m = re.search(r"listening on (\S+):(\d+)", sim.stderr.readline().decode())
        if not m:
            problems.append("the simulator did not start")
            return res
        sim_port = int(m.group(2))
        cfg = {"mqtt": {"spill_kb": SPILL_KB}}
        args = ["--source", f"tcp://127.0.0.1:{sim_port}", "--mqtt", f"mqtts://127.0.0.1:{broker.port}?ca={broker.ca}"]
        if mp:
            args += ["--mp", "--heap", heap, "--mem", "1"]
        try:
            fw = Firmware(tmp, *args, config=json.dumps(cfg))
        except AssertionError as e:
            problems.append(f"the firmware did not start: {str(e)[-500:]}")
            return res
        alive = lambda: fw.proc.poll() is None  # noqa: E731
        sse = loadgen.SseClient(fw.port)
        raw = loadgen.RawReader(fw.raw_port)
        poll = loadgen.Poller(fw.port, period=1.0)
        poll.start()
        tap = Tap(sim_port)
        t0 = time.monotonic()
        log(f"== soak, {name}: {n} telegrams {interval * 1000:g} ms apart (noise {NOISE:.0%}, bursts),"
            f" SSE + raw + HTTP polls + MQTT QoS 1/TLS, {OUTAGE_S:g} s broker outage in the middle")  # fmt: skip
        last: dict = {"accepted": 0, "st": {}}

        def accepted() -> int:
            st = loadgen._status(fw.port)
            if st is not None:
                last["st"] = st
                last["accepted"] = int(st["meter"]["accepted"])
                if not mp:
                    rss = _rss(fw.proc.pid)
                    if rss:
                        mem.append((last["accepted"], rss))
            return last["accepted"]

        clean_total = None
        outage_done = False
        since, seen, next_report = time.monotonic(), -1, 0
        while True:
            a = accepted()
            now = time.monotonic()
            if a != seen:
                seen, since = a, now
            if a >= next_report:
                q = last["st"].get("mqtt") or {}
                log(f"   {a:>7} accepted  {now - t0:6.0f} s   MQTT published {q.get('published')}"
                    f" dropped {q.get('dropped')} spooled {q.get('spooled')} queued {q.get('queued')}")  # fmt: skip
                next_report += max(n // 10, 1)
            if not outage_done and a >= n // 2:
                broker.stop()
                time.sleep(OUTAGE_S)
                spooled = ((loadgen._status(fw.port) or {}).get("mqtt") or {}).get("spooled")
                res["outage"] = {"at": a, "spooled": spooled}
                broker.start()
                outage_done = True
                continue
            if sim.poll() is not None and clean_total is None:
                clean_total = sum(1 for _ in open(expected_log, "rb"))
            if clean_total is not None and a >= clean_total:
                break
            if not alive():
                problems.append(f"the firmware ended (exit {fw.proc.returncode}) after {a} telegrams")
                break
            if now - since > STALL_S:
                problems.append(f"no progress for {STALL_S:.0f} s at {a} telegrams")
                break
            time.sleep(0.5)
        res["seconds"] = round(time.monotonic() - t0, 1)
        res["accepted"] = last["accepted"]
        res["written_clean"] = clean_total
        res["meter"] = {k: last["st"].get("meter", {}).get(k) for k in (
            "accepted", "rejected_crc", "framer_crc_errors", "framer_truncated", "framer_oversized",
            "framer_skipped_bytes", "parse_errors", "line_errors", "memory_errors")}  # fmt: skip
        if clean_total is not None and res["accepted"] != clean_total:
            problems.append(f"accepted {res['accepted']} != clean telegrams written {clean_total}")
        # every accepted reading at the MQTT subscriber
        want = res["accepted"]

        def delivered() -> int:
            with sub.cond:
                return len({json.loads(p)["timestamp"] for _, p, _ in sub.messages})

        loadgen._wait(lambda: delivered() >= want, 120, alive)
        loadgen._wait(lambda: len(sse.events) >= want, 20, alive)
        res["mqtt_delivered"] = delivered()
        if res["mqtt_delivered"] < want:
            problems.append(f"MQTT: {res['mqtt_delivered']} of {want} readings delivered")
        st = loadgen._status(fw.port) or last["st"]
        q = st.get("mqtt") or {}
        res["mqtt"] = {k: q.get(k) for k in ("state", "published", "dropped", "spooled", "queued")}
        # readings a slow SSE or raw client missed (their queues drop the oldest, by design)
        queues = (st.get("subscribers") or {}).get("queues", [])
        res["subscribers"] = {x["name"]: x["dropped"] for x in queues}
        res["restarts"] = st.get("restarts")
    finally:
        if poll is not None:
            poll.stop.set()
            poll.join(15)
        for c in (sse, raw, tap):
            if c is not None:
                c.sock.close() if isinstance(c, Tap) else c.close()
        if fw is not None:
            res["exit"] = fw.stop()
        if sim is not None and sim.poll() is None:
            sim.terminate()
            sim.wait(10)
        if sub is not None:
            sub.close()
        broker.stop()
    if fw is None:
        return res
    out = "".join(fw.lines)
    text = out + fw.stderr()
    if res.get("exit") != 0:
        problems.append(f"exit status {res.get('exit')}")
    for word in ("Traceback", "MemoryError", "out of memory"):
        if word in text:
            i = text.find(word)
            problems.append(f"{word} in its output: {text[max(0, i - 300) : i + 300]!r}")
    # memory: start / middle / end
    if mp:
        samples = [int(m.group(2)) for m in loadgen.MEM.finditer(out)]
        res["heap"] = loadgen.heap_figures(out)
        res["heap"].pop("samples", None)
        unit = "heap used after a collection, bytes"
    else:
        samples = [b for _, b in mem]
        unit = "resident set, bytes"
    if samples:  # (start: a few samples in, once it runs)
        k = len(samples)
        res["memory"] = {"start": samples[min(k - 1, 5)], "middle": samples[k // 2], "end": samples[-1], "unit": unit}
    # every value sent out, against the simulator's log
    expected = {}
    with open(expected_log, "rb") as f:
        for line in f:
            d = json.loads(line)
            expected[d["0-0:1.0.0"][:12]] = d
    bad: list[str] = []
    checked = {"sse": 0, "mqtt": 0, "values": 0}
    for src, items in (("sse", [d for _, _, d in sse.events] if sse else []),
                       ("mqtt", [p for _, p, _ in sub.messages] if sub else [])):  # fmt: skip
        for data in items:
            r = json.loads(data, parse_float=str)
            w = expected.get(key(r.get("timestamp", "")))
            if w is None:
                bad.append(f"{src}: a reading the simulator did not write: {r.get('timestamp')}")
                continue
            checked["values"] += check(r, w, bad, src)
            checked[src] += 1
    raws = raw.data.split(b"\r\n!") if raw else []
    nraw = 0
    for tg in raws[:-1]:  # each: "/ident ... 0-0:1.0.0(YYMMDDhhmmssW) ..." up to its CRC line
        m = re.search(rb"0-0:1\.0\.0\((\d{12})[WS]\)", tg)
        if m is None or m.group(1).decode() not in expected:
            bad.append(f"raw: a telegram the simulator did not write cleanly: {tg[:80]!r}")
        nraw += 1
    checked["raw_telegrams"] = nraw
    res["checked"] = checked
    res["wrong_values"] = len(bad)
    problems += bad[:20]
    res["http"] = {"ok": poll.codes.get(200, 0) if poll else 0, "errors": len(poll.errors) if poll else 0}
    if poll and poll.errors:
        problems.append(f"HTTP errors: {poll.errors[:3]}")
    return res


def report(r: dict, log=print) -> None:
    ok = not r["problems"]
    rate = f", {r['accepted'] / r['seconds']:.0f} telegrams/s" if r.get("seconds") and r.get("accepted") else ""
    log(f"   {r['name']}: {'OK' if ok else 'FAILED'} in {r.get('seconds', '?')} s{rate}")
    for k in ("interval", "written_clean", "accepted", "meter", "outage", "mqtt_delivered", "mqtt", "subscribers",
              "checked", "wrong_values", "memory", "heap", "http", "restarts", "exit"):  # fmt: skip
        if k in r:
            log(f"   {k:14} {json.dumps(r[k])}")
    for p in r["problems"]:
        log(f"   PROBLEM: {p}")


def main(argv: list[str]) -> int:
    import memory
    from test_memory_budget import TODAY_PLAIN_K as TODAY_K  # the [today] heap of a board without relays

    ap = argparse.ArgumentParser(prog="soak.py", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=int(os.environ.get("SOAK_N") or N), help="telegrams (SOAK_N)")
    ap.add_argument("--interval", type=float, help=f"seconds between telegrams (default {INTERVAL_CPYTHON} under"
                    f" CPython, {INTERVAL_MP} under MicroPython)")  # fmt: skip
    ap.add_argument("--only", default="cpython,mp", help="cpython, mp or both (comma-separated)")
    ap.add_argument("--heap", default=f"{TODAY_K}K", help="MicroPython heap that must pass (default: [today]'s)")
    ap.add_argument("--info-heap", default=f"{memory.unix_limit() // 1024}K",
                    help="one more MicroPython run, reported only ('' = none)")  # fmt: skip
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    runs = []
    if "cpython" in a.only:
        runs.append((run(a.n, a.interval or INTERVAL_CPYTHON, False, ""), True))
    if "mp" in a.only:
        runs.append((run(a.n, a.interval or INTERVAL_MP, True, a.heap), True))
        if a.info_heap:
            runs.append((run(a.n, a.interval or INTERVAL_MP, True, a.info_heap), False))
    print(f"\n== soak summary ({time.monotonic() - t0:.0f} s)")
    failed = 0
    for r, must in runs:
        report(r)
        if r["problems"] and must:
            failed += 1
        elif r["problems"]:
            print("   (reported only: this heap is not required to pass)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

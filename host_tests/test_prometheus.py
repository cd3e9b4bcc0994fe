"""/metrics as Prometheus itself judges it: `promtool check metrics` (Debian
package `prometheus`, installed by `make setup`) on the host-board firmware's
page before any telegram, with an event stream open, and after each recorded
telegram. promtool exits 0 and prints nothing (no lint warning either)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import TELEGRAM_FILES
from runtime_harness import Firmware, MeterServer, SseClient

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(text: bytes) -> None:
    try:
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30)
    except FileNotFoundError:
        pytest.fail("promtool is not installed: run `make setup` (Debian package prometheus)", pytrace=False)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"", b""), text.decode() + r.stderr.decode()


def families(text: str) -> tuple[set[str], set[str], set[str]]:
    """Names with HELP, with TYPE, and with samples."""
    helps = set(re.findall(r"^# HELP (\w+) ", text, re.M))
    types = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    samples = set(re.findall(r"^(\w+)[{ ]", text, re.M))
    return helps, types, samples


def seen(fw: Firmware) -> int:
    m = fw.status()["meter"]
    return m["accepted"] + m["rejected_crc"]  # (three recordings have a bad CRC)


def test_metrics_pass_promtool(tmp_path):
    sim = MeterServer()
    fw = Firmware(tmp_path, "--source", sim.source)
    try:
        sim.accept()
        st, headers, body = fw.get("/metrics")
        assert st == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
        promtool(body)
        assert b"p1_reading" not in body  # no reading yet: no family, no TYPE line
        sse = SseClient(fw.port)
        fw.wait(lambda: fw.status()["http"]["streams"] == 1, what="the event stream")
        for n, path in enumerate(TELEGRAM_FILES, 1):
            sim.send(path.read_bytes())
            fw.wait(lambda n=n: seen(fw) >= n, what=path.name)
            body = fw.get("/metrics")[2]
            promtool(body)
            helps, types, samples = families(body.decode())
            assert helps == types == samples, path.name
            assert not any(f.endswith("_count") for f in types)
            assert 'p1_subscriber_dropped_total{name="sse"}' in body.decode()
        sse.close()
    finally:
        fw.stop()
        sim.close()

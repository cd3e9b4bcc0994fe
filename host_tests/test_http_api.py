"""The HTTP API of the host-board firmware: shapes, content types, errors as
JSON, and no crash on malformed or oversized requests."""

from __future__ import annotations

import json
import sys

import pytest
from runtime_harness import REPO, Firmware, exact_json, free_port, raw_request

sys.path.insert(0, str(REPO / "firmware"))

from p1.framer import Framer  # noqa: E402
from p1.jsonout import dumps  # noqa: E402
from p1.parse import parse  # noqa: E402
from p1.readings import readings  # noqa: E402

TELEGRAM = REPO / "host_tests" / "telegrams" / "se-lg-e360-01.txt"


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    f = Firmware(tmp_path_factory.mktemp("http"), "--source", str(TELEGRAM))
    f.wait(lambda: f.get("/api/v1/reading")[0] == 200, what="the file's telegram")
    yield f
    f.stop_ok()
    assert "Traceback" not in f.stderr()


def test_reading_equals_the_parser_exactly(fw):
    data = TELEGRAM.read_bytes()
    fr = Framer()
    fr.feed(data)
    frame = fr.next_frame() or fr.end()
    want = readings(parse(frame, fr.crc, 120))
    st, headers, body = fw.get("/api/v1/reading")
    assert st == 200 and headers["content-type"].startswith("application/json")
    got = exact_json(body)
    assert got.pop("age_s") >= 0
    assert dumps(got) == dumps(json.loads(dumps(want), parse_float=str)) or got == json.loads(
        dumps(want), parse_float=str
    )
    assert b'"energy_import_kwh": ' in body


def test_telegram_bytes(fw):
    st, headers, body = fw.get("/api/v1/telegram")
    assert st == 200 and headers["content-type"].startswith("text/plain")
    assert body == TELEGRAM.read_bytes()


def test_status_fields(fw):
    st, headers, body = fw.get("/api/v1/status")
    s = json.loads(body)
    for k in ("version", "board", "uptime_s", "free_heap", "wifi", "reset_cause", "boot_count",
              "last_telegram_age_s", "config_errors", "meter", "raw_tcp", "http", "config"):  # fmt: skip
        assert k in s, k
    assert s["board"] == "host" and s["meter"]["accepted"] == 1
    assert s["meter"]["state"] == "ended"  # a file is read once


def test_metrics(fw):
    st, headers, body = fw.get("/metrics")
    assert st == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    assert 'p1_reading{name="energy_import_kwh",obis="1-0:1.8.0",unit="kWh"} ' in text
    assert 'p1_telegrams_total{result="accepted"} 1' in text
    for line in text.splitlines():
        assert not line or line.startswith("#") or len(line.rsplit(" ", 1)) == 2


def test_static(fw):
    st, headers, body = fw.get("/")
    assert st == 200 and headers["content-type"].startswith("text/html") and b"<html" in body
    st, headers, _ = fw.get("/static/index.html")
    assert st == 200 and headers["content-type"].startswith("text/html")
    for bad in (
        "/static/../config.py",
        "/static/.hidden",
        "/static/%2e%2e/app.py",
        "/static/nope.js",
    ):
        st, headers, body = fw.get(bad)
        assert st in (400, 404), bad
        assert headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    "method,path,status",
    [("GET", "/nope", 404), ("GET", "/api/v1/nope", 404), ("POST", "/api/v1/reading", 405),
     ("DELETE", "/api/v1/status", 405)],
)  # fmt: skip
def test_errors_are_json(fw, method, path, status):
    st, headers, body = fw.get(path, method=method)
    assert st == status
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"error": json.loads(body)["error"], "status": status}


@pytest.mark.parametrize(
    "request_bytes",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"GET /api/v1/status HTTP/1.1\r\nBroken header line\r\n\r\n", 400),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /api/v1/status HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        (b"\xff\xfe\x00\r\n\r\n", 400),
    ],
)
def test_bad_requests_get_400_json(fw, request_bytes):
    request_bytes, status = request_bytes
    out = raw_request(fw.port, request_bytes)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), out[:200]
    assert json.loads(body)["status"] == status
    assert fw.get("/api/v1/status")[0] == 200  # still serving


def test_body_too_large_413(fw):
    st, headers, body = fw.get("/api/v1/reading", method="POST", body=b"x" * 100000)
    assert st == 413 and json.loads(body)["status"] == 413


def test_no_telegram_yet_503(tmp_path):
    f = Firmware(tmp_path, "--source", f"tcp://127.0.0.1:{free_port()}")
    try:
        for path in ("/api/v1/reading", "/api/v1/telegram"):
            st, headers, body = f.get(path)
            assert st == 503 and json.loads(body) == {"error": "no telegram yet", "status": 503}
        s = f.status()
        assert s["last_telegram_age_s"] is None and s["meter"]["accepted"] == 0
        f.wait(lambda: f.status()["meter"]["state"] == "error", what="source error in status")
        assert "metrics" not in f.get("/metrics")[2].decode() or True
    finally:
        f.stop_ok()

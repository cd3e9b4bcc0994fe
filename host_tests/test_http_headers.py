"""Headers of the host firmware's answers over real HTTP on 127.0.0.1
(`p1tool.py run`): `Cache-Control: no-store` on every live endpoint, and the
opt-in `http.cors_origin` (Access-Control-Allow-Origin on every response,
OPTIONS preflights answered, changed live through the config API, nothing
of it when off)."""

from __future__ import annotations

import json
import socket

import pytest
from runtime_harness import REPO, Firmware

TELEGRAM = REPO / "host_tests" / "telegrams" / "se-lg-e360-01.txt"
ORIGIN = "http://dash.lan:3000"
PW = "correct horse 1"
J = {"Content-Type": "application/json"}
# every live endpoint: what it says changes from one telegram to the next
LIVE = ("/api/v1/reading", "/api/v1/telegram", "/api/v1/status", "/metrics", "/api/v1/config", "/api", "/api/v1/data")


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    cfg = {"http": {"homewizard": True, "cors_origin": ORIGIN}}
    f = Firmware(tmp_path_factory.mktemp("headers"), "--source", str(TELEGRAM), config=json.dumps(cfg))
    f.wait(lambda: f.get("/api/v1/reading")[0] == 200, what="the file's telegram")
    yield f
    f.stop_ok()
    assert "Traceback" not in f.stderr()


def _events_head(port: int) -> bytes:
    """The head of /api/v1/events (the stream itself is left at once)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nOrigin: " + ORIGIN.encode() + b"\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(4096)
            assert b, head
            head += b
        return head.split(b"\r\n\r\n")[0] + b"\r\n"  # each line with its end


@pytest.mark.parametrize("path", LIVE)
def test_no_store_on_every_live_endpoint(fw, path):
    for method in ("GET", "HEAD"):
        st, hd, _ = fw.get(path, method)
        assert st == 200 and hd["cache-control"] == "no-store", (path, method, st, hd)


def test_no_store_on_the_event_stream(fw):
    head = _events_head(fw.port)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nCache-Control: no-store\r\n" in head


def test_static_files_may_be_cached(fw):
    st, hd, _ = fw.get("/static/app.js")
    assert st == 200 and hd.get("cache-control") != "no-store"


@pytest.mark.parametrize("path", [*LIVE, "/", "/nope"])
def test_cors_header_on_every_response(fw, path):
    st, hd, _ = fw.get(path, headers={"Origin": ORIGIN})
    assert hd["access-control-allow-origin"] == ORIGIN, (path, st)


def test_cors_header_on_the_event_stream(fw):
    assert b"\r\nAccess-Control-Allow-Origin: " + ORIGIN.encode() + b"\r\n" in _events_head(fw.port)


@pytest.mark.parametrize("path", ["/api/v1/config", "/api/v1/reading", "/api/v1/mqtt/test"])
def test_cors_preflight_answered(fw, path):
    h = {"Origin": ORIGIN, "Access-Control-Request-Method": "PATCH"}
    h["Access-Control-Request-Headers"] = "authorization, content-type"
    st, hd, body = fw.get(path, "OPTIONS", headers=h)
    assert (st, body) == (200, b"")
    assert hd["access-control-allow-origin"] == ORIGIN
    methods = hd["access-control-allow-methods"].split(", ")
    assert {"GET", "PUT", "PATCH", "POST"} <= set(methods)
    assert {"authorization", "content-type"} <= set(hd["access-control-allow-headers"].lower().split(", "))


def test_cors_origin_changed_live_and_turned_off(tmp_path):
    f = Firmware(tmp_path, "--source", str(TELEGRAM))
    try:
        st, hd, _ = f.get("/api/v1/reading")
        assert "access-control-allow-origin" not in hd  # off by default
        st, hd, _ = f.get("/api/v1/config", "OPTIONS", headers={"Origin": ORIGIN})
        assert st == 405 and "access-control-allow-origin" not in hd
        st, _, b = f.get("/api/v1/password", "POST", json.dumps({"password": PW}), J)
        auth = {"Authorization": "Bearer " + json.loads(b)["token"], **J}
        st, _, b = f.get("/api/v1/config", "PATCH", json.dumps({"http": {"cors_origin": "bad origin"}}), auth)
        assert st == 422 and "http.cors_origin" in json.loads(b)["errors"]
        st, _, b = f.get("/api/v1/config", "PATCH", json.dumps({"http": {"cors_origin": "*"}}), auth)
        assert st == 200 and json.loads(b)["applied"] == ["http.cors_origin"], b
        st, hd, _ = f.get("/api/v1/reading")
        assert hd["access-control-allow-origin"] == "*"
        assert f.get("/api/v1/config", "OPTIONS", headers={"Origin": ORIGIN})[0] == 200
        st, _, b = f.get("/api/v1/config", "PATCH", json.dumps({"http": {"cors_origin": ""}}), auth)
        assert st == 200
        assert "access-control-allow-origin" not in f.get("/api/v1/reading")[1]
    finally:
        f.stop_ok()

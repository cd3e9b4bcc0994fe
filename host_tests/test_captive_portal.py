"""The captive portal: net.dns answers every name with the dongle's address
(on a loopback port, under CPython and MicroPython's Unix port), Wi-Fi runs it
exactly while the access point is up, and the HTTP server sends unknown paths
to the setup page then."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
import time
import types
import urllib.request

import pytest
from conftest import FIRMWARE, MICROPYTHON_UNIX
from runtime_harness import free_port
from test_esp_board import WIFI_PRELUDE, run_mp

sys.path.insert(0, str(FIRMWARE))

SERVE = "import asyncio, sys\nfrom net.dns import serve\nasyncio.run(serve('192.168.4.1', int(sys.argv[1]), None, '127.0.0.1'))\n"


def query(name: str, qtype: int = 1, qid: int = 0x1234) -> bytes:
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", qtype, 1)


def ask(port: int, packet: bytes, timeout: float = 10.0) -> bytes:
    """Send `packet` until an answer comes (the responder may still be starting)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s.sendto(packet, ("127.0.0.1", port))
            try:
                return s.recv(512)
            except TimeoutError:
                continue
    raise AssertionError("no DNS answer")


def a_record(r: bytes) -> tuple[int, int, int, str | None]:
    """(id, flags, answers, the A record's address or None)."""
    qid, flags, qd, an = struct.unpack(">HHHH", r[:8])
    if not an:
        return qid, flags, an, None
    return qid, flags, an, ".".join(str(b) for b in r[-4:])


@pytest.mark.parametrize("interp", ["cpython", "micropython"])
def test_dns_answers_every_name_with_our_address(interp, tmp_path):
    port = free_port()
    if interp == "cpython":
        cmd = [sys.executable, "-c", SERVE, str(port)]
        env = {"PYTHONPATH": str(FIRMWARE)}
    else:
        cmd = [str(MICROPYTHON_UNIX), "-c", SERVE, str(port)]
        env = {"MICROPYPATH": f"{FIRMWARE}:.frozen"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for name in ("connectivitycheck.gstatic.com", "captive.apple.com", "p1-3456.local", "x"):
            qid, flags, an, ip = a_record(ask(port, query(name)))
            assert (qid, an, ip) == (0x1234, 1, "192.168.4.1"), name
            assert flags & 0x8000 and flags & 0x000F == 0  # a response, NOERROR
        r = ask(port, query("example.com", qtype=28, qid=7))  # AAAA: an empty answer
        assert a_record(r)[:3] == (7, 0x8580, 0) and r[12:] == query("example.com", 28)[12:]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # garbage is never answered
            s.settimeout(5)
            for junk in (b"", b"\x00" * 5, query("a.b")[:-3], b"\x12\x34\x81\x80" + query("a")[4:], b"\xff" * 40):
                s.sendto(junk, ("127.0.0.1", port))
            s.sendto(query("after.junk", qid=99), ("127.0.0.1", port))
            assert a_record(s.recv(512))[0] == 99  # the first answer is the good query's
    finally:
        proc.kill()
        proc.wait()


def test_wifi_runs_the_dns_responder_exactly_while_the_ap_is_up(tmp_path):
    port = free_port()
    out = run_mp(
        WIFI_PRELUDE
        + f"""
import socket, sys
Wifi.dns_port = {port}
network._aps["home"] = ["secret123", -58]
w = Wifi({{"ssid": ""}}, "p1-3456", 8.5)
Q = {query("captive.apple.com")!r}


async def ask():
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.setblocking(False)
    for i in range(2000):  # sent again each round: the responder may not listen yet
        c.sendto(Q, socket.getaddrinfo("127.0.0.1", {port})[0][-1])
        await _real_sleep_ms(5)
        try:
            return list(c.recv(512)[-4:])
        except OSError:
            pass
    return None


async def main():
    t = asyncio.create_task(w.run())
    await until(w, lambda: w.state == "ap", 60000, "the access point")
    got = await ask()
    loaded = "net.dns" in sys.modules
    stats = dict(w.dns)
    task = w._dns
    w.stop_ap()  # as when the station joins (here the loop opens it again soon)
    after = "net.dns" in sys.modules
    await _real_sleep_ms(0)
    result({{"got": got, "loaded": loaded, "after": after, "stats": stats, "cancelled": task.done(),
            "alive": not t.done()}})
    t.cancel()


asyncio.run(main())
""",
        tmp_path,
    )
    assert out["got"] == [192, 168, 4, 1], out
    assert out["loaded"] and not out["after"]
    assert out["stats"]["answered"] >= 1 and out["cancelled"] and out["alive"]


def test_unknown_paths_go_to_the_setup_page_while_the_ap_is_up():
    from hub import Hub
    from web.api import make_server

    async def main():
        app = types.SimpleNamespace(hub=Hub(), cfg={"http": {}, "admin": {"password_hash": ""}}, wifi=None)
        srv = make_server(app)
        port = free_port()
        await srv.start("127.0.0.1", port)

        def get(path):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": "connectivitycheck.gstatic.com"})

            class NoRedirect(urllib.request.HTTPRedirectHandler):
                def redirect_request(self, *a, **k):
                    return None

            try:
                with urllib.request.build_opener(NoRedirect).open(req, timeout=5) as r:
                    return r.status, r.headers.get("Location")
            except urllib.error.HTTPError as e:
                return e.code, e.headers.get("Location")

        try:
            before = await asyncio.to_thread(get, "/generate_204")
            app.wifi = types.SimpleNamespace(ap=object())  # the access point is up
            during = await asyncio.to_thread(get, "/generate_204")
            api = await asyncio.to_thread(get, "/api/v1/nothing")
        finally:
            srv.close()
        return before, during, api

    before, during, api = asyncio.run(main())
    assert before == (404, None)
    assert during == (302, "/static/settings.html") and api == (302, "/static/settings.html")


def test_wifi_scan_lists_networks_strongest_first_and_needs_the_login_once_set(tmp_path):
    from hub import Hub
    from web.api import make_server

    class Sta:
        def scan(self):
            return [(b"home", b"\x00" * 6, 1, -70, 3, False), (b"cafe", b"\x01" * 6, 6, -50, 0, False),
                    (b"home", b"\x02" * 6, 11, -60, 3, False), (b"", b"\x03" * 6, 1, -40, 3, True),
                    (b"Caf\xe9", b"\x04" * 6, 1, -30, 3, False)]  # fmt: skip

    async def main():
        cfg = {"http": {}, "admin": {"password_hash": ""}}
        app = types.SimpleNamespace(hub=Hub(), cfg=cfg, wifi=None)
        srv = make_server(app)
        port = free_port()
        await srv.start("127.0.0.1", port)

        def get(path):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        try:
            none = await asyncio.to_thread(get, "/api/v1/wifi/scan")
            app.wifi = types.SimpleNamespace(sta=Sta(), ap=None)
            found = await asyncio.to_thread(get, "/api/v1/wifi/scan")
            cfg["admin"]["password_hash"] = "pbkdf2-sha256$1$00$00"
            refused = await asyncio.to_thread(get, "/api/v1/wifi/scan")
        finally:
            srv.close()
        return none, found, refused

    none, found, refused = asyncio.run(main())
    assert none == (404, {"error": "no Wi-Fi on this board", "status": 404})
    assert found == (200, {"networks": [
        {"rssi": -50, "secure": False, "ssid": "cafe"}, {"rssi": -60, "secure": True, "ssid": "home"}]})  # fmt: skip
    assert refused[0] == 401

"""Settings over real HTTP on 127.0.0.1 (the host firmware, `p1tool.py run`):
the config API (secrets hidden, per-field errors, atomic write, applied live or
after a reboot), the admin password (setup, login, sessions by cookie and by
Bearer, refusals, rate limit, logout), readings behind a login on request, and
the MQTT connection test against a real mosquitto."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from mosquitto import Mosquitto, available
from runtime_harness import Firmware, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "firmware"))

PW = "correct horse 1"
J = {"Content-Type": "application/json"}


def saved_config(fw):
    """config.json as saved: JSON, then fsutil's checksum line (docs/STORAGE.md)."""
    return json.loads(fw.config.read_text().rsplit("#p1crc ", 1)[0])


def call(fw, method, path, body=None, token=None, headers=None):
    h = dict(J if body is not None else {}, **(headers or {}))
    if token:
        h["Authorization"] = "Bearer " + token
    data = json.dumps(body) if isinstance(body, dict) else body
    st, hd, b = fw.get(path, method, data, h)
    return st, hd, (json.loads(b) if b else None)


def setup_password(fw):
    st, hd, d = call(fw, "POST", "/api/v1/password", {"password": PW})
    assert st == 200, d
    assert hd["set-cookie"] == "p1session=%s; HttpOnly; SameSite=Strict; Path=/" % d["token"]
    return d["token"]


@pytest.fixture
def fw(tmp_path):
    cfg = {"mqtt": {"host": "broker.example", "user": "meter", "password": "mqtt-secret-1"}}
    f = Firmware(tmp_path, "--interval", "0.2", config=json.dumps(cfg))
    yield f
    f.stop_ok()


def test_config_shown_with_secrets_hidden_and_changes_refused_before_setup(fw):
    st, hd, d = call(fw, "GET", "/api/v1/config")
    assert st == 200 and hd["cache-control"] == "no-store"
    assert d["mqtt"]["password"] == "***" and d["mqtt"]["user"] == "meter"
    assert d["wifi"]["password"] == "" and d["admin"]["password_hash"] == ""  # not set: empty
    assert "mqtt-secret-1" not in json.dumps(d)
    st, _, d = call(fw, "PATCH", "/api/v1/config", {"mqtt": {"port": 1884}})
    assert st == 403 and "admin password" in d["error"]
    st, _, d = call(fw, "POST", "/api/v1/mqtt/test", {})
    assert st == 403
    assert call(fw, "GET", "/api/v1/reading")[0] in (200, 503)  # read-only endpoints stay open


def test_password_setup_login_and_refusals(fw):
    st, _, d = call(fw, "POST", "/api/v1/password", {"password": "short"})
    assert st == 422 and d == {"errors": {"password": "8..64 characters"}}
    token = setup_password(fw)
    stored = saved_config(fw)["admin"]["password_hash"]
    kind, n, salt, h = stored.split("$")
    assert kind == "pbkdf2-sha256" and int(n) >= 1000 and len(salt) == 32 and len(h) == 64
    assert PW not in fw.config.read_text()
    # from now on a session is needed
    assert call(fw, "POST", "/api/v1/password", {"password": "another-one"})[0] == 401
    assert call(fw, "GET", "/api/v1/config")[0] == 401
    assert call(fw, "GET", "/api/v1/config", token="0" * 32)[0] == 401
    st, _, d = call(fw, "GET", "/api/v1/config", token=token)
    assert st == 200 and d["admin"]["password_hash"] == "***"
    # the cookie works as well
    st, _, _ = call(fw, "GET", "/api/v1/config", headers={"Cookie": "a=b; p1session=" + token})
    assert st == 200
    # login: a new token; a wrong password 401
    st, hd, d = call(fw, "POST", "/api/v1/login", {"password": PW})
    assert st == 200 and len(d["token"]) == 32 and "HttpOnly" in hd["set-cookie"]
    t2 = d["token"]
    assert call(fw, "POST", "/api/v1/login", {"password": PW + "x"})[0] == 401
    # a body that is not JSON, or not declared as JSON: 400 (no cross-site form posts)
    assert call(fw, "POST", "/api/v1/login", "password=x", headers={"Content-Type": "text/plain"})[0] == 400
    assert call(fw, "PUT", "/api/v1/login", {"password": PW})[0] == 405
    # logout ends that session only
    assert call(fw, "POST", "/api/v1/logout", {}, token=t2)[0] == 200
    assert call(fw, "GET", "/api/v1/config", token=t2)[0] == 401
    assert call(fw, "GET", "/api/v1/config", token=token)[0] == 200
    # a new password ends every session and gives a new one
    st, _, d = call(fw, "POST", "/api/v1/password", {"password": "new-password-2"}, token=token)
    assert st == 200
    assert call(fw, "GET", "/api/v1/config", token=token)[0] == 401
    assert call(fw, "GET", "/api/v1/config", token=d["token"])[0] == 200
    assert call(fw, "POST", "/api/v1/login", {"password": "new-password-2"})[0] == 200
    assert "failed login" in "".join(fw.status()["log"])


def test_failed_logins_are_rate_limited(fw):
    setup_password(fw)
    for _ in range(3):
        assert call(fw, "POST", "/api/v1/login", {"password": "wrong-password"})[0] == 401
    st, hd, d = call(fw, "POST", "/api/v1/login", {"password": PW})  # even the right one, for now
    assert st == 429 and int(hd["retry-after"]) >= 1 and "too many failed logins" in d["error"]


def test_config_errors_per_field_and_nothing_written(fw):
    token = setup_password(fw)
    before = fw.config.read_bytes()
    bad = {"mqtt": {"port": 70000, "qos": 2, "nope": 1}, "wifi": {"ap_password": "1234567"}, "http": "x",
           "admin": {"password_hash": "x"}}  # fmt: skip
    st, _, d = call(fw, "PATCH", "/api/v1/config", bad, token=token)
    assert st == 422
    assert d == {
        "errors": {
            "admin": "set by POST /api/v1/password",
            "http": "expected an object",
            "mqtt.nope": "unknown key",
            "mqtt.port": "out of range 1..65535",
            "mqtt.qos": "out of range 0..1",
            "wifi.ap_password": "empty or 8..63 characters (WPA2)",
        }
    }
    st, _, d = call(fw, "PATCH", "/api/v1/config", {"mqtt": {"enabled": True, "tls": True}}, token=token)
    assert st == 422 and d == {"errors": {"mqtt.ca": "TLS needs a CA file, or mqtt.insecure"}}
    assert call(fw, "PATCH", "/api/v1/config", "{", token=token)[0] == 400
    assert fw.config.read_bytes() == before


def test_config_change_saved_atomically_applied_or_reboot_named(fw):
    token = setup_password(fw)
    change = {"http": {"port": 8181, "auth_readings": True}, "meter": {"std_offset": "+01:00"},
              "mqtt": {"password": "***", "user": "meter2"}}  # fmt: skip
    st, _, d = call(fw, "PATCH", "/api/v1/config", change, token=token)
    assert st == 200, d
    assert d == {
        "saved": True,
        "applied": ["http.auth_readings", "mqtt.user"],
        "reboot": ["http.port", "meter.std_offset"],
    }
    saved = saved_config(fw)
    assert saved["http"]["port"] == 8181 and saved["meter"]["std_offset"] == "+01:00"
    assert saved["mqtt"]["password"] == "mqtt-secret-1" and saved["mqtt"]["user"] == "meter2"  # "***": kept
    assert saved["admin"]["password_hash"].startswith("pbkdf2-sha256$")
    assert sorted(p.name for p in fw.config.parent.iterdir() if p.name.startswith("config")) == ["config.json", "config.json.bak"]  # no .tmp left
    # auth_readings applied at once: the readings need the login now
    for path in ("/api/v1/reading", "/api/v1/telegram", "/api/v1/status", "/metrics", "/api/v1/events"):
        assert call(fw, "GET", path)[0] == 401, path
    assert call(fw, "GET", "/api/v1/status", token=token)[0] == 200
    assert fw.get("/")[0] == 200  # the page itself stays open
    # PUT: the whole config; what it leaves out goes back to its default
    st, _, d = call(fw, "PUT", "/api/v1/config", {"mqtt": {"host": "b2", "password": "***"}}, token=token)
    assert st == 200, d
    saved = saved_config(fw)
    assert saved["http"]["port"] == 80 and saved["mqtt"]["user"] == "" and saved["mqtt"]["password"] == "mqtt-secret-1"
    assert saved["admin"]["password_hash"].startswith("pbkdf2-sha256$")  # never by PUT
    assert call(fw, "GET", "/api/v1/reading")[0] in (200, 503)  # auth_readings back to false, live


@pytest.mark.skipif(not available(), reason="mosquitto not installed")
def test_mqtt_test_and_live_restart_against_mosquitto(fw, tmp_path):
    token = setup_password(fw)
    with Mosquitto(tmp_path / "broker", users={"meter": "s3cret-pw"}) as b:
        base = {"host": "127.0.0.1", "port": b.port, "user": "meter"}

        def test(**kw):
            st, _, d = call(fw, "POST", "/api/v1/mqtt/test", dict(base, **kw), token=token)
            assert st == 200, d
            return d

        assert test(password="s3cret-pw") == {"ok": True, "answer": "connection accepted"}
        bad = test(password="wrong")
        assert bad["ok"] is False and bad["answer"] in ("not authorized", "bad user name or password")
        closed = test(port=free_port(), password="x")
        assert closed["ok"] is False and "Error" in closed["answer"]
        st, _, d = call(fw, "POST", "/api/v1/mqtt/test", {"port": 0}, token=token)
        assert st == 422 and d["errors"] == {"mqtt.port": "out of range 1..65535"}
        # saved and applied: MQTT (off until now) connects without a reboot
        change = {"mqtt": dict(base, enabled=True, password="s3cret-pw")}
        st, _, d = call(fw, "PATCH", "/api/v1/config", change, token=token)
        assert st == 200 and d["reboot"] == [] and "mqtt.enabled" in d["applied"], d
        fw.wait(lambda: fw.status().get("mqtt", {}).get("state") == "connected", 10, "mqtt connected")
        # and a change reconnects with the new settings
        st, _, d = call(fw, "PATCH", "/api/v1/config", {"mqtt": {"password": "wrong-pw"}}, token=token)
        assert st == 200 and d["applied"] == ["mqtt.password"]
        fw.wait(lambda: fw.status()["mqtt"].get("last_error") in ("not authorized", "bad user name or password"),
                10, "the new password refused")  # fmt: skip
        assert "s3cret-pw" not in json.dumps(fw.status())


def test_login_and_config_under_the_micropython_unix_port(tmp_path):
    """The same code under MicroPython (`p1tool.py run --mp`): hashlib.sha256, the
    PBKDF2, the cookie and a config change over real HTTP."""
    # at the heap the whole firmware needs today (test_memory_budget.TODAY_PLAIN_K), not the
    # budget's 129K, where it does not fit yet (issue 8): this is about the code under
    # MicroPython, and a settings save at 129K can run out of memory
    f = Firmware(tmp_path, "--mp", "--heap", "152K", "--interval", "0.2", config="{}")
    try:
        assert f.status()["alloc_heap"] is not None  # (None on CPython)
        token = setup_password(f)
        assert call(f, "GET", "/api/v1/config")[0] == 401
        st, _, d = call(f, "POST", "/api/v1/login", {"password": PW})
        assert st == 200 and len(d["token"]) == 32
        assert call(f, "POST", "/api/v1/login", {"password": "wrong-password"})[0] == 401
        st, _, d = call(f, "PATCH", "/api/v1/config", {"mqtt": {"port": 0}}, token=token)
        assert st == 422 and d == {"errors": {"mqtt.port": "out of range 1..65535"}}
        st, _, d = call(f, "PATCH", "/api/v1/config", {"http": {"auth_readings": True}}, token=token)
        assert st == 200 and d["applied"] == ["http.auth_readings"], d
        assert call(f, "GET", "/api/v1/reading")[0] == 401
        assert call(f, "GET", "/api/v1/status", headers={"Cookie": "p1session=" + token})[0] == 200
    finally:
        f.stop_ok()


@pytest.mark.parametrize("pw,salt,n", [(b"password", b"salt", 1), (b"password", b"salt", 4096), (b"x" * 100, b"s" * 16, 77)])
def test_pbkdf2_equals_hashlib_on_both_interpreters(unix_micropython, pw, salt, n):
    import asyncio
    import hashlib

    from web import auth

    want = hashlib.pbkdf2_hmac("sha256", pw, salt, n)
    assert asyncio.run(auth.pbkdf2(pw, salt, n)) == want
    code = "import asyncio\nfrom web import auth\nprint(asyncio.run(auth.pbkdf2(%r, %r, %d)).hex())" % (pw, salt, n)
    r = unix_micropython(["-c", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().decode() == want.hex()


def test_hash_check_and_constant_time_compare():
    import asyncio

    from web import auth

    h = asyncio.run(auth.make_hash("correct horse", 100))
    assert h.startswith("pbkdf2-sha256$100$")
    assert asyncio.run(auth.check("correct horse", h)) is True
    assert asyncio.run(auth.check("correct hors", h)) is False
    assert asyncio.run(auth.check("x", "garbage")) is False
    assert auth.same(b"abc", b"abc") and not auth.same(b"abc", b"abd") and not auth.same(b"abc", b"ab")

"""firmware/config.py: defaults, key-by-key validation, never raising, atomic save."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "firmware"))

import config  # noqa: E402


def test_defaults_roundtrip(tmp_path):
    p = tmp_path / "config.json"
    config.save(str(p), config.copy_defaults())
    cfg, errors = config.load(str(p))
    assert errors == []
    assert cfg == config.DEFAULTS
    assert not (tmp_path / "config.json.tmp").exists()
    body, crc = p.read_text().rsplit("#p1crc ", 1)  # JSON, then the checksum line (fsutil)
    assert json.loads(body) == config.DEFAULTS and len(crc) == 9


def test_missing_and_invalid_files_give_defaults(tmp_path):
    cfg, errors = config.load(str(tmp_path / "nope.json"))
    assert cfg == config.DEFAULTS and len(errors) == 1 and "cannot read" in errors[0]
    for text in ("{", "", "[1, 2]", "null", '"x"', "\x00\xff"):
        p = tmp_path / "c.json"
        p.write_text(text, errors="surrogateescape")
        cfg, errors = config.load(str(p))
        assert cfg == config.DEFAULTS
        assert len(errors) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"wifi": {"ssid": "Caf\xe9"}}',  # Latin-1, not UTF-8: a common way to get an SSID wrong
        b'{"wifi": {"ssid": "home"',  # cut short
        b"[" * 100000,  # nesting too deep (and too large)
        b"[" * 5000,  # nesting too deep for CPython's parser
    ],
)
def test_undecodable_file_is_kept_aside_and_defaults_used(tmp_path, raw):
    p = tmp_path / "config.json"
    p.write_bytes(raw)
    cfg, errors = config.load(str(p))
    assert cfg == config.DEFAULTS and len(errors) == 1, errors
    assert "renamed to %s.bad" % p in errors[0] and "using defaults" in errors[0]
    assert not p.exists() and (tmp_path / "config.json.bad").read_bytes() == raw
    cfg, errors = config.load(str(p))  # the next boot: no file, defaults again
    assert cfg == config.DEFAULTS and "cannot read" in errors[0]


def test_undecodable_file_under_micropython(unix_micropython, tmp_path):
    """MicroPython raises UnicodeError for bytes that are not UTF-8: caught the same way."""
    p = tmp_path / "config.json"
    p.write_bytes(b'{"wifi": {"ssid": "Caf\xe9"}}')
    code = "import config\ncfg, e = config.load(%r)\nprint(cfg == config.DEFAULTS, e)" % str(p)
    r = unix_micropython(["-c", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"True ['config: ") and b"not UTF-8 text, renamed to" in r.stdout
    assert (tmp_path / "config.json.bad").exists() and not p.exists()


def test_tls_without_ca_nor_insecure_is_a_config_error():
    m = {"enabled": True, "host": "b", "tls": True}
    cfg, errors = config.validate({"mqtt": m})
    assert cfg["mqtt"]["enabled"] is False
    assert errors == ["config: mqtt.tls: TLS needs a CA file (mqtt.ca) or mqtt.insecure, MQTT off"]
    for extra in ({"ca": "/ca.pem"}, {"insecure": True}, {"tls": False}):
        cfg, errors = config.validate({"mqtt": dict(m, **extra)})
        assert cfg["mqtt"]["enabled"] is True and errors == []


def test_too_large_file(tmp_path):
    p = tmp_path / "c.json"
    p.write_text('{"board": "' + "x" * 9000 + '"}')
    cfg, errors = config.load(str(p))
    assert cfg == config.DEFAULTS and "larger" in errors[0]


@pytest.mark.parametrize(
    "key,value",
    [
        ("http.port", 0),
        ("http.port", 70000),
        ("http.port", "8080"),
        ("http.port", True),
        ("raw_tcp.enabled", 1),
        ("meter.std_offset", "+2"),
        ("meter.std_offset", "+25:00"),
        ("meter.buffer", 100),
        ("mqtt.qos", 2),
        ("mqtt.port", 1.5),
        ("wifi.hostname", "bad name!"),
        ("wifi.ssid", "x" * 33),
        ("board", "../etc"),
        ("mqtt.tls", "yes"),
        ("wifi.ap_password", "1234567"),
        ("wifi.ap_password", "x"),
        ("wifi.ap_password", "x" * 64),
        ("wifi.ap_open", "yes"),
        ("http.auth_readings", 1),
        ("http.cors_origin", "dash.lan"),  # no scheme
        ("http.cors_origin", "ftp://dash.lan"),
        ("http.cors_origin", "http://"),
        ("http.cors_origin", "http://dash.lan/path"),
        ("http.cors_origin", "http://a\r\nSet-Cookie: x=1"),  # a header injected
        ("http.cors_origin", "http://d\u00e9.lan"),
        ("http.cors_origin", "http://" + "a" * 130),
        ("http.cors_origin", 1),
    ],
)
def test_bad_value_falls_back_with_one_error(key, value):
    section, _, sub = key.partition(".")
    data = {section: {sub: value}} if sub else {section: value}
    data["http"] = dict(data.get("http", {}), bind="127.0.0.1") if section != "http" else data["http"]
    cfg, errors = config.validate(data)
    assert len(errors) == 1 and key in errors[0], errors
    got = cfg[section][sub] if sub else cfg[section]
    want = config.DEFAULTS[section][sub] if sub else config.DEFAULTS[section]
    assert got == want


@pytest.mark.parametrize("origin", ["", "*", "http://dash.lan:3000", "https://grafana.example.org"])
def test_cors_origin_values_kept(origin):
    cfg, errors = config.validate({"http": {"cors_origin": origin}})
    assert errors == [] and cfg["http"]["cors_origin"] == origin


def test_good_values_kept_and_unknown_keys_reported():
    data = {
        "board": "esp32-devkit",
        "http": {"port": 80, "color": "red"},
        "meter": {"std_offset": "-03:30"},
        "mqtt": {"enabled": True, "host": "broker", "qos": 0},
        "extra": {},
        "wifi": "oops",
    }
    cfg, errors = config.validate(data)
    assert cfg["board"] == "esp32-devkit"
    assert cfg["http"] == {"port": 80, "bind": "", "auth_readings": False, "homewizard": False, "cors_origin": ""}
    assert cfg["meter"]["std_offset"] == "-03:30"
    assert cfg["mqtt"]["enabled"] is True and cfg["mqtt"]["qos"] == 0
    assert cfg["wifi"] == config.DEFAULTS["wifi"]
    assert len(errors) == 3
    assert config.parse_offset("-03:30") == -210
    assert config.parse_offset("+02:00") == 120


def test_public_masks_secrets_and_does_not_alias():
    cfg = config.copy_defaults()
    cfg["wifi"]["password"] = "secret"
    cfg["mqtt"]["password"] = "pw"
    cfg["admin"]["password_hash"] = "abc"
    pub = config.public(cfg)
    assert pub["wifi"]["password"] == "***"
    assert pub["mqtt"]["password"] == "***"
    assert pub["admin"]["password_hash"] == "***"
    assert pub["wifi"]["ap_password"] == ""  # unset stays empty
    assert cfg["wifi"]["password"] == "secret"
    assert config.DEFAULTS["wifi"]["password"] == ""


def test_copy_defaults_is_deep():
    a = config.copy_defaults()
    a["http"]["port"] = 1
    assert config.DEFAULTS["http"]["port"] == 80


def test_save_replaces_atomically(tmp_path):
    p = tmp_path / "c.json"
    p.write_text("old")
    cfg = config.copy_defaults()
    cfg["http"]["port"] = 9000
    config.save(str(p), cfg)
    assert config.load(str(p)) == (cfg, [])
    assert sorted(x.name for x in tmp_path.iterdir()) == ["c.json", "c.json.bak"]  # (the old one)


def test_status_masks_the_same_secrets():
    """web/status.py masks secrets without importing config (its code stays out of RAM)."""
    from web import status

    assert status.SECRETS == config.SECRETS

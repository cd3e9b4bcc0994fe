"""The configuration: one JSON file with documented defaults.

Strategy: `load(path)` never raises. Every key of DEFAULTS is checked on its
own (type, then range or shape); a bad or unknown key falls back to its default
and adds one error string; an unreadable file or invalid JSON gives all
defaults plus one error. The errors are shown in /api/v1/status, so a broken
file on flash can never cause a boot loop. `save()` writes a temporary file and
renames it over the old one.

Keys (defaults in DEFAULTS):
  board                 boards/<name>.json to use ("host" on a PC)
  wifi.ssid/password    station network; empty ssid -> access point only
  wifi.hostname         "" -> p1-<last 4 hex of MAC> (also the mDNS name)
  wifi.ap_password      password of the fallback access point ("" -> open)
  http.port, http.bind  web server ("" bind -> 0.0.0.0 on the device,
                        127.0.0.1 on the host board)
  http.homewizard       also serve HomeWizard's local API v1 (/api, /api/v1/data)
  raw_tcp.enabled/port  raw telegram server; max_clients; write_timeout_s
                        drops a client that does not take a telegram in time
  meter.std_offset      UTC offset of standard (winter, "W") time, "+02:00"
  meter.buffer          telegram buffer size in bytes
  meter.source          host board: file, pty/serial device, tcp://HOST:PORT, "-"
  admin.password_hash   for future write endpoints; never shown
  mqtt.*                see docs/RUNTIME.md; used by net/mqtt_client.py
                        (mqtt.buffer: RAM ring in readings, ~1 KB heap each;
                        mqtt.spill_kb: flash spool, 0 = off)
"""

import json

from fsutil import write_atomic

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAX_FILE = const(8192)

DEFAULTS = {
    "board": "host",
    "wifi": {"ssid": "", "password": "", "hostname": "", "ap_password": ""},
    "http": {"port": 8080, "bind": "", "homewizard": False},
    "raw_tcp": {"enabled": True, "port": 2323, "max_clients": 4, "write_timeout_s": 10},
    "meter": {"std_offset": "+02:00", "buffer": 3072, "source": ""},
    "admin": {"password_hash": ""},
    "mqtt": {
        "enabled": False,
        "host": "",
        "port": 1883,
        "tls": False,
        "ca": "",
        "insecure": False,
        "user": "",
        "password": "",
        "base_topic": "",
        "client_id": "",
        "discovery": True,
        "discovery_prefix": "homeassistant",
        "interval_s": 0,
        "qos": 1,
        "keepalive_s": 30,
        "per_value_topics": False,
        "raw_topic": False,
        "buffer": 2,  # RAM ring, readings (~1 KB of heap each for a state); then the flash spool
        "spill_kb": 256,  # flash spool for what the ring cannot hold; 0 = off
    },
}

# "section.key" -> (min, max) for integers, or max length for strings.
RANGES = {
    "http.port": (1, 65535),
    "raw_tcp.port": (1, 65535),
    "raw_tcp.max_clients": (1, 16),
    "raw_tcp.write_timeout_s": (1, 600),
    "meter.buffer": (1024, 16384),
    "mqtt.port": (1, 65535),
    "mqtt.interval_s": (0, 86400),
    "mqtt.qos": (0, 1),
    "mqtt.keepalive_s": (0, 3600),
    "mqtt.buffer": (1, 1024),
    "mqtt.spill_kb": (0, 4096),
}
MAXLEN = {"wifi.ssid": 32, "wifi.password": 64, "wifi.hostname": 32, "wifi.ap_password": 64}
_MAXLEN_DEFAULT = const(256)
SECRETS = ("wifi.password", "wifi.ap_password", "mqtt.password", "admin.password_hash")


def parse_offset(text):
    """'+02:00' -> 120 minutes; None if malformed."""
    if not isinstance(text, str) or len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        return None
    hh, mm = text[1:3], text[4:6]
    if not (hh.isdigit() and mm.isdigit()) or int(hh) > 14 or int(mm) > 59:
        return None
    m = int(hh) * 60 + int(mm)
    return -m if text[0] == "-" else m


def _hostname_ok(s):
    if not s:
        return True
    for c in s:
        if not (c.isalpha() or c.isdigit() or c == "-"):
            return False
    return s[0] != "-" and s[-1] != "-"


def _check(key, value, default):
    """None if `value` is fine for `key`, else the reason."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            return "expected true or false"
        return None
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return "expected an integer"
        r = RANGES.get(key)
        if r and not r[0] <= value <= r[1]:
            return "out of range %d..%d" % r
        return None
    if isinstance(default, str):
        if not isinstance(value, str):
            return "expected a string"
        if len(value) > MAXLEN.get(key, _MAXLEN_DEFAULT):
            return "too long"
        if key == "meter.std_offset" and parse_offset(value) is None:
            return "expected +HH:MM"
        if key == "wifi.hostname" and not _hostname_ok(value):
            return "letters, digits and '-' only"
        if key == "board" and (not value or "/" in value or "." in value):
            return "expected a board file name"
        return None
    return "unsupported"


def copy_defaults():
    out = {}
    for k in DEFAULTS:
        v = DEFAULTS[k]
        out[k] = dict(v) if isinstance(v, dict) else v
    return out


def validate(data):
    """(config, errors): `data` merged over defaults, key by key."""
    cfg = copy_defaults()
    errors = []
    if not isinstance(data, dict):
        return cfg, ["config: expected a JSON object, using defaults"]
    for k in data:
        if k not in DEFAULTS:
            errors.append("config: unknown key %r ignored" % k)
            continue
        d = DEFAULTS[k]
        v = data[k]
        if isinstance(d, dict):
            if not isinstance(v, dict):
                errors.append("config: %s: expected an object, using defaults" % k)
                continue
            for sk in v:
                name = k + "." + sk
                if sk not in d:
                    errors.append("config: unknown key %r ignored" % name)
                    continue
                why = _check(name, v[sk], d[sk])
                if why:
                    errors.append("config: %s: %s, using %s" % (name, why, json.dumps(d[sk])))
                else:
                    cfg[k][sk] = v[sk]
        else:
            why = _check(k, v, d)
            if why:
                errors.append("config: %s: %s, using %s" % (k, why, json.dumps(d)))
            else:
                cfg[k] = v
    return cfg, errors


def load(path):
    """(config, errors) from the file at `path`. Never raises."""
    try:
        with open(path) as f:
            text = f.read(_MAX_FILE + 1)
    except OSError as e:
        return copy_defaults(), ["config: cannot read %s (%s), using defaults" % (path, e)]
    if len(text) > _MAX_FILE:
        why = "config: %s larger than %d bytes, using defaults" % (path, _MAX_FILE)
        return copy_defaults(), [why]
    try:
        data = json.loads(text)
    except ValueError as e:
        return copy_defaults(), ["config: %s is not valid JSON (%s), using defaults" % (path, e)]
    return validate(data)


def save(path, cfg):
    """Write `cfg` atomically: a temporary file renamed over `path`."""
    write_atomic(path, dumps(cfg))


def dumps(cfg):
    """Readable JSON with sections in DEFAULTS order (both interpreters)."""
    parts = []
    for k in DEFAULTS:
        if k not in cfg:
            continue
        v = cfg[k]
        if isinstance(v, dict):
            inner = ",\n".join(
                "    %s: %s" % (json.dumps(sk), json.dumps(v[sk])) for sk in DEFAULTS[k] if sk in v
            )
            parts.append("  %s: {\n%s\n  }" % (json.dumps(k), inner))
        else:
            parts.append("  %s: %s" % (json.dumps(k), json.dumps(v)))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def public(cfg):
    """A copy safe to show: secrets that are set become "***"."""
    out = copy_defaults()
    for k in cfg:
        v = cfg[k]
        if isinstance(v, dict):
            out[k] = dict(v)
            for sk in v:
                if (k + "." + sk) in SECRETS and v[sk]:
                    out[k][sk] = "***"
        else:
            out[k] = v
    return out

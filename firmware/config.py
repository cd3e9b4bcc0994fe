"""The configuration: one JSON file with documented defaults.

Strategy: `load(path)` never raises. Every key of DEFAULTS is checked on its
own (type, then range or shape); a bad or unknown key falls back to its default
and adds one error string; an unreadable file, bytes that are not UTF-8 or
invalid JSON give all defaults plus one error, and a file that cannot be
decoded is renamed to `<path>.bad` (kept for repair, not read again). The
errors are shown in /api/v1/status, so a broken file on flash can never
cause a boot loop. `save()` and `load()` go through fsutil: a power cut while
saving leaves the old file or the new one (the file ends with a checksum line,
`#p1crc ...`; delete that line when editing the file by hand).

Keys (defaults in DEFAULTS):
  board                 boards/<name>.json to use ("host" on a PC)
  wifi.ssid/password    station network; empty ssid -> access point only
  wifi.hostname         "" -> p1-<last 4 hex of MAC> (also the mDNS name)
  wifi.ap_password      WPA2 password of the fallback access point: "" or
                        8..63 characters ("" -> one generated at first use,
                        printed on the console; net/wifi.py)
  wifi.ap_open          true: the fallback access point has no password
  http.port, http.bind  web server ("" bind -> 0.0.0.0 on the device,
                        127.0.0.1 on the host board)
  http.homewizard       also serve HomeWizard's local API v1 (/api, /api/v1/data)
  http.cors_origin      "" (off), "*" or an origin ("http://dash.lan:3000"): sent
                        as Access-Control-Allow-Origin, for dashboards on other
                        origins; OPTIONS preflights answered (web/cold.py)
  raw_tcp.enabled/port  raw telegram server; max_clients; write_timeout_s
                        drops a client that does not take a telegram in time
  meter.std_offset      UTC offset of standard (winter, "W") time, "+02:00"
  meter.buffer          telegram buffer size in bytes
  meter.source          host board: file, pty/serial device, tcp://HOST:PORT, "-"
  admin.password_hash   PBKDF2 of the admin password (web/auth.py); "" -> none
                        set yet: only the setup page and reading endpoints
  http.auth_readings    true: the readings need a login too
  tariff.*              the power-tariff monitor's rule (tariff.py, docs/TARIFF.md)
  loads.*, relay1..4.*  load management: guards, relays (loads.py, docs/LOADCONTROL.md)
  mqtt.*                see docs/RUNTIME.md; used by net/mqtt_client.py
                        (mqtt.buffer: RAM ring in readings, ~1 KB heap each;
                        mqtt.spill_kb: flash spool, 0 = off)
  alarms.*              health alarm thresholds, 0 = that alarm off (health.py):
                        no_telegram_s, crc_error_pct, heap_floor (bytes free)
"""

import json
import os

from fsutil import read, write_atomic

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_MAX_FILE = const(8192)

_RELAY_DEFAULTS = {"name": "", "priority": 1, "safe": "off", "min_on_s": 60, "min_off_s": 300}
DEFAULTS = {
    "board": "host",
    "wifi": {"ssid": "", "password": "", "hostname": "", "ap_password": "", "ap_open": False},
    "http": {"port": 80, "bind": "", "auth_readings": False, "homewizard": False, "cors_origin": ""},
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
        "buffer": 1,  # RAM ring, readings (~1 KB of heap each for a state); then the flash spool
        "spill_kb": 256,  # flash spool for what the ring cannot hold; 0 = off
    },
    "alarms": {"no_telegram_s": 300, "crc_error_pct": 5, "heap_floor": 12288},
    "tariff": {  # the power-tariff monitor's rule (tariff.py, docs/TARIFF.md)
        "period": "hour",
        "weekdays_only": False,
        "hours": "0-24",
        "months": "1-12",
        "top": 1,
        "distinct_days": True,
    },
    "loads": {  # load management (loads.py, docs/LOADCONTROL.md)
        "fuse_a": 25,  # main fuse per phase: the phase guard, the page's phase bars; 0: neither
        "margin_pct": 100,  # shed above fuse x margin ...
        "restore_pct": 90,  # ... restore below fuse x this
        "delay_s": 10,  # over for this long: shed one load (then one more after each delay_s)
        "limit_w": 0,  # power guard: the projected tariff period average; 0: off
        "limit_restore_pct": 90,  # restore below limit x this
        "restore_s": 60,  # below both restore levels this long: restore one load (and so on)
        "stale_s": 60,  # no reading this long: the relays in auto go to their safe state
        "override_s": 3600,  # a manual override's default expiry
    },
    # relay1..relay4 (a relay with no name is not used): one defaults dict, never changed (copied)
    "relay1": _RELAY_DEFAULTS,
    "relay2": _RELAY_DEFAULTS,
    "relay3": _RELAY_DEFAULTS,
    "relay4": _RELAY_DEFAULTS,
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
    "alarms.no_telegram_s": (0, 86400),
    "alarms.crc_error_pct": (0, 100),
    "alarms.heap_floor": (0, 1048576),
    "tariff.top": (1, 5),
    "loads.fuse_a": (0, 1000),
    "loads.margin_pct": (50, 200),
    "loads.restore_pct": (10, 199),
    "loads.delay_s": (1, 3600),
    "loads.limit_w": (0, 1000000),
    "loads.limit_restore_pct": (10, 99),
    "loads.restore_s": (1, 86400),
    "loads.stale_s": (5, 3600),
    "loads.override_s": (1, 86400),
}
_RELAY = {"priority": (1, 9), "min_on_s": (0, 86400), "min_off_s": (0, 86400)}  # relay1..relay4
MAXLEN = {"wifi.ssid": 32, "wifi.password": 64, "wifi.hostname": 32, "wifi.ap_password": 63, "http.cors_origin": 128}
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


def _origin_ok(s):
    """ "", "*" or scheme://host[:port]: no path, no space or control character
    (the value goes into a header line as it is)."""
    if s in ("", "*"):
        return True
    scheme, _, host = s.partition("://")
    if scheme not in ("http", "https") or not host or "/" in host:
        return False
    for c in s:
        if not 32 < ord(c) < 127:
            return False
    return True


def _check(key, value, default):
    """None if `value` is fine for `key`, else the reason."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            return "expected true or false"
        return None
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return "expected an integer"
        r = RANGES.get(key) or (_RELAY.get(key[7:]) if key[:5] == "relay" else None)
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
        if key == "http.cors_origin" and not _origin_ok(value):
            return 'expected "", "*" or an origin such as http://host:3000'
        if key == "wifi.ap_password" and 0 < len(value) < 8:
            return "empty or 8..63 characters (WPA2)"
        if key == "board" and (not value or "/" in value or "." in value):
            return "expected a board file name"
        if key[:5] == "relay" and key[7:] == "safe" and value not in ("on", "off"):
            return "on or off"
        if key[:5] == "relay" and key[7:] == "name" and len(value) > 24:
            return "at most 24 characters"
        if key == "tariff.period" and value not in ("hour", "15min"):
            return "hour or 15min"
        if key in ("tariff.hours", "tariff.months"):
            a, _, b = value.partition("-")
            lo, hi = (0, 24) if key == "tariff.hours" else (1, 12)
            if not (a.isdigit() and b.isdigit() and lo <= int(a) <= hi and lo <= int(b) <= hi):
                return "expected %d..%d-%d..%d" % (lo, hi, lo, hi)
        return None
    return "unsupported"


def copy_defaults():
    out = {}
    for k in DEFAULTS:
        v = DEFAULTS[k]
        out[k] = dict(v) if isinstance(v, dict) else v
    return out


def merge(cfg, data, errs):
    """Check each key of `data` and put the good ones into `cfg` (changed in
    place); errs[field] = reason for each bad one ("" for a whole section)."""
    if not isinstance(data, dict):
        errs[""] = "expected a JSON object"
        return
    for k in data:
        d = DEFAULTS.get(k)
        v = data[k]
        if d is None:
            errs[k] = "unknown key"
        elif isinstance(d, dict):
            if not isinstance(v, dict):
                errs[k] = "expected an object"
                continue
            for sk in v:
                name = k + "." + sk
                if sk not in d:
                    errs[name] = "unknown key"
                    continue
                why = _check(name, v[sk], d[sk])
                if why:
                    errs[name] = why
                else:
                    cfg[k][sk] = v[sk]
        else:
            why = _check(k, v, d)
            if why:
                errs[k] = why
            else:
                cfg[k] = v
    m = cfg["mqtt"]
    if m["enabled"] and m["tls"] and not m["ca"] and not m["insecure"]:
        # MicroPython has no trust store: it would fail each attempt
        errs["mqtt.ca"] = "TLS needs a CA file, or mqtt.insecure"
    lc = cfg["loads"]
    if lc["restore_pct"] >= lc["margin_pct"] and "loads.restore_pct" not in errs:
        errs["loads.restore_pct"] = "below margin_pct (%d)" % lc["margin_pct"]
        lc["margin_pct"], lc["restore_pct"] = 100, 90  # (DEFAULTS: a pair that fits)


def validate(data):
    """(config, errors): `data` merged over defaults, key by key."""
    cfg = copy_defaults()
    errs = {}
    merge(cfg, data, errs)
    errors = []
    for name in sorted(errs):  # (a dict's order differs between the interpreters)
        if name == "":
            errors.append("config: expected a JSON object, using defaults")
        elif errs[name] == "unknown key":
            errors.append("config: unknown key %r ignored" % name)
        elif name == "mqtt.ca":
            cfg["mqtt"]["enabled"] = False
            errors.append("config: mqtt.tls: TLS needs a CA file (mqtt.ca) or mqtt.insecure, MQTT off")
        elif name == "loads.restore_pct" and errs[name][:5] == "below":
            errors.append("config: loads.restore_pct: %s, using 100 and 90" % errs[name])
        else:
            k, _, sk = name.partition(".")
            d = DEFAULTS[k]
            if sk:
                d = d[sk]
            if isinstance(d, dict):
                errors.append("config: %s: expected an object, using defaults" % k)
            else:
                errors.append("config: %s: %s, using %s" % (name, errs[name], json.dumps(d)))
    return cfg, errors


def load(path):
    """(config, errors) from the file at `path` (or the whole copy fsutil.read
    finds after a power cut). Never raises."""
    raw, copy = read(path, _MAX_FILE)
    if raw is None:
        if copy == "missing":
            return copy_defaults(), ["config: cannot read %s (missing), using defaults" % path]
        return copy_defaults(), ["config: %s damaged (checksum), using defaults" % path]
    note = [] if not copy else ["config: %s was cut short, using %s%s" % (path, path, copy)]
    why = None
    if len(raw) > _MAX_FILE:
        why = "larger than %d bytes" % _MAX_FILE
    else:
        try:
            data = json.loads(raw.decode())
        except UnicodeError:  # (before ValueError: a subclass of it) MicroPython's UnicodeError too
            why = "not UTF-8 text"
        except Exception as e:  # noqa: BLE001 - ValueError; nesting too deep (RecursionError)
            why = "not valid JSON (%s)" % e
    if why:  # kept aside, so that the next boot does not trip over it again
        try:
            try:
                os.remove(path + ".bad")
            except OSError:
                pass
            os.rename(path + copy, path + ".bad")
            why += ", renamed to %s.bad" % path
        except OSError:
            pass
        return copy_defaults(), note + ["config: %s %s, using defaults" % (path, why)]
    cfg, errors = validate(data)  # pyright: ignore[reportPossiblyUnboundVariable]
    return cfg, note + errors


def save(path, cfg):
    """Write `cfg` power-safely (fsutil.write_atomic: a temporary file with a
    checksum line, renamed over `path`)."""
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

"""A fake `network` for the ESP32 port, run under MicroPython's Unix port.

It follows ports/esp32/network_wlan.c, network_common.c, modnetwork_globals.h
and extmod/modnetwork.c (MicroPython master of 2026-08-19), the stubs
micropython-esp32-stubs 1.29 and docs/library/network.WLAN.rst:

- `WLAN(interface_id)`: one object per interface (STA_IF=0, AP_IF=1), else
  ValueError. `active(x)` switches the radio mode; the radio is "started"
  while either interface is active.
- `connect(ssid, key, *, bssid)`: OSError("Wifi Not Started") with no
  interface active, OSError("Wifi Invalid Mode") with only the AP active.
  Joining takes `_join_ms` of the fake clock; the IDF then retries on its own
  (`config(reconnects=n)` limits that) until `disconnect()`, after which
  status() says STAT_IDLE (reason ASSOC_LEAVE), not why the join failed.
- `status()`: STAT_GOT_IP, STAT_CONNECTING, STAT_IDLE or the last failure
  (STAT_NO_AP_FOUND 201, STAT_WRONG_PASSWORD 202, STAT_BEACON_TIMEOUT 200...),
  None on the AP; `status("rssi")` (STA, connected: else OSError("Wifi Not
  Connected")), `status("stations")` (AP); otherwise "STA/AP required" or
  ValueError("unknown status param").
- `config(...)`: positional and keyword together -> TypeError; AP-only keys
  (ssid/essid, key/password, security/authmode, hidden, max_clients) on the
  STA -> OSError("AP required"); the AP refuses a WPA/WPA2 password shorter
  than 8 characters (esp_wifi_set_config: OSError("Wifi Invalid Password"))
  and WEP (RuntimeError 0x0102); `txpower` needs a started radio ("Wifi Not
  Started") within 2..21 dBm (quarter dBm 8..84, else RuntimeError 0x0102);
  unknown keys -> ValueError("unknown config param").
- `hostname(name)`: at most 32 characters, else ValueError; the STA sends it
  to DHCP when connect() is called (recorded in `_dhcp_hostname`).

Test controls start with an underscore: `_reset()`, `_aps` (ssid -> [key,
rssi]), `_now()`/`_advance(ms)` (the fake clock: real ticks plus what
`_advance` added), `_join_ms`, `_drop(reason)` (the link goes down),
`_stations` (the AP's clients), `_txpower` (quarter dBm), `_pm`,
`_connects` (ssid of each connect() call), `_fail` (method name -> exception
raised once by the next call: a fault injector).
"""

import time

STA_IF = 0
AP_IF = 1
AUTH_OPEN = 0
AUTH_WEP = 1
AUTH_WPA_PSK = 2
AUTH_WPA2_PSK = 3
AUTH_WPA_WPA2_PSK = 4
AUTH_MAX = 17
MODE_11B = 1
MODE_11G = 2
MODE_11N = 4
MODE_LR = 8
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_BEACON_TIMEOUT = 200
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_ASSOC_FAIL = 203
STAT_CONNECT_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
STAT_NO_AP_FOUND_W_COMPATIBLE_SECURITY = 210
STAT_NO_AP_FOUND_IN_AUTHMODE_THRESHOLD = 211
STAT_NO_AP_FOUND_IN_RSSI_THRESHOLD = 212

_ASSOC_LEAVE = 8  # WIFI_REASON_ASSOC_LEAVE: after disconnect()
_CONNECTION_FAIL = 205  # WIFI_REASON_CONNECTION_FAIL: reported as a wrong password
_MAC = b"\x24\x0a\xc4\x12\x34\x56"


def _reset():
    """Radio off, no access points, default hostname, fake clock back to real time."""
    global _mode, _hostname, _offset, _join_ms, _txpower, _pm, _conf_reconnects, _dhcp_hostname
    _mode = 0  # bit 0: STA, bit 1: AP (WIFI_MODE_STA | WIFI_MODE_AP)
    _hostname = "mpy-esp32"
    _offset = 0
    _join_ms = 1500
    _txpower = 80  # 20 dBm, the IDF default
    _pm = 1
    _conf_reconnects = 0
    _dhcp_hostname = None
    _aps.clear()
    _stations.clear()
    _fail.clear()
    del _connects[:]
    _set(_sta, _connected=False, _requested=False, _reason=0, _due=None, _ssid="", _key="", _tries=0)
    _set(_ap, _cfg={"ssid": "ESP_123457", "key": "", "security": AUTH_OPEN, "hidden": False, "channel": 1})


def _set(o, **kw):
    for k in kw:
        setattr(o, k, kw[k])


def _now():
    return time.ticks_add(time.ticks_ms(), _offset)


def _advance(ms):
    global _offset
    _offset += ms


def _raise(name):
    e = _fail.pop(name, None)
    if e is not None:
        raise e


def hostname(name=None):
    global _hostname
    _raise("hostname")
    if name is None:
        return _hostname
    if len(name) > 32:
        raise ValueError()
    _hostname = name


def country(code=None):
    return "XX" if code is None else None


def _started():
    if not _mode:
        raise OSError("Wifi Not Started")


class WLAN:
    IF_STA = 0
    IF_AP = 1
    SEC_OPEN = 0
    SEC_WEP = 1
    SEC_WPA = 2
    SEC_WPA2 = 3
    SEC_WPA_WPA2 = 4
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __new__(cls, interface_id=STA_IF):
        if interface_id == STA_IF:
            return _sta
        if interface_id == AP_IF:
            return _ap
        raise ValueError("invalid WLAN interface identifier")

    def __init__(self, interface_id=STA_IF):
        pass

    def _update(self):
        """What the IDF's event task would have done by now (the STA joining)."""
        s = _sta
        while s._due is not None and not s._connected and time.ticks_diff(_now(), s._due) >= 0:
            s._tries += 1
            ap = _aps.get(s._ssid) if _mode & 1 else None
            if ap is None:
                s._reason = STAT_NO_AP_FOUND
            elif ap[0] != s._key:
                s._reason = STAT_WRONG_PASSWORD
            else:
                s._connected = True
                s._reason = 0
                s._due = None
                break
            if _conf_reconnects and s._tries >= _conf_reconnects:
                s._due = None
            else:
                s._due = time.ticks_add(s._due, _join_ms)

    def active(self, *x):
        global _mode
        _raise("active")
        bit = 1 if self is _sta else 2
        if x:
            _mode = _mode | bit if x[0] else _mode & ~bit
            if self is _sta and not x[0]:
                _set(_sta, _connected=False, _due=None, _reason=_ASSOC_LEAVE)
            if self is _ap and not x[0]:
                _stations.clear()
        return bool(_mode & bit)

    def connect(self, ssid=None, key=None, *, bssid=None):
        global _dhcp_hostname
        _raise("connect")
        _started()
        if not _mode & 1:
            raise OSError("Wifi Invalid Mode")
        s = _sta
        if ssid is not None:
            s._ssid = ssid[:32]
            s._key = (key or "")[:64]
        _dhcp_hostname = _hostname
        _connects.append(s._ssid)
        _set(s, _connected=False, _requested=True, _tries=0, _due=time.ticks_add(_now(), _join_ms))

    def disconnect(self):
        _raise("disconnect")
        _started()
        s = _sta
        if s._connected or s._due is not None:  # associated or (re)joining: the IDF reports ASSOC_LEAVE
            s._reason = _ASSOC_LEAVE
        _set(s, _connected=False, _requested=False, _due=None)

    def isconnected(self):
        _raise("isconnected")
        if self is _ap:
            return bool(_stations)
        self._update()
        return _sta._connected

    def status(self, *param):
        _raise("status")
        s = _sta
        if not param:
            if self is _ap:
                return None
            self._update()
            if s._connected:
                return STAT_GOT_IP
            if s._reason in (STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD) or s._reason >= 210:
                return s._reason
            if s._reason == _CONNECTION_FAIL:
                return STAT_WRONG_PASSWORD
            if s._reason == _ASSOC_LEAVE:
                return STAT_IDLE
            if s._requested and (not _conf_reconnects or s._tries < _conf_reconnects):
                return STAT_CONNECTING
            return s._reason or STAT_IDLE
        p = param[0]
        if p == "rssi":
            if self is not _sta:
                raise OSError("STA required")
            self._update()
            if not s._connected:
                raise OSError("Wifi Not Connected")
            return _aps[s._ssid][1]
        if p == "stations":
            if self is not _ap:
                raise OSError("AP required")
            return [(m, None) for m in _stations]
        raise ValueError("unknown status param")

    def ifconfig(self, *cfg):
        _raise("ifconfig")
        if cfg:
            raise OSError("fake network: static addresses are not modelled")
        if self is _ap:
            return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")
        self._update()
        if _sta._connected:
            return ("192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def scan(self):
        if not _mode & 1:
            raise OSError("STA must be active")
        return [(ssid.encode(), b"\x00\x11\x22\x33\x44\x55", 6, v[1], 3, False) for ssid, v in _aps.items()]

    def config(self, *args, **kw):
        global _conf_reconnects, _txpower, _pm
        _raise("config")
        if args and kw:
            raise TypeError("either pos or kw args are allowed")
        ap = self is _ap
        if kw:
            cfg = dict(_ap._cfg)
            for k in kw:
                v = kw[k]
                need = None
                if k == "mac":
                    if len(v) != 6:
                        raise ValueError("invalid buffer length")
                elif k in ("ssid", "essid"):
                    need, cfg["ssid"] = AP_IF, v[:32]
                elif k == "hidden":
                    need, cfg["hidden"] = AP_IF, bool(v)
                elif k in ("security", "authmode"):
                    need, cfg["security"] = AP_IF, int(v)
                elif k in ("key", "password"):
                    need, cfg["key"] = AP_IF, v[:63]
                elif k == "channel":
                    cfg["channel"] = int(v)
                elif k in ("hostname", "dhcp_hostname"):
                    hostname(v)
                elif k == "max_clients":
                    need = AP_IF
                elif k == "reconnects":
                    need = STA_IF
                    _conf_reconnects = 0 if v == -1 else v + 1
                elif k == "txpower":
                    _started()
                    q = int(v * 4)
                    if not 8 <= q <= 84:
                        raise RuntimeError("Wifi Unknown Error 0x0102")
                    _txpower = q
                elif k == "pm":
                    _pm = int(v)
                elif k not in ("protocol", "bandwidth"):
                    raise ValueError("unknown config param")
                if need is not None and need != (AP_IF if ap else STA_IF):
                    raise OSError("AP required" if need == AP_IF else "STA required")
            if ap:  # esp_wifi_set_config(WIFI_IF_AP, ...)
                if cfg["security"] == AUTH_WEP:
                    raise RuntimeError("Wifi Unknown Error 0x0102")
                if cfg["security"] != AUTH_OPEN and len(cfg["key"]) < 8:
                    raise OSError("Wifi Invalid Password")
                _ap._cfg = cfg
            return None
        if len(args) != 1:
            raise TypeError("can query only one param")
        k = args[0]
        if k == "mac":
            return _MAC if not ap else _MAC[:5] + bytes([_MAC[5] + 1])
        if k in ("ssid", "essid"):
            return _ap._cfg["ssid"] if ap else _sta._ssid
        if k in ("security", "authmode", "hidden", "key"):
            if not ap:
                raise OSError("AP required")
            return _ap._cfg["security" if k == "authmode" else k]
        if k == "channel":
            return _ap._cfg["channel"]
        if k in ("hostname", "dhcp_hostname"):
            if ap:
                raise OSError("STA required")
            return _hostname
        if k == "txpower":
            return _txpower * 0.25
        if k == "pm":
            return _pm
        if k == "reconnects":
            return _conf_reconnects - 1
        raise ValueError("unknown config param")


def _drop(reason=STAT_BEACON_TIMEOUT):
    """The link goes down (AP gone, out of range); the IDF starts rejoining."""
    s = _sta
    s._connected = False
    s._reason = reason
    s._tries = 0
    if s._requested:
        s._due = time.ticks_add(_now(), _join_ms)


_aps = {}
_stations = []
_connects = []
_fail = {}
_sta = object.__new__(WLAN)
_ap = object.__new__(WLAN)
_reset()

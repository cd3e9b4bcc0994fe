"""Wi-Fi on the device: station from config, reconnect with backoff, access
point fallback. Only imported on boards with a radio.

Strategy: one supervisor task. The radio starts at the board's reduced TX
power (the P1 port gives at most 250 mA). With an SSID it joins as a station
and retries with exponential backoff; after `_AP_AFTER` failed attempts (or
with no SSID at all) it also opens an access point named after the hostname,
so the dongle stays reachable for set-up, and keeps trying the station.
The hostname (default p1-<last 4 hex of MAC>) is also the mDNS name: the
ESP32 port's built-in responder answers <hostname>.local.
"""

import asyncio

import network

try:
    from micropython import const
except ImportError:  # pragma: no cover

    def const(x):
        return x


_CONNECT_WAIT_MS = const(20000)
_POLL_MS = const(500)
_BACKOFF_MIN_MS = const(2000)
_BACKOFF_MAX_MS = const(120000)
_AP_AFTER = const(3)  # failed attempts before the access point opens
_CHECK_MS = const(5000)


class Wifi:
    def __init__(self, cfg, hostname, txpower_dbm=None):
        self.ssid = cfg.get("ssid", "")
        self._password = cfg.get("password", "")
        self._ap_password = cfg.get("ap_password", "")
        self.hostname = hostname
        self.txpower = txpower_dbm
        self.sta = None
        self.ap = None
        self.state = "off"
        self.attempts = 0
        self.reconnects = 0
        self.error = ""

    def _set_hostname(self):
        try:
            network.hostname(self.hostname)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - older firmware: per-interface name
            try:
                if self.sta is not None:
                    self.sta.config(dhcp_hostname=self.hostname)
            except Exception as e:  # noqa: BLE001
                self.error = "hostname: %s" % e

    def _power(self, wlan):
        if self.txpower:
            try:
                wlan.config(txpower=self.txpower)
            except Exception as e:  # noqa: BLE001
                self.error = "txpower: %s" % e
        try:
            wlan.config(pm=wlan.PM_PERFORMANCE)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - no power-management setting on this port
            pass

    def start_ap(self):
        if self.ap is not None:
            return
        ap = network.WLAN(network.AP_IF)
        ap.active(True)
        self._power(ap)
        if self._ap_password:
            ap.config(essid=self.hostname, password=self._ap_password, authmode=3)
        else:
            ap.config(essid=self.hostname, authmode=0)
        self.ap = ap
        if self.state != "connected":
            self.state = "ap"

    def stop_ap(self):
        if self.ap is not None:
            self.ap.active(False)
            self.ap = None

    async def run(self):
        self._set_hostname()
        if not self.ssid:
            self.start_ap()
            return
        sta = network.WLAN(network.STA_IF)
        self.sta = sta
        sta.active(True)
        self._power(sta)
        self._set_hostname()
        backoff = _BACKOFF_MIN_MS
        fails = 0
        while True:
            if not sta.isconnected():
                self.state = "connecting"
                self.attempts += 1
                try:
                    sta.connect(self.ssid, self._password)
                except OSError as e:
                    self.error = "connect: %s" % e
                waited = 0
                while not sta.isconnected() and waited < _CONNECT_WAIT_MS:
                    await asyncio.sleep_ms(_POLL_MS)  # type: ignore[attr-defined]
                    waited += _POLL_MS
                if sta.isconnected():
                    if fails:
                        self.reconnects += 1
                    fails = 0
                    backoff = _BACKOFF_MIN_MS
                    self.state = "connected"
                    self.error = ""
                    self.stop_ap()
                else:
                    fails += 1
                    self.error = "no connection to %r (attempt %d)" % (self.ssid, fails)
                    try:
                        sta.disconnect()
                    except OSError:
                        pass
                    if fails >= _AP_AFTER:
                        self.start_ap()
                    await asyncio.sleep_ms(backoff)  # type: ignore[attr-defined]
                    backoff = min(backoff * 2, _BACKOFF_MAX_MS)
                    continue
            await asyncio.sleep_ms(_CHECK_MS)  # type: ignore[attr-defined]

    def status(self):
        out = {
            "state": self.state,
            "ssid": self.ssid,
            "hostname": self.hostname,
            "attempts": self.attempts,
            "reconnects": self.reconnects,
            "error": self.error,
            "ip": None,
            "rssi": None,
            "ap": None,
        }
        sta = self.sta
        if sta is not None and sta.isconnected():
            out["ip"] = sta.ifconfig()[0]
            try:
                out["rssi"] = sta.status("rssi")
            except Exception:  # noqa: BLE001
                pass
        if self.ap is not None:
            out["ap"] = {"essid": self.hostname, "ip": self.ap.ifconfig()[0]}
        return out

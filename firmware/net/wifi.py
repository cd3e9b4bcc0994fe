"""Wi-Fi on the device: station from config, reconnect with backoff, access
point fallback. Only imported on boards with a radio.

Strategy: one supervisor task that never ends. The radio starts at the
board's reduced TX power (the P1 port gives at most 250 mA). With an SSID it
joins as a station and retries with exponential backoff; after `_AP_AFTER`
failed attempts (or with no SSID at all) it also opens an access point named
after the hostname, so the dongle stays reachable for set-up, and keeps
trying the station; the access point closes once the station is up. The
hostname (default p1-<last 4 hex of MAC>) is also the mDNS name: the ESP32
port's built-in responder answers <hostname>.local, and the station sends it
to DHCP.

The access point is WPA2 unless the config says `wifi.ap_open`. Without
`wifi.ap_password` it uses one generated at its first use (10 characters
from os.urandom, kept in <storage_dir>/ap_key so it stays the same across
boots) and printed on the console each time the access point opens (not in
the log that /api/v1/status shows). A configured password the radio refuses
(config.py already refuses 1..7 characters) is logged and the generated one
used instead.

The access point's code and status() are in net/wifi_rare.py, in RAM only
while they run. While it is up, net.dns answers every name with its address
(a captive portal: phones open the setup page by themselves; web/api.py
redirects unknown paths there); it stops, and leaves RAM, with the access
point.

Nothing stops the task: an exception from the radio (out of memory, an IDF
error) is logged, shown in status and retried after the backoff.
"""

import asyncio

import log
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
    dns_port = 53  # the captive portal's DNS responder (a test sets another)

    def __init__(self, cfg, hostname, txpower_dbm=None, key_dir=""):
        self.ssid = cfg.get("ssid", "")
        self._password = cfg.get("password", "")
        self._ap_password = cfg.get("ap_password", "")
        self._ap_open = cfg.get("ap_open", False)
        self._key_dir = key_dir
        self.hostname = hostname
        self.txpower = txpower_dbm
        self.sta = None
        self.ap = None
        self.state = "off"
        self.attempts = 0
        self.reconnects = 0  # joins after the first one
        self.error = ""
        self._fails = 0
        self._joined = False
        self._dns = None  # its task
        self.dns = None  # its counters

    def _fault(self, where, e):
        self.error = "%s: %s" % (where, e)
        log.error("wifi " + self.error)

    def _power(self, wlan):
        # Power save stays at the IDF's default, modem sleep (WLAN.PM_PERFORMANCE).
        if self.txpower:
            try:
                wlan.config(txpower=self.txpower)
            except Exception as e:  # noqa: BLE001 - out of range for this chip: keep its default
                self._fault("txpower", e)

    def _rare(self, job, *args):
        """A job of net.wifi_rare, loaded for the call and dropped again: a dongle
        on its network runs none of it but status() (for a page, now and then)."""
        from mem import call

        return call("net.wifi_rare", job, self, *args)

    def start_ap(self):
        """Open the access point (once); never raises."""
        if self.ap is None:
            try:
                self._rare("start")
            except Exception as e:  # noqa: BLE001 - MemoryError importing it: tried again after the next failure
                self._fault("ap", e)

    def stop_ap(self):
        """Close the access point and its captive portal, if open."""
        if self.ap is not None or self._dns is not None:
            self._rare("stop")

    async def run(self):
        """The supervisor: join, watch, rejoin. Returns never; raises only CancelledError."""
        try:
            network.hostname(self.hostname)  # type: ignore[attr-defined]
        except Exception as e:  # noqa: BLE001 - too long or unsupported: keep the default
            self._fault("hostname", e)
        backoff = _BACKOFF_MIN_MS
        while True:
            wait = _CHECK_MS
            try:
                if not self.ssid:
                    self.start_ap()
                    if self.ap is None:
                        wait = 0
                elif await self._join():
                    backoff = _BACKOFF_MIN_MS
                else:
                    wait = 0
            except Exception as e:  # noqa: BLE001 - MemoryError, IDF errors: log, back off, retry
                wait = 0
                try:
                    self._fault(type(e).__name__, e)
                except Exception:  # noqa: BLE001 - no memory even for the message
                    pass
            if not wait:
                wait = backoff
                backoff = min(backoff * 2, _BACKOFF_MAX_MS)
            await asyncio.sleep_ms(wait)  # type: ignore[attr-defined]

    async def _join(self):
        """True once the station is connected; False after a failed attempt."""
        sta = self.sta
        if sta is None:
            sta = network.WLAN(network.STA_IF)
            sta.active(True)
            self._power(sta)
            self.sta = sta
        if not sta.isconnected():
            self.state = "connecting"
            self.attempts += 1
            try:
                sta.connect(self.ssid, self._password)
            except OSError as e:  # e.g. already connecting: wait for it anyway
                self.error = "connect: %s" % e
            waited = 0
            while not sta.isconnected() and waited < _CONNECT_WAIT_MS:
                await asyncio.sleep_ms(_POLL_MS)  # type: ignore[attr-defined]
                waited += _POLL_MS
            if not sta.isconnected():
                self._fails += 1
                st = sta.status()  # before disconnect(), which can turn the reason into STAT_IDLE
                try:
                    sta.disconnect()
                except OSError:
                    pass
                if self._fails >= _AP_AFTER:
                    self.start_ap()
                self.error = "%s: %s (attempt %d)" % (self.ssid, self._rare("stat", st), self._fails)
                log.warn("wifi: " + self.error)
                return False
        if self.state != "connected":  # joined now, or the radio rejoined by itself
            if self._joined:
                self.reconnects += 1
            self._joined = True
            self._fails = 0
            self.state = "connected"
            self.error = ""
            log.info("wifi: %s joined, ip %s" % (self.ssid, sta.ifconfig()[0]))
            self.stop_ap()
        return True

    def status(self):
        """The status page's and the HomeWizard API's `wifi` section (net.wifi_rare);
        never raises (out of memory for the import: the state and the reason)."""
        try:
            return self._rare("status")
        except Exception as e:  # noqa: BLE001
            return {"state": self.state, "ssid": self.ssid, "error": "status: %r" % e}

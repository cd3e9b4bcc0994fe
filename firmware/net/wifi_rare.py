"""The rare half of net/wifi.py: the access point and its captive portal,
the name of a failed join's status, the status section. Imported for one
call and dropped again, so that a dongle on its network keeps none of this
code in RAM."""

import log

# (network is imported where it is used: warmup interns this module's names at
# boot on the host board too, which has no radio)
_WPA2 = 3  # network.AUTH_WPA2_PSK


def stat(w, code):
    """network.STAT_* name of a WLAN.status() code (the port's own strings)."""
    import network

    for n in dir(network):
        if n.startswith("STAT_") and getattr(network, n) == code:
            return n
    return str(code)


def ap_key(folder):
    """The generated access point password: read from <folder>/ap_key, made
    (and written there) the first time."""
    from fsutil import read, write_atomic  # (power-safe: a cut never leaves half a key)

    p = (folder or ".").rstrip("/") + "/ap_key"
    k = (read(p, 64)[0] or b"").strip()
    if len(k) >= 8:
        return k.decode()
    import os

    a = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off a console
    k = "".join(a[b % 31] for b in os.urandom(10))
    try:
        write_atomic(p, k)
    except OSError as e:  # a new one each boot, still printed
        log.error("wifi: cannot keep ap_key: %s" % e)
    return k


def start(w):
    """Open `w`'s access point and its DNS responder; never raises."""
    import asyncio

    import network

    ap = None
    try:
        ap = network.WLAN(network.AP_IF)
        ap.active(True)
        w._power(ap)
        pw = w._ap_password
        if w._ap_open:
            ap.config(essid=w.hostname, authmode=0)
        else:
            try:
                ap.config(essid=w.hostname, password=pw or ap_key(w._key_dir), authmode=_WPA2)
            except OSError as e:  # "Wifi Invalid Password": WPA2 takes 8..63 characters
                if not pw:
                    raise
                w._fault("ap_password refused, generated one used", e)
                pw = ""
                ap.config(essid=w.hostname, password=ap_key(w._key_dir), authmode=_WPA2)
            if not pw:  # the console only: status shows the log to anyone on the network
                print("wifi: access point %s, WPA2 password: %s" % (w.hostname, ap_key(w._key_dir)))
        w.ap = ap
        if w.state != "connected":
            w.state = "ap"
        log.info("wifi: access point %s" % w.hostname)
        try:
            from net.dns import serve

            w.dns = {}
            w._dns = asyncio.create_task(serve(ap.ifconfig()[0], w.dns_port, w.dns))
        except Exception as e:  # noqa: BLE001 - no captive portal: the address still works
            w._fault("dns", e)
    except Exception as e:  # noqa: BLE001 - tried again after the next failure
        w._fault("ap", e)
        try:
            if ap is not None:
                ap.active(False)
        except Exception:  # noqa: BLE001
            pass


def stop(w):
    """Close `w`'s access point and stop its DNS responder (net.dns leaves RAM)."""
    ap = w.ap
    w.ap = None
    if w._dns is not None:
        w._dns.cancel()
        w._dns = None
        from mem import unload

        unload("net.dns")
    if ap is not None:
        try:
            ap.active(False)
        except Exception as e:  # noqa: BLE001
            w._fault("ap off", e)


def status(w):
    """`w`'s state for /api/v1/status and the HomeWizard API."""
    out = {
        "state": w.state,
        "ssid": w.ssid,
        "hostname": w.hostname,
        "attempts": w.attempts,
        "reconnects": w.reconnects,
        "error": w.error,
        "ip": None,
        "rssi": None,
        "ap": None,
    }
    try:
        if w.ap is not None:
            out["ap"] = {"essid": w.hostname, "ip": w.ap.ifconfig()[0]}
        sta = w.sta
        if sta is not None and sta.isconnected():
            out["ip"] = sta.ifconfig()[0]
            out["rssi"] = sta.status("rssi")
    except Exception:  # noqa: BLE001 - the link dropped just now: report what is known
        pass
    return out

"""Starting the app (run once, then dropped from RAM): the services in a
power-safe order.

Order: CPU clock down (board cpu_mhz), boot recorded, the meter task (no
radio yet), then after the board's `start_delay_ms` the Wi-Fi radio at
reduced TX power, the HTTP server, the raw telegram server and MQTT.
"""

import asyncio

import log
from aio import guard_poller, sleep_ms
from version import VERSION


async def start(app):
    """Start every service; return when HTTP (and raw TCP) listen. Raises OSError
    if a port cannot be bound on the host board."""
    b = app.board
    guard_poller()  # (MicroPython: a registration out of memory must not leave a crash behind)
    try:
        asyncio.get_event_loop().set_exception_handler(app._handler)
    except AttributeError:  # pragma: no cover - very old MicroPython
        pass
    b.power_setup()
    b.record_boot()
    if b.ota_root:  # after an update: a trial to run, a rollback to tell (otaboot)
        app._cold_call("otaboot", "started")
    msg = "p1 %s on %s, reset %s, boot %d"
    log.info(msg % (VERSION, b.name, b.reset_cause(), b.boot_count))
    b.start_watchdog()
    _start_loads(app)
    # No closures of this module outlive it (they would keep its code in RAM):
    # the tasks run the App's own methods.
    app._task(app._meter, "meter")
    app._task(app._supervise, "supervisor")
    delay = b.spec.get("start_delay_ms") or 0
    if delay:
        await sleep_ms(delay)
    if b.has_wifi:
        from net.wifi import Wifi

        app.wifi = Wifi(app.cfg["wifi"], app.hostname, b.spec.get("wifi_txpower_dbm"), b.storage_dir)
        app._task(app.wifi.run, "wifi")
    await _start_http(app)
    await _start_raw(app)
    _start_mqtt(app)


def _start_loads(app):
    """The relays in their safe state and their rules (loads.py), only when a relay is
    configured: otherwise nothing of load management is imported."""
    c = app.cfg
    for n in range(1, 5):
        if c["relay%d" % n]["name"]:
            break
    else:
        # no relay: the four sections are equal defaults, read only (web.settings
        # writes the file, never these): one dict for all four (~0.6 KB, 64-bit)
        c["relay2"] = c["relay3"] = c["relay4"] = c["relay1"]
        return
    from mem import unload

    try:
        ld = __import__("loadscold").setup(app)
        __import__("loadstate")  # (its names interned now, at the heap's bottom, not at the first page)
    finally:
        unload("loadscold", "loadstate", "p1.jsonout")
    if ld is not None:
        app.loads = app.hub.loads = ld
        app.hub.add_status("loads", ld.status)


def _bind(app, section):
    host = app.cfg[section].get("bind", "") if section == "http" else ""
    if not host:
        host = "127.0.0.1" if app.board.chip == "host" else "0.0.0.0"
    return host


async def _start_http(app):
    """The HTTP server listens (its accept loop restarts itself if it dies)."""
    from web.api import make_server

    app.web = make_server(app)
    host = _bind(app, "http")
    port = app.cfg["http"]["port"]
    try:
        await app.web.start(host, port)
    except OSError as e:
        app.http_error = "listen %s:%d: %s" % (host, port, e)
        log.error("http: " + app.http_error)
        raise OSError(app.http_error)
    log.info("http on %s:%d" % (host, port))


async def _start_raw(app):
    rc = app.cfg["raw_tcp"]
    if not rc["enabled"]:
        return
    from net.tcp_raw import RawServer

    app.raw = RawServer(
        app.hub,
        _bind(app, "raw_tcp") if app.board.chip == "host" else "0.0.0.0",
        rc["port"],
        rc["max_clients"],
        rc["write_timeout_s"] * 1000,
    )
    try:
        await app.raw.start()
        log.info("raw telegrams on port %d" % rc["port"])
    except OSError as e:
        log.error("raw_tcp: %s" % e)
        if app.board.chip == "host":
            raise


def _start_mqtt(app):
    mc = app.cfg["mqtt"]
    if not mc["enabled"]:
        return
    try:
        from net.mqtt_client import MqttService

        svc = MqttService(
            app.hub, mc, app.device_id, app.version, app.board.name, spool_dir=app.board.storage_dir
        )
    except Exception as e:  # noqa: BLE001 - missing module or bad config: show it
        msg = "mqtt unavailable: %s: %s" % (type(e).__name__, e)
        log.error(msg)
        app.hub.add_status("mqtt", {"enabled": True, "error": msg}.copy)
        return
    app.mqtt = svc
    app.hub.add_status("mqtt", svc.status)
    app._task(svc.run, "mqtt")

"""The application: builds everything from config + board and runs the tasks.

Start order (power-safe): CPU clock down (board cpu_mhz), boot recorded, the
meter task (no radio yet), then after the board's `start_delay_ms` the Wi-Fi
radio at reduced TX power, then the HTTP server, the raw telegram server and
MQTT. A global exception handler logs anything a task lets escape; the
supervisor feeds the watchdog and turns the telegram LED off again.

    app = App(cfg, cfg_errors, board)
    await app.start()       # returns once the servers listen
    await app.wait()        # until stop() or a fatal error
"""

import asyncio

import log
from aio import sleep_ms
from clock import ticks_diff, ticks_ms
from config import parse_offset
from hub import Hub
from meter import Pipeline
from meter import run as run_meter
from version import VERSION

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_SUPERVISE_MS = const(1000)
_LED_MS = const(150)


class App:
    def __init__(self, cfg, cfg_errors, board):
        self.cfg = cfg
        self.cfg_errors = cfg_errors
        self.board = board
        self.version = VERSION
        self.t0 = ticks_ms()
        self.hub = Hub()
        m = cfg["meter"]
        off = parse_offset(m["std_offset"])
        self.pipeline = Pipeline(
            self.hub, m["buffer"], 120 if off is None else off, on_telegram=self._blink
        )
        self.hub.add_status("meter", self.pipeline.status)
        mac = board.mac_hex()
        self.device_id = board.device_id()  # MQTT base topic, HA unique ids
        self.hostname = cfg["wifi"]["hostname"] or "p1-" + mac[-4:]  # p1-xxxx.local
        self.wifi = None
        self.web = None
        self.raw = None
        self.mqtt = None
        self.tasks = []
        self.http_error = ""
        self._led_at = None
        self._done = asyncio.Event()
        self.fatal = None

    # --- small helpers -------------------------------------------------------
    def uptime_s(self):
        return ticks_diff(ticks_ms(), self.t0) // 1000

    def wifi_status(self):
        if self.wifi is None:
            return {"state": "none" if not self.board.has_wifi else "off"}
        return self.wifi.status()

    def _blink(self, sample):
        self.board.led(True)
        self._led_at = ticks_ms()

    def _task(self, coro, name):
        async def guarded():
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - one task must not stop the app
                log.exc(e, name)

        t = asyncio.create_task(guarded())
        self.tasks.append(t)
        return t

    def _handler(self, loop, context):
        e = context.get("exception")
        if e is not None:
            log.exc(e, "task")
        else:
            log.error("asyncio: %s" % context.get("message"))

    # --- life cycle ------------------------------------------------------------
    async def start(self):
        """Start every service; return when HTTP (and raw TCP) listen. Raises OSError
        if a port cannot be bound on the host board."""
        b = self.board
        try:
            asyncio.get_event_loop().set_exception_handler(self._handler)
        except AttributeError:  # pragma: no cover - very old MicroPython
            pass
        b.power_setup()
        b.record_boot()
        msg = "p1 %s on %s, reset %s, boot %d"
        log.info(msg % (VERSION, b.name, b.reset_cause(), b.boot_count))
        b.start_watchdog()
        self._task(run_meter(b, self.pipeline, self.cfg["meter"]["source"]), "meter")
        self._task(self._supervise(), "supervisor")
        delay = b.spec.get("start_delay_ms") or 0
        if delay:
            await sleep_ms(delay)
        if b.has_wifi:
            from net.wifi import Wifi

            self.wifi = Wifi(self.cfg["wifi"], self.hostname, b.spec.get("wifi_txpower_dbm"))
            self._task(self.wifi.run(), "wifi")
        await self._start_http()
        await self._start_raw()
        self._start_mqtt()

    def _bind(self, section):
        host = self.cfg[section].get("bind", "") if section == "http" else ""
        if not host:
            host = "127.0.0.1" if self.board.chip == "host" else "0.0.0.0"
        return host

    async def _start_http(self):
        from web.api import make_app

        self.web = make_app(self)
        host = self._bind("http")
        port = self.cfg["http"]["port"]
        t = self._task(self._serve_http(self.web, host, port), "http")
        while getattr(self.web, "server", None) is None and not t.done():
            await sleep_ms(10)
        if self.http_error:
            raise OSError(self.http_error)
        log.info("http on %s:%d" % (host, port))

    async def _serve_http(self, web, host, port):
        try:
            await web.start_server(host=host, port=port)
        except OSError as e:
            self.http_error = "listen %s:%d: %s" % (host, port, e)
            log.error("http: " + self.http_error)

    async def _start_raw(self):
        rc = self.cfg["raw_tcp"]
        if not rc["enabled"]:
            return
        from net.tcp_raw import RawServer

        self.raw = RawServer(
            self.hub,
            self._bind("raw_tcp") if self.board.chip == "host" else "0.0.0.0",
            rc["port"],
            rc["max_clients"],
            rc["write_timeout_s"] * 1000,
        )
        try:
            await self.raw.start()
            log.info("raw telegrams on port %d" % rc["port"])
        except OSError as e:
            log.error("raw_tcp: %s" % e)
            if self.board.chip == "host":
                raise

    def _start_mqtt(self):
        mc = self.cfg["mqtt"]
        if not mc["enabled"]:
            return
        try:
            from net.mqtt_client import MqttService

            svc = MqttService(
                self.hub, mc, self.device_id, self.version, self.board.name, spool_dir=self.board.storage_dir
            )
        except Exception as e:  # noqa: BLE001 - missing module or bad config: show it
            msg = "mqtt unavailable: %s: %s" % (type(e).__name__, e)
            log.error(msg)
            self.hub.add_status("mqtt", lambda: {"enabled": True, "error": msg})
            return
        self.mqtt = svc
        self.hub.add_status("mqtt", svc.status)
        self._task(svc.run(), "mqtt")

    async def _supervise(self):
        b = self.board
        while True:
            b.feed_watchdog()
            if self._led_at is not None and ticks_diff(ticks_ms(), self._led_at) >= _LED_MS:
                b.led(False)
                self._led_at = None
            await sleep_ms(_LED_MS if self._led_at is not None else _SUPERVISE_MS)

    async def wait(self):
        await self._done.wait()

    async def stop(self):
        """Cancel every task and close the servers."""
        if self.mqtt is not None:  # "offline" + DISCONNECT first (bounded: 1 s writes)
            try:
                await self.mqtt.stop()
            except Exception:  # noqa: BLE001
                pass
        if self.raw is not None:
            self.raw.close()
        if self.web is not None and getattr(self.web, "server", None) is not None:
            try:
                self.web.shutdown()
            except Exception:  # noqa: BLE001
                pass
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            try:
                await t
            except BaseException:  # noqa: BLE001 - CancelledError and friends
                pass
        self.tasks = []
        self.board.data_request(False)
        self._done.set()


async def main(config_path="/config.json"):
    """Device entry: config -> board -> app, forever."""
    import board as boardmod
    import config

    cfg, errors = config.load(config_path)
    for e in errors:
        log.warn(e)
    b = boardmod.load(cfg["board"])
    app = App(cfg, errors, b)
    await app.start()
    log.info("heap after start: %s" % heap_text())
    app._task(heap_report(app.hub), "heap")
    await app.wait()


def heap_text():
    import gc

    try:
        return "%d used, %d free" % (gc.mem_alloc(), gc.mem_free())  # type: ignore[attr-defined]
    except AttributeError:  # CPython
        return "n/a"


async def heap_report(hub):
    """Log the heap after each telegram (device console): it must stay flat."""
    import gc

    sub = hub.subscribe(1, "heap")
    while True:
        s = await sub.get()
        gc.collect()
        log.info("telegram %d: heap %s" % (s.seq, heap_text()))

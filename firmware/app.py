"""The application: the hub, the meter pipeline and the supervised tasks.

`App.start()` (in appstart.py, dropped after it ran) starts the services in a
power-safe order; `main()` is the device entry.

No cliff: every long-running task is supervised. One that raises (a
`MemoryError` included) is logged and started again after a backoff (1 s
doubling to 60 s, back to 1 s after it ran a minute), so no service stops for
good. The supervisor task feeds the watchdog while the services are alive
(`_down()`), turns the telegram LED off again, checks the health alarms once a
minute (the cold module `health`) and watches the heap: when allocations keep failing (`_OOM_LIMIT` caught
MemoryErrors within `_OOM_WINDOW_MS`) the heap is too fragmented to recover,
and the board resets itself after recording why (shown as `reset_reason` in
status after the reset; the host board only logs it).

    app = App(cfg, cfg_errors, board)
    await app.start()       # returns once the servers listen
    await app.wait()        # until stop() or a fatal error
"""

import asyncio
import gc

import log
import mem
from aio import sleep_ms
from clock import ticks_diff, ticks_ms
from hub import Hub
from meter import Pipeline
from meter import run as run_meter
from mem import call, unload
from version import VERSION

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_SUPERVISE_MS = const(1000)
_LED_MS = const(150)
_RESTART_MIN_MS = const(1000)
_RESTART_MAX_MS = const(60000)
_HEALTHY_MS = const(60000)  # a task that ran this long restarts with the shortest backoff
_OOM_LIMIT = const(8)  # caught MemoryErrors ...
_OOM_WINDOW_MS = const(60000)  # ... within this window: the heap does not recover
_DEAD_FAILS = const(6)  # a task that failed this often without a healthy minute between is down
_HEALTH_MS = const(60000)  # between two health checks (the alarms)
_HISTORY_TRIES = const(3)  # history jobs in a row that ran out of memory before the snapshot


def offset_minutes(text):
    """'+02:00' (validated by config) -> 120."""
    m = int(text[1:3]) * 60 + int(text[4:6])
    return -m if text[0] == "-" else m


class App:
    # set later, only when used (declared for type checkers; no bytecode):
    # the config file web.settings writes, its login sessions and failures
    cfg_path: str
    sessions: list
    login_fails: list | None

    def __init__(self, cfg, cfg_errors, board):
        self.cfg = cfg
        self.cfg_errors = cfg_errors
        self.board = board
        self.version = VERSION
        self.t0 = ticks_ms()
        self.hub = Hub()
        m = cfg["meter"]
        self.pipeline = Pipeline(self.hub, m["buffer"], offset_minutes(m["std_offset"]), on_telegram=self._blink)
        self.hub.add_status("meter", self.pipeline.status)
        self.device_id = board.device_id()  # MQTT base topic, HA unique ids
        self.hostname = cfg["wifi"]["hostname"] or "p1-" + board.mac_hex()[-4:]  # p1-xxxx.local
        self.wifi = None
        self.web = None
        self.raw = None
        self.mqtt = None
        self.loads = None  # load management (loads.Loads) when a relay is configured, else None
        self.tasks = []
        self.restarts = {}  # task name -> times it was started again
        # task name -> (failures in a row, ticks its present run began or None in backoff);
        # the supervisor drops an entry once that run lasted _HEALTHY_MS
        self.fails = {}
        self.down = None  # the service that is down (the watchdog is not fed), or None
        self.alarms = None  # health.check(): the alarm names, () none; None: not checked yet
        self.health = None  # health.check()'s window
        self.trial = None  # a new version on trial (otaboot): ticks by which it must be healthy
        self.http_error = ""
        self._led_at = None
        self._hq = self._hd = -1  # the last telegram's quarter hour and day (history)
        self._hfail = 0  # history jobs in a row without their snapshot (out of memory)
        self.heap_log = False  # log the heap after each telegram (the device console)
        # ticks of the last _OOM_LIMIT caught MemoryErrors, oldest first (None: none yet);
        # fixed size: the heap watch must not need the heap it watches
        self._oom: list = [None] * _OOM_LIMIT
        self._oom_seen = log.memory_errors
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
        b = sample.body
        if self.loads is not None:  # the relays' rules (docs/LOADCONTROL.md)
            try:
                self.loads.step(b)
            except Exception as e:  # noqa: BLE001 - MemoryError too: the meter goes on, next reading again
                log.exc(e, "loads")
        # History (docs/HISTORY.md): a snapshot at each new quarter hour of the meter's
        # time stamp `{"timestamp": "YYYY-MM-DDTHH:MM:SS+HH:MM"`; here only a few integer
        # compares per telegram, the code that writes it is imported then (cold).
        if len(b) > 40 and b[14] == 0x22 and b[40] == 0x22:
            q = ((b[29] - 48) * 10 + b[30] - 48) // 15 + 4 * (b[27] + 64 * b[26]) + 65536 * b[36]
            d = b[24] + 64 * (b[23] + 64 * b[21])
            if q != self._hq or d != self._hd:
                self._hq = q
                self._hd = d
                try:
                    asyncio.create_task(self._history(b))
                except MemoryError:  # (histjob's code): the next telegram again
                    log.oom("history")
                    self._again()

    def _history(self, body):
        """The history job for the reading `body` (a coroutine: histjob.run, cold)."""
        return call("histjob", "run", self, body)

    def _again(self):
        """The history job ran out of memory before its snapshot was written (loading
        its code, mostly): the next telegram starts it again, up to _HISTORY_TRIES times
        in a row, so a period boundary is not lost for a moment's full heap."""
        if self._hfail < _HISTORY_TRIES:
            self._hfail += 1
            self._hq = -1  # (the next telegram's quarter differs: the job again)

    def _task(self, factory, name):
        """Run `factory()` (an async function) supervised: restarted with backoff if it
        raises; a normal return ends it. Returns the asyncio task."""

        async def supervised():
            backoff = _RESTART_MIN_MS
            n = 0
            while True:
                t = ticks_ms()
                try:
                    await factory()
                    return
                except asyncio.CancelledError:
                    raise
                except MemoryError:
                    gc.collect()
                    log.oom(name)
                except Exception as e:  # noqa: BLE001 - one task must not stop the app
                    log.exc(e, name)
                # The bookkeeping below allocates (tuples, the text); while the heap is
                # full it may fail, the restart must not: this loop (and the sleep,
                # which allocates nothing) goes on regardless.
                if ticks_diff(ticks_ms(), t) >= _HEALTHY_MS:
                    backoff = _RESTART_MIN_MS
                    n = 0
                n += 1
                try:
                    self.fails[name] = (n, None)
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                except MemoryError:
                    log.oom(name)
                await sleep_ms(backoff)
                backoff = min(backoff * 2, _RESTART_MAX_MS)
                try:
                    self.fails[name] = (n, ticks_ms())
                    log.warn("%s: restarted" % name)
                except MemoryError:
                    log.oom(name)

        t = asyncio.create_task(supervised())
        self.tasks.append(t)
        return t

    def _handler(self, loop, context):
        e = context.get("exception")
        if isinstance(e, MemoryError):
            log.oom("task")
        elif e is not None:
            log.exc(e, "task")
        else:
            log.error("asyncio: %s" % context.get("message"))

    # --- life cycle ------------------------------------------------------------
    async def start(self):
        """Start every service; return when HTTP (and raw TCP) listen. Raises OSError
        if a port cannot be bound on the host board. (appstart.py, run once.)"""
        import appstart

        try:
            await appstart.start(self)
        finally:
            # fsutil too: config, the board file and the boot record brought it in;
            # from now on only cold jobs (history, spool, settings) need it
            unload("appstart", "fsutil")

    def _meter(self):
        return run_meter(self.board, self.pipeline, self.cfg["meter"]["source"])

    def _down(self):
        """The name of a service that is down, else None. Down: a supervised task
        (meter, MQTT if enabled, Wi-Fi) that failed _DEAD_FAILS times in a row
        without running a minute in between, or an HTTP server that no longer
        listens (web.cold.relisten trying again) or whose reaper task ended."""
        f = self.fails
        if f:
            now = ticks_ms()
            well = None
            for name in f:  # (no copy of the keys: this runs while the heap is full too)
                n, t = f[name]
                if t is not None and ticks_diff(now, t) >= _HEALTHY_MS:
                    well = name  # its present run lasted a minute: healthy again
                elif n >= _DEAD_FAILS:
                    return name
            if well is not None:  # (one a round)
                del f[well]
        w = self.web
        t = getattr(w, "_tick", None)  # (None until it listened)
        if t is not None and (not w.server or t.done()):  # pyright: ignore[reportAttributeAccessIssue]
            return "http"
        return None

    def _health(self, job, *args):
        """health.<job>(self, *args), cold: the module is in RAM only meanwhile."""
        self._cold_call("health", job, *args)

    def _cold_call(self, mod, job, *args):
        """<mod>.<job>(self, *args), cold (`mem.call`), its errors logged."""
        try:
            call(mod, job, self, *args, drop=("fsutil",))
        except Exception as e:  # noqa: BLE001 - MemoryError included: tried again next time
            log.exc(e, mod)

    async def _supervise(self):
        b = self.board
        seen = self.hub.seq
        checked = tried = ticks_ms()
        while True:
            down = self._down()
            if down is None:
                b.feed_watchdog()
            if down != self.down:  # logged and recorded (the reset reason if the watchdog bites)
                self._health("watchdog", down)
                self.down = down
            if self.loads is not None:  # overrides that end, readings that stopped
                try:
                    self.loads.tick()
                except Exception as e:  # noqa: BLE001
                    log.exc(e, "loads")
            if self.trial is not None and ticks_diff(ticks_ms(), tried) >= _SUPERVISE_MS:
                tried = ticks_ms()  # a new version on trial: healthy in time, or rolled back
                self._cold_call("otaboot", "tick")
            # (not while another cold job holds the slot -- a status page, MQTT's login:
            # their code and the check's would be in RAM together; a second later)
            if ticks_diff(ticks_ms(), checked) >= _HEALTH_MS and not mem.busy:
                checked = ticks_ms()
                self._health("check")
            if self._led_at is not None and ticks_diff(ticks_ms(), self._led_at) >= _LED_MS:
                b.led(False)
                self._led_at = None
            self._watch_heap()
            if self.heap_log and self.hub.seq != seen:  # the console shows it stays flat
                seen = self.hub.seq
                gc.collect()
                try:
                    log.info("telegram %d: heap %s" % (seen, heap_text()))
                except MemoryError:  # (the text): the heap watch must go on
                    pass
            await sleep_ms(_LED_MS if self._led_at is not None else _SUPERVISE_MS)

    def _watch_heap(self):
        """Reset (after recording why) when allocations keep failing: a heap that
        fragmented for good would otherwise degrade every service for ever."""
        now = ticks_ms()
        n = log.memory_errors - self._oom_seen
        self._oom_seen = log.memory_errors
        oom = self._oom
        for _ in range(min(n, _OOM_LIMIT)):  # (pop then append: the list never grows)
            oom.pop(0)
            oom.append(now)
        if oom[0] is not None and ticks_diff(now, oom[0]) <= _OOM_WINDOW_MS:
            try:
                gc.collect()
                reason = "memory: %d allocation failures in %d s, %s bytes free" % (
                    _OOM_LIMIT,
                    _OOM_WINDOW_MS // 1000,
                    self.board.free_heap(),
                )
                log.error("reset: " + reason)
                reset = getattr(self.board, "reset", None)
                if reset is not None:
                    reset(reason)
                for i in range(_OOM_LIMIT):
                    oom[i] = None
            except MemoryError:  # recording the reason needs a little heap: tried again next round
                pass

    async def wait(self):
        await self._done.wait()

    async def stop(self):
        """Cancel every task and close the servers."""
        if self.mqtt is not None:  # "offline" + DISCONNECT first (bounded: 1 s writes)
            try:
                await self.mqtt.stop()  # pyright: ignore[reportGeneralTypeIssues]  # set by appstart
            except Exception:  # noqa: BLE001
                pass
        if self.raw is not None:
            self.raw.close()
        if self.web is not None:
            try:
                self.web.close()
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
    from mem import unload

    cfg, errors = config.load(config_path)
    del config
    unload("config")  # needed again only for status and settings
    for e in errors:
        log.warn(e)
    b = boardmod.load(cfg["board"])
    app = App(cfg, errors, b)
    app.cfg_path = config_path  # (web.settings writes it)
    await app.start()
    log.info("heap after start: %s" % heap_text())
    app.heap_log = True
    await app.wait()


def heap_text():
    try:
        return "%d used, %d free" % (gc.mem_alloc(), gc.mem_free())  # type: ignore[attr-defined]
    except AttributeError:  # CPython
        return "n/a"

"""The hardware seam: everything the runtime touches on a board goes through here.

Strategy: a board is a data file (`boards/<name>.json`: UART, pins, CPU clock,
Wi-Fi TX power) plus one of two small classes. `EspBoard` drives `machine`
(UART, Pin, WDT, freq) and is used only on the device (and in host_tests,
against fakes of the ESP32 port's `machine` and `network`); `HostBoard`
(`boards_host.py`) uses files, ptys, sockets and prints on CPython and on
MicroPython's Unix port. The rest of the firmware sees the same methods on both:

    b = board.load(name)           # never raises: falls back and lists errors
    src = b.open_meter(source)     # await src.read(n) -> bytes; src.reconnect, src.close()
    b.data_request(True); b.led(on); b.relay(i, on)
    b.power_setup(); b.reset_cause(); b.free_heap(); b.feed_watchdog()
    b.record_boot()  -> boot count (persisted in <storage_dir>/bootinfo.json)
    b.reset(reason)  # recorded, shown as reset_reason after the restart

Reading the board file and recording the boot live in `boardfile.py`, which
is imported only for that and dropped again.
"""

import gc

from mem import unload


def load(name, dirs=None):
    """The board named `name` (host -> HostBoard). Never raises. The work is done by
    `boardfile`, which leaves RAM again: it is needed only at boot."""
    import boardfile

    try:
        return boardfile.load(name, dirs)
    finally:
        unload("boardfile")


def read_spec(name, dirs=None):
    """(spec dict, errors) for board `name` (see boardfile.read_spec)."""
    import boardfile

    try:
        return boardfile.read_spec(name, dirs)
    finally:
        unload("boardfile")


class Board:
    """What both board kinds share: spec fields, boot record, heap figure."""

    def __init__(self, spec, errors=None):
        self.spec = spec
        self.name = spec.get("name", "?")
        self.chip = spec.get("chip", "?")
        self.errors = errors or []
        self.storage_dir = spec.get("storage_dir") or ""
        self.boot_count = 0
        self.reset_reason = ""  # why our firmware reset the board last time, if it did
        self.has_wifi = False
        self._reset = "unknown"

    # --- storage -----------------------------------------------------------
    def path(self, name):
        d = self.storage_dir
        if not d:
            return name
        return d + name if d.endswith("/") else d + "/" + name

    def record_boot(self):
        """Increment and persist the boot counter; return it. Never raises. Takes
        the reason a reset of ours recorded (`reset()`) into `reset_reason`."""
        import boardfile

        try:
            return boardfile.record_boot(self)
        finally:
            unload("boardfile")

    def reset(self, reason):
        """Record why (shown as `reset_reason` after the restart), then restart the
        board. The host board cannot restart itself: it records and logs it."""
        import boardfile

        boardfile.write_bootinfo(self, self.boot_count, reason)
        self._restart()

    def _restart(self):
        import log

        log.error("host board: a device would reset now")

    # --- system ------------------------------------------------------------
    def free_heap(self):
        gc.collect()
        try:
            return gc.mem_free()  # type: ignore[attr-defined]
        except AttributeError:  # CPython has no fixed heap
            return None

    def reset_cause(self):
        return self._reset

    # --- defaults: boards without the part do nothing -----------------------
    def power_setup(self):
        pass

    def data_request(self, on):
        pass

    def led(self, on):
        pass

    def relay(self, i, on):
        pass

    def feed_watchdog(self):
        pass

    def start_watchdog(self):
        pass

    def mac_hex(self):
        return "000000000000"

    def device_id(self):
        """Stable id for MQTT topics and Home Assistant: the MAC as 12 hex digits."""
        return self.mac_hex()


def _name_of(mod, suffix, value):
    """The constant of `mod` named *`suffix` whose value is `value`, else str(value).
    The names are the port's own strings (in flash), so no table of them is kept."""
    for n in dir(mod):
        if n.endswith(suffix) and getattr(mod, n) == value:
            return n
    return str(value)


class EspBoard(Board):
    """An ESP32-family board driven through `machine`.

    Outputs are created at the level they are set to, so no pin glitches (an
    active-low LED is not lit by creating it). What the chip refuses (CPU
    clock, watchdog timeout) is recorded in `errors`, never raised.
    """

    def __init__(self, spec, errors=None):
        Board.__init__(self, spec, errors)
        import machine

        if not hasattr(machine, "UART"):  # MicroPython's Unix port
            raise ImportError("machine.UART")
        self._m = machine
        self.has_wifi = True
        self._pins = {}
        self._np = None
        self._wdt = None
        self._uart = None
        try:
            self._reset = _name_of(machine, "_RESET", machine.reset_cause())
        except Exception:  # noqa: BLE001
            pass

    def _out(self, pin, v):
        p = self._pins.get(pin)
        if p is None:
            self._pins[pin] = self._m.Pin(pin, self._m.Pin.OUT, value=v)
        else:
            p.value(v)

    def power_setup(self):
        mhz = self.spec.get("cpu_mhz")
        if mhz:
            try:
                self._m.freq(int(mhz) * 1000000)
            except Exception as e:  # noqa: BLE001 - unsupported clock: keep default
                self.errors.append("cpu_mhz %s: %s" % (mhz, e))

    def open_meter(self, source=""):
        """The meter's UART as an asyncio stream (`await s.read(n)`; the ESP32's
        UART is pollable). Raises ValueError/OSError if the UART cannot open."""
        import asyncio

        if self._uart is None:
            u = self.spec["uart"]
            UART = self._m.UART
            self._uart = UART(
                u["id"],
                baudrate=u["baud"],
                bits=u["bits"],
                parity=u["parity"],
                stop=u["stop"],
                rx=u["rx"],
                rxbuf=u.get("rxbuf", 4096),
                invert=UART.INV_RX if u.get("rx_invert") else 0,
            )
        s = asyncio.StreamReader(self._uart)  # type: ignore[call-arg,arg-type]
        s.reconnect = True  # type: ignore[attr-defined]  # meter.run reopens it
        return s

    def data_request(self, on):
        pin = self.spec.get("data_request")
        if pin is not None:
            self._out(pin, 1 if on else 0)

    def led(self, on):
        led = self.spec.get("led")
        if not led:
            return
        if led.get("kind") == "ws2812":
            if self._np is None:
                from neopixel import NeoPixel

                self._np = NeoPixel(self._m.Pin(led["pin"]), 1)
            self._np[0] = (0, 8, 0) if on else (0, 0, 0)
            self._np.write()
        else:
            self._out(led["pin"], (0 if on else 1) if led.get("active_low") else (1 if on else 0))

    def relay(self, i, on):
        pins = self.spec.get("relays") or []
        if 0 <= i < len(pins):
            self._out(pins[i], 1 if on else 0)

    def start_watchdog(self):
        s = self.spec.get("watchdog_s") or 0
        if s and self._wdt is None:
            try:
                self._wdt = self._m.WDT(timeout=int(s) * 1000)
            except Exception as e:  # noqa: BLE001 - a bad board file must not stop the boot
                self.errors.append("watchdog_s %s: %s" % (s, e))

    def feed_watchdog(self):
        if self._wdt is not None:
            self._wdt.feed()

    def mac_hex(self):
        try:
            import network
            from binascii import hexlify

            return hexlify(network.WLAN(network.STA_IF).config("mac")).decode()
        except Exception:  # noqa: BLE001
            return "000000000000"

    def _restart(self):
        self._m.reset()



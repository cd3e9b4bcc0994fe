"""`EspBoard`: an ESP32-family board driven through `machine` (see board.py).

Imported by `boardfile.load()` for a board file whose chip is not "host".
"""

from board import Board


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



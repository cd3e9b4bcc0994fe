"""A fake `machine` for the ESP32 port, run under MicroPython's Unix port.

It follows what the ESP32 port does (MicroPython master of 2026-08-19:
ports/esp32/machine_uart.c, machine_pin.c, machine_wdt.c, modmachine.c and the
stubs micropython-esp32-stubs 1.29), including what it raises:

- `Pin(id, mode=None, pull=-1, *, value, drive, hold)`: one object per GPIO;
  a GPIO the chip lacks -> ValueError("invalid pin"); an output on an
  input-only GPIO (ESP32 34-39, S2 46) -> ValueError("pin can only be input");
  `value=` is applied before the mode, as on the chip; without it a new
  output drives its latch, 0 after reset (recorded in `_trace`).
- `UART(id, baudrate, bits, parity, stop, *, tx, rx, rts, cts, txbuf, rxbuf,
  timeout, timeout_char, invert, flow)`: id beyond the chip's UARTs ->
  ValueError("UART(n) does not exist"); bits not 5-8, stop not 1-2, an invert
  mask outside INV_TX|INV_RX|INV_RTS|INV_CTS -> ValueError; rxbuf not above the
  128-byte hardware FIFO -> OSError (the IDF refuses the driver). `read(n)`
  returns what is buffered or None, like the chip with timeout=0. The RX line
  is a real loopback socket: what a test sends into `uart._wire` (the meter's
  end) arrives at `read()`, and `ioctl` gives the socket's fd so the Unix
  port's asyncio can poll the UART as the ESP32's poll does.
- `WDT(id=0, timeout=5000)`: id other than 0 or timeout <= 0 -> ValueError
  (the docs say the ESP32 minimum is 1 s; the port itself only refuses <= 0).
- `freq(hz)`: 20/40/80/160/240 MHz (no 240 on the C3) else ValueError.
- `reset_cause()`: PWRON_RESET=1, HARD_RESET=2, WDT_RESET=3,
  DEEPSLEEP_RESET=4, SOFT_RESET=5; 0 when the IDF reason is unknown.
- `bitstream(pin, 0, timing, buf)`: what neopixel.write() calls.

Test controls start with an underscore: `_set_chip("esp32c3")`,
`_reset_cause`, `_levels` (GPIO -> level), `_trace` ((GPIO, level) written), `_modes`, `_wdts`, `_fed`,
`_bitstreams` (GPIO -> last bytes), `_uarts` (id -> UART).
"""

import binascii
import errno
import io
import os
import socket
import struct

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

# usable GPIOs (ports/esp32/machine_pin.h, stock boards: no PSRAM on the
# ESP32, USB serial/JTAG on the C3, USB CDC on the S2/S3), first input-only
# GPIO, number of UARTs, CPU clocks in MHz
_CHIPS = {
    "esp32": (
        list(range(0, 24)) + [25, 26, 27] + list(range(32, 40)),
        34,
        3,
        (20, 40, 80, 160, 240),
    ),
    "esp32c3": (list(range(0, 14)) + [20, 21], 99, 2, (20, 40, 80, 160)),
    "esp32s2": (list(range(0, 19)) + [21, 26] + list(range(33, 47)), 46, 2, (20, 40, 80, 160, 240)),
    "esp32s3": (list(range(0, 19)) + [21, 26] + list(range(33, 49)), 99, 3, (20, 40, 80, 160, 240)),
}
_chip = "esp32"
_reset_cause = PWRON_RESET
_freq = 160000000
_levels = {}
_modes = {}
_pins = {}
_uarts = {}
_wdts = []
_fed = 0
_bitstreams = {}
_trace = []  # (GPIO, level) for every level written, in order


def _set_chip(chip):
    """Reset every part and act as `chip` (esp32, esp32c3, esp32s2, esp32s3)."""
    global _chip, _reset_cause, _freq, _fed
    if chip not in _CHIPS:
        raise ValueError("fake machine: unknown chip %r" % chip)
    _chip = chip
    _reset_cause = PWRON_RESET
    _freq = 160000000
    _fed = 0
    for u in _uarts.values():
        u._close()
    for d in (_levels, _modes, _pins, _uarts, _bitstreams):
        d.clear()
    del _wdts[:]
    del _trace[:]


def _level(gpio, v):
    _levels[gpio] = 1 if v else 0
    _trace.append((gpio, _levels[gpio]))


def reset_cause():
    return _reset_cause


def freq(hz=None):
    global _freq
    if hz is None:
        return _freq
    mhz = hz // 1000000
    if mhz not in _CHIPS[_chip][3]:
        raise ValueError("frequency must be " + ", ".join("%dMHz" % f for f in _CHIPS[_chip][3]))
    _freq = mhz * 1000000


def unique_id():
    return b"\x24\x0a\xc4\x12\x34\x56"


def idle():
    pass


def reset():
    raise SystemExit("machine.reset()")


def soft_reset():
    raise SystemExit("machine.soft_reset()")


def bitstream(pin, encoding, timing, buf):
    if encoding != 0:
        raise ValueError("encoding")
    if len(timing) != 4:
        raise ValueError("timing")
    _bitstreams[pin._id] = bytes(buf)


def _pin_id(p):
    if isinstance(p, Pin):
        return p._id
    if isinstance(p, int) and p in _CHIPS[_chip][0]:
        return p
    raise ValueError("invalid pin")


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    def __new__(cls, id, *args, **kw):
        n = _pin_id(id)
        p = _pins.get(n)
        if p is None:
            p = object.__new__(cls)
            p._id = n
            _pins[n] = p
        if args or kw:
            p.init(*args, **kw)
        return p

    def __init__(self, id, *args, **kw):
        pass

    def init(self, mode=None, pull=-1, value=None, drive=None, hold=None):
        if value is not None:
            _level(self._id, value)
        if mode is not None:
            if mode & 2 and self._id >= _CHIPS[_chip][1]:
                raise ValueError("pin can only be input")
            if value is None and mode & 2 and not _modes.get(self._id, 0) & 2:  # drives its latch (0 after reset)
                _level(self._id, _levels.get(self._id, 0))
            _modes[self._id] = mode

    def value(self, *x):
        if len(x) > 1:
            raise TypeError("function takes at most 2 positional arguments")
        if not x:
            return _levels.get(self._id, 0)
        _level(self._id, x[0])

    def __call__(self, *x):
        return self.value(*x)

    def on(self):
        _level(self._id, 1)

    def off(self):
        _level(self._id, 0)

    def __repr__(self):
        return "Pin(%d)" % self._id


class WDT:
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError()
        if timeout <= 0:
            raise ValueError("WDT timeout too short")
        self.timeout = timeout
        _wdts.append(timeout)

    def feed(self):
        global _fed
        _fed += 1


class RTC:
    """The board's clock: datetime() reads the last tuple set (or the reset value)."""

    _dt = (2000, 1, 1, 5, 0, 0, 0, 0)

    def datetime(self, dt=None):
        if dt is None:
            return RTC._dt
        if len(dt) != 8:
            raise ValueError("requested length 8 but object has length %d" % len(dt))
        RTC._dt = tuple(dt)


_UNSET = object()


def _loopback():
    """A connected pair of Unix-domain stream sockets (no socketpair() here)."""
    path = b"/tmp/fake-uart-%s.sock" % binascii.hexlify(os.urandom(6))
    try:
        os.remove(path)
    except OSError:
        pass
    addr = struct.pack("<H", socket.AF_UNIX) + path + b"\0"
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        ls.bind(addr)
        ls.listen(1)
        a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        a.connect(addr)
        b, _ = ls.accept()
    finally:
        ls.close()
        os.remove(path)
    return a, b


class UART(io.IOBase):
    INV_RX = 4
    INV_TX = 32
    INV_RTS = 64
    INV_CTS = 8
    RTS = 1
    CTS = 2
    IRQ_RX = 1
    IRQ_BREAK = 2
    IRQ_RXIDLE = 4096
    _INV_MASK = 4 | 32 | 64 | 8
    _FIFO = 128

    def __new__(cls, id, *args, **kw):
        if not isinstance(id, int) or not 0 <= id < _CHIPS[_chip][2]:
            raise ValueError("UART(%d) does not exist" % id)
        u = _uarts.get(id)
        if u is None:
            u = super().__new__(cls)
            u._id = id
            u._cfg = {
                "baudrate": 115200, "bits": 8, "parity": None, "stop": 1, "tx": None, "rx": None,
                "txbuf": 256, "rxbuf": 256, "timeout": 0, "timeout_char": 0, "invert": 0, "flow": 0,
            }  # fmt: skip
            u._wire = u._rx = None
            u._tx = bytearray()
        u.init(*args, **kw)
        _uarts[id] = u
        return u

    def __init__(self, id, *args, **kw):
        pass

    def init(self, baudrate=0, bits=0, parity=_UNSET, stop=0, *, tx=_UNSET, rx=_UNSET, rts=_UNSET, cts=_UNSET,
             txbuf=-1, rxbuf=-1, timeout=-1, timeout_char=-1, invert=-1, flow=-1):  # fmt: skip
        c = dict(self._cfg)
        if rxbuf >= 0:
            c["rxbuf"] = rxbuf & 0xFFFF
        if txbuf >= 0:
            c["txbuf"] = txbuf & 0xFFFF
        if c["rxbuf"] <= self._FIFO:
            raise OSError(1, "ESP_FAIL")  # uart_driver_install: "uart rx buffer length error"
        if baudrate > 0:
            c["baudrate"] = baudrate
        for k, p in (("tx", tx), ("rx", rx), ("rts", rts), ("cts", cts)):
            if p is not _UNSET and p != -1:
                c[k] = _pin_id(p)
        if bits not in (0, 5, 6, 7, 8):
            raise ValueError("invalid data bits")
        if bits:
            c["bits"] = bits
        if parity is not _UNSET:
            c["parity"] = None if parity is None else (1 if parity & 1 else 0)
        if stop not in (0, 1, 2):
            raise ValueError("invalid stop bits")
        if stop:
            c["stop"] = stop
        if timeout != -1:
            c["timeout"] = timeout
        if timeout_char != -1:
            c["timeout_char"] = timeout_char
        if invert != -1:
            if invert & ~self._INV_MASK:
                raise ValueError("invalid inversion mask")
            c["invert"] = invert
        if flow != -1:
            if flow & ~3:
                raise ValueError("invalid flow control mask")
            c["flow"] = flow
        self._cfg = c
        if self._rx is None:
            self._wire, self._rx = _loopback()
            self._rx.setblocking(False)
        else:
            self._drain()  # "discard any input from previous configuration"

    def _drain(self):
        while self.read(4096):
            pass

    def _close(self):
        for s in (self._wire, self._rx):
            if s is not None:
                s.close()
        self._wire = self._rx = None

    def deinit(self):
        self._close()

    def read(self, n=-1):
        if self._rx is None:
            raise OSError(errno.EBADF)
        if n == 0:
            return b""
        try:
            return self._rx.recv(n if n is not None and n > 0 else self._cfg["rxbuf"])
        except OSError as e:
            if e.errno == errno.EAGAIN:
                return None
            raise

    def readinto(self, buf, n=-1):
        data = self.read(len(buf) if n < 0 else min(n, len(buf)))
        if data is None:
            return None
        buf[: len(data)] = data
        return len(data)

    def readline(self):
        out = b""
        while not out.endswith(b"\n"):
            c = self.read(1)
            if not c:
                break
            out += c
        return out or None

    def any(self):
        try:
            return len(self._rx.recv(self._cfg["rxbuf"], socket.MSG_PEEK))
        except OSError:
            return 0

    def write(self, buf):
        self._tx += buf
        return len(buf)

    def flush(self):
        pass

    def txdone(self):
        return True

    def sendbreak(self):
        pass

    def ioctl(self, req, arg):
        if req == 10:  # MP_STREAM_GET_FILENO: poll the RX socket itself
            return self._rx.fileno()
        if req == 3:  # MP_STREAM_POLL
            r = 0
            if arg & 1 and self.any():
                r |= 1
            if arg & 4:
                r |= 4
            return r
        return -errno.EINVAL

    def __repr__(self):
        c = self._cfg
        return "UART(%d, baudrate=%d, bits=%d, parity=%s, stop=%d, rx=%s, rxbuf=%d, invert=%d)" % (
            self._id, c["baudrate"], c["bits"], c["parity"], c["stop"], c["rx"], c["rxbuf"], c["invert"])  # fmt: skip

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
is imported only for that and dropped again; `EspBoard` is in `espboard.py`
(not loaded on the host board).
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


def _nop(self, *args):
    """A part this board does not have: nothing to do."""


class Board:
    """What both board kinds share: spec fields, boot record, heap figure."""

    ota_root = "/"  # where the code's folders and update.json are (otaboot); "": no updates

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

        try:
            boardfile.write_bootinfo(self, self.boot_count, reason)
        finally:
            unload("boardfile")
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

    # defaults (one shared function): power_setup(), data_request(on), led(on),
    # relay(i, on), feed_watchdog(), start_watchdog()
    power_setup = data_request = led = relay = feed_watchdog = start_watchdog = _nop

    def mac_hex(self):
        return "000000000000"

    def device_id(self):
        """Stable id for MQTT topics and Home Assistant: the MAC as 12 hex digits."""
        return self.mac_hex()

"""Interning at boot the names of the code the firmware loads only now and
then (run once, first thing, then dropped from RAM).

Why: MicroPython keeps every interned name (qstr: identifiers, attribute
names, short strings) for good, in pools that double in size. With this
firmware the pool that the 621st name needs is one block of 640 entries
(~4.5 KB on an ESP32, ~7 KB on the 64-bit Unix port). Once the services run,
the heap is cut into pieces no larger than a few KB: importing a cold module
(the status page, MQTT discovery) that brought the first new name past a
full pool failed with "MemoryError: memory allocation failed, allocating 640
bytes" (the pool's entries) with 56 KB free, every time. Imported here, one
module at a time into a heap still in one piece, and dropped again, those
names cost what they would cost anyway, and the pools are allocated while
there is room for them.
"""

import gc
import sys

# Every module the firmware imports for a moment while it runs (mem.unload after use).
COLD = (
    "config", "boardfile", "appstart", "health", "web.status", "web.metrics", "web.cold", "web.files", "web.settings",
    "web.auth", "web.homewizard", "p1.table", "p1.jsonout", "p1.bodyread", "p1.bodyrare",
    "net.mqtt_rare", "net.mqtt_status", "net.ha", "net.spool", "net.dns",
    "history", "histread", "fsutil", "tariff", "loadscold", "web.relays", "otaboot", "web.update",
    "p1.parse", "p1.readings", "p1.values",  # the general decoder, for a line p1.body declines
)  # fmt: skip


def run(names=COLD):
    """Import each of `names` and drop it (and whatever it imported) again."""
    from mem import unload

    before = list(sys.modules)
    for n in names:
        try:
            __import__(n)
        except Exception as e:  # noqa: BLE001 - MemoryError, a module left out of a build
            print("warmup:", n, repr(e))
        unload(*[m for m in sys.modules if m not in before])
        gc.collect()

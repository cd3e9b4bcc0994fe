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

Only the pools need that, not every name: the code few dongles run (settings,
login, the OTA update, the HomeWizard API, relays, the captive portal's DNS,
the general decoder) is in `LATER`, not interned here. Its names go into the
free slots of the pool allocated at boot when it is first used: no new pool,
and its ~2 KB of name text (as much on the ESP32) only on the dongles that use
it. host_tests/test_warmup.py checks both halves: the pool that name 621 needs
is allocated by `run()`, and the names of `LATER` fit in it (below 1261, where
a 7th pool of 1280 entries, ~9 KB on the ESP32, would start).
"""

import gc
import sys

# The modules the firmware imports for a moment while it runs (mem.unload after use)
# on every dongle: interned at boot.
COLD = (
    "config", "boardfile", "appstart", "health", "web.status", "net.wifi_rare", "web.metrics", "web.cold", "web.files",
    "p1.table", "p1.jsonout", "p1.bodyread", "p1.bodyrare", "p1.values",
    "net.mqtt_rare", "net.mqtt_setup", "net.mqtt_status", "net.ha", "net.spool",
    "histjob", "history", "histcore", "histread", "fsutil", "tariff", "tariffrule",
)  # fmt: skip
# The cold modules only some dongles use: their names are interned when first used.
LATER = (
    "web.settings", "web.auth", "web.homewizard", "loadscold", "loadstate", "web.relays", "otaboot", "web.update",
    "net.dns",
    "meterrare", "p1.parse", "p1.readings",  # the general decoder, for a line p1.body declines
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

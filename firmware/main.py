"""Device entry point: start the app with the board named in /config.json.

A crash at start-up is logged and followed by a delayed reset, never a tight
boot loop; Ctrl-C on the console stops it and leaves the REPL.

The heap stays in few, large pieces because the collector runs after every
1.5 KB allocated (`gc.threshold`), not only when the heap is full.
MicroPython's allocator is first-fit from the bottom, and garbage is only
reusable once collected: collecting only when the heap is full lets each
burst of short-lived objects climb to its top, and whatever long-lived object
is allocated then (a connection, a queued reading, a cold module's code)
lands there and cuts the free space in pieces. Collected early, the
short-lived objects reuse the holes at the bottom. Under the budget load (host_tests/test_memory_budget.py,
Unix port, 160K heap) the largest free block went from ~3 KB to ~25 KB.
A fixed figure, not a share of the heap: the ESP32 port starts with a 64 KB
heap and adds areas as it needs them, so a share of the heap at boot would
differ between the device and the tests' single heap. 1.5 KB (about a
telegram's JSON body) rather than ~3 KB: at the budget (32-bit, 100 KB, the
budget test's load) the runs without a MemoryError went from 4 of 9 to 10
of 11 with this change alone (docs/MEMORY.md).
"""

import asyncio

import log


def run():
    import gc

    import mem

    try:  # collect after every 1.5 KB allocated, not only when the heap is full
        gc.threshold(mem.GC_EVERY)
    except AttributeError:  # a port built without MICROPY_GC_ALLOC_THRESHOLD
        pass
    import warmup

    warmup.run()  # names of the code loaded now and then, interned while the heap is in one piece
    del warmup
    mem.unload("warmup")
    import app

    try:
        asyncio.run(app.main("/config.json"))
    except KeyboardInterrupt:
        log.info("stopped")
        return
    except Exception as e:  # noqa: BLE001 - last resort: log, wait, reset
        log.exc(e, "main")
    import time

    time.sleep(10)  # keep a reset loop slow and the console usable
    import machine

    machine.reset()


run()

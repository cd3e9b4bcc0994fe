"""The recovery test's heap hog (hostmain.py `--hog FILE`), in a module of its own
so that its code is in RAM only in the runs that use it: once FILE exists, hold
as much of the heap as can be allocated, until the firmware counted 8
MemoryErrors (3 to 30 s), or FILE goes. See hostmain.py."""

import asyncio


async def hog(hog_file):
    import gc
    import os

    import log
    from clock import ticks_diff, ticks_ms

    # What it holds is a chain of tuples (held, block): a list of the blocks would have
    # to grow in one piece, and once the heap had no hole that large the hog stopped
    # taking more and left 10-30 KB free, where the firmware ran on unharmed (it failed
    # 0 or 1 times in about 1 run in 8 of the recovery test).
    held = None
    t0 = None  # when this episode began; None: no FILE
    while True:
        try:
            os.stat(hog_file)
            on = True
        except OSError:
            on = False
        except MemoryError:  # (the heap is ours): no change
            on = t0 is not None
        if on and t0 is None:
            t0 = ticks_ms()
            base = log.memory_errors
        if on and t0:
            # 1 KB blocks, then smaller ones into the holes, then the last single
            # blocks (a 1-tuple): nothing left for anyone
            for size in (1024, 256, 64, 16):
                try:
                    while True:
                        held = (held, bytearray(size))
                except MemoryError:
                    pass
            try:
                while True:
                    held = (held,)
            except MemoryError:
                pass
            # Let go once the firmware has failed often enough to ask for a reset
            # (app._OOM_LIMIT), after 3 s at least and 30 s at most: what the
            # firmware manages in the holes does not decide the test's outcome.
            n = ticks_diff(ticks_ms(), t0)
            if n > 30000 or (n > 3000 and log.memory_errors - base >= 8):
                t0 = 0  # released until FILE goes and comes back
                held = None
                gc.collect()
                print("hog: released after %d memory errors" % (log.memory_errors - base))
        elif not on:
            t0 = None
            if held is not None:
                held = None
                gc.collect()
                print("hog: released")
        await asyncio.sleep_ms(20)

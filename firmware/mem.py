"""Heap helpers shared by the runtime."""

import sys

# The collector runs after every GC_EVERY bytes allocated (gc.threshold), not only
# when the heap is full: set by main.py on the device and by the Unix-port entry
# (tools/mp/hostmain.py) in the tests, one figure for both (why: main.py).
GC_EVERY = 1536


def unload(*names):
    """Forget modules (MicroPython): code needed only now and then (boot, the general
    decoder, status) gives its RAM back once nothing refers to it. Only call it
    for modules that nothing else imports at module level. A submodule is also
    taken off its package (`p1.table` is an attribute of `p1`, which would keep
    it alive). Its names (qstrs) stay interned: they cost RAM once, not per load."""
    if sys.implementation.name == "micropython":
        mods = sys.modules
        for n in names:
            mods.pop(n, None)
            i = n.rfind(".")
            if i > 0 and n[:i] in mods:
                try:
                    delattr(mods[n[:i]], n[i + 1 :])
                except (AttributeError, KeyError):  # not there (MicroPython says KeyError)
                    pass


def loaded(*names):
    """Which of `names` are imported now: a cold path unloads only what it brought in."""
    return [n for n in names if n in sys.modules]


def unload_new(before, *names):
    """unload() those of `names` that were not in `before` (a `loaded()` list)."""
    unload(*[n for n in names if n not in before])


def call(mod, job, *args, drop=()):
    """`<mod>.<job>(*args)` with `mod`, and those of `drop` it brings in, in RAM for
    the call only: unloaded after it (whatever happens) unless they were imported
    before. What it returns is returned; a coroutine keeps the code it runs alive
    until it ends."""
    before = loaded(mod, *drop)
    try:
        return getattr(__import__(mod, None, None, (job,)), job)(*args)
    finally:
        unload_new(before, mod, *drop)


# The cold slot: one cold job at a time (a status or metrics page, an MQTT login,
# a discovery round, the end of a session). Each brings 4-8 KB of code into RAM
# (64-bit) plus what it builds; when they overlapped -- the page's polling during a
# reconnect and its discovery round -- their sum was the firmware's peak. A job
# that waited `polls` x 20 ms goes ahead anyway: a holder that never said done()
# (a page whose client hung up) slows the next job down, it never stops it.
busy = 0


async def turn(polls=100):
    """Wait for the cold slot (up to ~2 s), then hold it until done()."""
    global busy
    from aio import sleep_ms

    while busy and polls:
        polls -= 1
        await sleep_ms(20)
    busy = 1


def done():
    """Give the cold slot back."""
    global busy
    busy = 0

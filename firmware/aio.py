"""asyncio helpers that read the same on MicroPython and CPython."""

import asyncio

try:
    # MicroPython: a sleep allocates nothing (one shared awaitable), so a task can
    # back off even while the heap is full; an `async def` wrapper would allocate
    # its coroutine at each call, and raise MemoryError right where it backs off.
    from asyncio import sleep_ms  # pyright: ignore[reportAttributeAccessIssue]
except ImportError:  # CPython

    async def sleep_ms(ms):
        await asyncio.sleep(ms / 1000)


spare = None  # guard_poller's spare block; None while given back


def guard_poller():
    """MicroPython: asyncio's registration of a stream made safe against running out
    of memory (once, at start; CPython: nothing). `select.poll.register` adds the
    stream's slot to its map and then allocates the entry: when that fails the slot
    stays empty and the next poll dereferences it -- a crash, on the ESP32 a reset
    (extmod/modselect.c: "This case is not handled"). Here a failed registration
    gives back a spare block and registers again, which fills the empty slot; if
    that fails too, asyncio's entry is dropped (and on the ESP32 the slot: the Unix
    port's unregister would crash on it), and the MemoryError goes to the task that
    waited, like any other."""
    try:
        core = asyncio.core  # pyright: ignore[reportAttributeAccessIssue]
        q = core._io_queue
    except AttributeError:  # CPython
        return
    enqueue = q._enqueue
    if getattr(enqueue, "__name__", "") == "guarded":
        return
    global spare
    spare = bytearray(64)  # (an entry is a GC block or two)

    def guarded(s, idx):
        global spare
        try:
            if spare is None:
                spare = bytearray(64)
        except MemoryError:
            pass
        try:
            enqueue(s, idx)
        except MemoryError:
            if id(s) not in q.map:  # (it failed before registering: nothing left behind)
                raise
            import gc
            import sys

            spare = None
            gc.collect()
            try:
                q.poller.register(s, 4 if idx else 1)  # (POLLOUT, POLLIN: the slot found empty is filled)
                core.cur_task.data = q  # (what _enqueue does after it)
            except MemoryError:
                del q.map[id(s)]
                if sys.platform != "linux":
                    q.poller.unregister(s)
                raise

    q._enqueue = guarded

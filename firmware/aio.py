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

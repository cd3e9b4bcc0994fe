"""asyncio helpers that read the same on MicroPython and CPython."""

import asyncio


async def sleep_ms(ms):
    """asyncio.sleep_ms on MicroPython, asyncio.sleep on CPython."""
    f = getattr(asyncio, "sleep_ms", None)
    if f is not None:
        await f(ms)
    else:
        await asyncio.sleep(ms / 1000)

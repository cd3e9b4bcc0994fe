"""asyncio helpers that read the same on MicroPython and CPython."""

import asyncio


async def sleep_ms(ms):
    """asyncio.sleep_ms on MicroPython, asyncio.sleep on CPython."""
    f = getattr(asyncio, "sleep_ms", None)
    if f is not None:
        await f(ms)
    else:
        await asyncio.sleep(ms / 1000)


async def watch_eof(reader, task):
    """Discard what a client sends; when it hangs up, cancel `task` (its writer).

    Run as its own task beside a server-push handler (SSE, raw telegrams) so a
    hang-up frees the handler's subscription at once, not at its next write.
    """
    try:
        while await reader.read(64):
            pass
    except Exception:  # noqa: BLE001 - a reset counts as gone
        pass
    task.cancel()

"""Under the Unix port (host_tests/test_poller_guard.py): asyncio's IOQueue
registers a socket (`queue_write`, as a task awaiting a write does) while the
heap is full but for GAP free blocks. argv: MODE GAP; MODE "guard": with
aio.guard_poller() (the firmware's start), "bare": without. Then the heap comes
back and the poller polls: an entry that a failed registration left empty
crashes that poll (on the ESP32 every poll calls every entry). Prints what the
registration did and what the poll found."""

import asyncio
import gc
import socket
import sys

import aio


async def main(mode, gap):
    core = asyncio.core
    q = core._io_queue
    if mode == "guard":
        aio.guard_poller()
    p = q.poller
    for fd in range(1000, 1016):  # the map and the pollfd array grown now, not on the full heap
        p.register(fd)
    for fd in range(1000, 1016):
        p.unregister(fd)
    s = socket.socket()
    what = 0
    g = None
    for _ in range(gap):  # GAP single blocks, freed once the heap is full
        g = (g,)
    held = None
    gc.collect()
    # The heap, to its last block, in this frame (as tools/mp/hosthog.py fills it):
    # a helper function's frame would be freed on its return, leaving room again.
    try:
        while True:
            held = (held, bytearray(16))
    except MemoryError:
        pass
    try:
        while True:
            held = (held,)
    except MemoryError:
        pass
    g = None
    gc.collect()
    try:
        q.queue_write(s)
        what = 1
    except MemoryError:
        what = 2
    held = None
    gc.collect()
    entry = id(s) in q.map
    print(("", "registered", "MemoryError")[what], "entry" if entry else "no entry", "spare used" if mode == "guard" and aio.spare is None else "")
    print("poll", len(p.poll(0)))
    if entry and what == 1:  # (nobody waits: asyncio's state as before)
        q._dequeue(s)
        core.cur_task.data = None


asyncio.run(main(sys.argv[1], int(sys.argv[2])))

"""Heap allocated per telegram through meter.Pipeline.feed, JSON body included.

    micropython tools/mp/bench_alloc.py CODE_DIR FILE [FILE ...]          (Unix port, 64-bit)
    node tools/mp/run.mjs --file CODE_DIR tools/mp/bench_alloc.py CODE_DIR FILE ...   (32-bit)

Each FILE (one telegram) is fed in 512-byte reads, as the meter task reads, to
a Pipeline publishing into a Hub: a few telegrams to warm up, then five
measured ones, each with the collector off around it (gc.mem_alloc() deltas:
every block allocated, garbage included). Prints per FILE:
`NAME <most bytes> <fewest bytes> <body bytes> <accepted>`.
"""

import gc
import sys

code_dir = sys.argv[1]
sys.path[:0] = [code_dir]

from hub import Hub  # noqa: E402
from meter import Pipeline  # noqa: E402

for path in sys.argv[2:]:
    with open(path, "rb") as f:
        data = f.read()
    chunks = [data[i : i + 512] for i in range(0, len(data), 512)]
    hub = Hub()
    p = Pipeline(hub)
    for _ in range(3):
        for c in chunks:
            p.feed(c)
    used = []
    for _ in range(5):
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        for c in chunks:
            p.feed(c)
        used.append(gc.mem_alloc() - a0)
        gc.enable()
    body = hub.sample.body if hub.sample is not None else b""
    print(path.rsplit("/", 1)[-1], max(used), min(used), len(body), p.accepted)

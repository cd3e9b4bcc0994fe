"""Live heap after importing groups of modules, under MicroPython's Unix port
(64-bit): the counterpart of tools/mp/import_heap.mjs (WebAssembly, 32-bit).

    micropython import_heap_unix.py DIR "label=mod1,mod2" "label=mod3" ...

DIR (and DIR/lib) go first on sys.path. Prints one line per group:
"label <bytes added> <bytes live>".
"""

import gc
import sys

d = sys.argv[1]
sys.path[:0] = [d, d + "/lib"]
gc.collect()
base = last = gc.mem_alloc()  # type: ignore[attr-defined]
for g in sys.argv[2:]:
    label, mods = g.split("=")
    for m in mods.split(","):
        __import__(m)
    gc.collect()
    gc.collect()
    now = gc.mem_alloc()  # type: ignore[attr-defined]
    print(label, now - last, now - base)
    last = now

"""The Unix-port twin of heap_steps.mjs: live heap of Python steps (64-bit).

    micropython -X heapsize=4M tools/mp/heap_steps.py CODE_DIR STEPS.py

Each `#--- LABEL` part of STEPS.py runs (in shared globals), then a collection;
prints "LABEL <bytes added> <bytes live>" per step.
"""

import gc
import sys

code_dir, steps_file = sys.argv[1], sys.argv[2]
sys.path[:0] = [code_dir, code_dir + "/lib"]
steps = []
label = None
lines = []
with open(steps_file) as f:
    for line in f.read().split("\n"):
        if line.startswith("#--- "):
            if label is not None:
                steps.append((label, "\n".join(lines)))
            label = line[5:].split()[0]
            lines = []
        else:
            lines.append(line)
if label is not None:
    steps.append((label, "\n".join(lines)))
del lines, label
g = {"__name__": "steps"}
gc.collect()
base = last = gc.mem_alloc()
for name, code in steps:
    exec(code, g)
    gc.collect()
    now = gc.mem_alloc()
    print(name, now - last, now - base)
    last = now
